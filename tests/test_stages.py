"""Properties of the pipeline's stages and operators that a user relies on, checked on exact inputs."""

from __future__ import annotations

import json
import re
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
import torch

import engine
from engine import Recipe, RecipeError, StageSettings
from engine import operators as ops
from engine.colour import D65_XY, xy_to_temperature_tint
from engine.io.source import Source
from engine.pipeline import downsample
from engine.stages.base import Context, Stage
from engine.stages.demosaic import bayer_to_rgb, libraw_demosaic
from engine.stages.photofinish import Photofinish, PhotofinishParams, chroma_table, only_noise
from engine.stages.photofinish_learned import LearnedPhotofinish, as_shot_gain
from engine.stages.upsample import BilateralGuidedUpsample, UpsampleParams
from engine.stages.white_balance import WhiteBalance, WhiteBalanceParams
from tests.conftest import CANON, NIKON, SAMPLE_DNG, SONY, colorchecker_dng, need


def nchw(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))[None]


def colours(n: int = 500, seed: int = 0) -> np.ndarray:
    """Random linear RGB colours in (0.1, 0.9), as an n x 1 image: their log-chromaticities stay inside the
    +-2.5 that chroma tables cover."""
    return np.random.default_rng(seed).uniform(0.1, 0.9, (n, 1, 3)).astype(np.float32)


# --- photofinishing operators ---------------------------------------------------------------------------------

def test_exposure_plus_one_ev_doubles_linear_values() -> None:
    x = nchw(colours())
    assert torch.allclose(ops.digital_gain(x, torch.tensor([1.0])), 2.0 * x, rtol=1e-6)
    assert torch.allclose(ops.digital_gain(x, torch.tensor([-2.0])), 0.25 * x, rtol=1e-6)


def test_exposure_setting_adds_to_the_automatic_gain() -> None:
    low = colours()
    stage = Photofinish()
    base = stage.operators_for(PhotofinishParams(), low)["gain_ev"]
    brighter = stage.operators_for(PhotofinishParams(exposure=1.0), low)["gain_ev"]
    assert brighter - base == pytest.approx(1.0, abs=1e-3)


def noise_frame(seed: int = 0) -> np.ndarray:
    """A lens-cap frame: black plus read noise (std 1e-4 of white), clipped at black like a raw converter does."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(2e-5, 1e-4, (200, 300, 3)), 0.0, None).astype(np.float32)


def dim_scene(seed: int = 0) -> np.ndarray:
    """A real scene exposed 9 stops under, with the same read noise: dark, but far above the noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:200, 0:300]
    scene = 0.5 * (0.5 + 0.5 * np.sin(x / 9.0) * np.cos(y / 13.0))[..., None] * np.array([1.0, 0.9, 0.7])
    return np.clip(scene * 2.0**-9 + rng.normal(0.0, 1e-4, (200, 300, 3)), 0.0, None).astype(np.float32)


def test_only_noise_tells_a_lens_cap_frame_from_a_dark_scene() -> None:
    assert only_noise(noise_frame())
    assert only_noise(np.zeros((50, 50, 3), np.float32))
    assert not only_noise(dim_scene())
    assert not only_noise(np.full((50, 50, 3), 0.18, np.float32))  # flat, but well exposed


@pytest.mark.parametrize("stage", [Photofinish(), LearnedPhotofinish()], ids=["classical", "learned"])
def test_a_frame_of_only_noise_keeps_its_exposure_as_shot(stage: Photofinish) -> None:
    """Metering would lift the noise into a grey picture: the gain stays as shot (the classical stage: none; a
    raw-following style: its fixed rendering gain) plus the user's setting, even when metering is asked for."""
    as_shot = as_shot_gain(["natural"]) if isinstance(stage, LearnedPhotofinish) else 0.0
    for auto in (False, True):
        params = PhotofinishParams(auto_exposure=auto)
        assert stage.operators_for(params, noise_frame())["gain_ev"] == as_shot
        assert stage.operators_for(replace(params, exposure=2.5), noise_frame())["gain_ev"] == as_shot + 2.5
    metered = stage.operators_for(PhotofinishParams(auto_exposure=True), dim_scene())["gain_ev"]
    assert metered > as_shot + 2.0  # a real scene is metered


@pytest.mark.parametrize(("a", "b"), [(1.0, 1.15), (1.35, 1.55), (0.7, 0.9)])
def test_tone_curve_keeps_mid_grey(a: float, b: float) -> None:
    c = ops.tone_curve_midpoint(a, b)
    grey = torch.full((1, 3, 1, 1), 0.18)
    out = ops.tone_curve(grey, torch.tensor([a]), torch.tensor([b]), torch.tensor([c]))
    assert out.flatten()[0].item() == pytest.approx(0.18, abs=1e-5)


def test_zero_chroma_table_is_the_identity() -> None:
    x = nchw(colours())
    out = ops.chroma_map(x, torch.zeros(1, 2, 17, 17))
    assert torch.allclose(out, x, rtol=1e-4, atol=1e-6)


def test_saturation_minus_100_gives_grey_of_the_same_luminance() -> None:
    x = nchw(colours())
    out = ops.chroma_map(x, torch.from_numpy(chroma_table(saturation=-100.0, vibrance=0.0)))
    spread = (out.max(dim=1).values - out.min(dim=1).values).max().item()
    assert spread < 1e-4
    assert torch.allclose(ops.luminance(out), ops.luminance(x), rtol=1e-4)


def test_gamma_2_2_is_the_srgb_curve() -> None:
    from engine.colour import srgb_encode

    x = colours()
    out = ops.gamma(nchw(x), torch.tensor([2.2]))[0].permute(1, 2, 0).numpy()
    assert np.abs(out - srgb_encode(x)).max() < 1e-5


# --- demosaic -------------------------------------------------------------------------------------------------

def bayer_source(rgb: np.ndarray) -> types.SimpleNamespace:
    """A 16-bit RGGB mosaic sampled from ``rgb`` (levels 0..65535), with a non-trivial as-shot neutral."""
    h, w = rgb.shape[:2]
    cfa = np.array([[0, 1], [1, 2]])
    channel = np.tile(cfa, (h // 2, w // 2))
    mosaic = np.take_along_axis(rgb, channel[..., None], axis=2)[..., 0]
    return types.SimpleNamespace(sensor=np.round(mosaic * 65535).astype(np.uint16), cfa=cfa,
                                 as_shot_neutral=np.array([0.6, 1.0, 0.7]), black=np.zeros(3),
                                 white=np.full(3, 65535.0))


def test_demosaic_of_a_flat_colour_is_that_colour_everywhere() -> None:
    flat = np.broadcast_to(np.array([0.5, 0.3, 0.2]), (64, 96, 3)).copy()
    out = bayer_to_rgb(bayer_source(flat))
    assert np.abs(out - flat).max() < 2e-5  # quantisation only, borders included


def test_demosaic_of_a_smooth_gradient_is_accurate_away_from_borders() -> None:
    y, x = np.mgrid[0:64, 0:96].astype(np.float64)
    gradient = np.stack([0.2 + 0.5 * x / 96, 0.3 + 0.3 * y / 64, 0.1 + 0.4 * (x + y) / 160], axis=-1)
    out = bayer_to_rgb(bayer_source(gradient))
    assert np.abs(out - gradient)[4:-4, 4:-4].max() < 1e-3
    waves = np.stack([0.3 + 0.2 * np.sin(x / 15) * np.cos(y / 20), 0.4 + 0.2 * np.sin(y / 13),
                      0.3 + 0.2 * np.cos((x + y) / 17)], axis=-1)
    assert np.abs(bayer_to_rgb(bayer_source(waves)) - waves)[4:-4, 4:-4].max() < 3e-3


@pytest.mark.parametrize("raw", [SAMPLE_DNG, CANON, SONY],
                         ids=["sample (black 512 of 16383)", "Canon 550D (black 2056 of 15000)", "Sony a7R III"])
def test_libraw_demosaic_keeps_the_levels_and_highlights_of_ours(raw: Path) -> None:
    # X-Trans and 4-colour sensors, and `--set demosaic.algorithm='"ahd"'`, go through LibRaw: the picture must
    # not come out darker than through our own demosaic (it did, by the black level's share of the white), nor
    # lose the top of a channel that white balance multiplies (the Sony's red stopped at 40 % of its range).
    source = engine.open(need(raw))
    ours, libraws = bayer_to_rgb(source), libraw_demosaic(source, "ahd")
    unclipped = ours.max(axis=2) < 0.5
    ratio = libraws[unclipped].mean(axis=0) / ours[unclipped].mean(axis=0)
    assert np.abs(ratio - 1).max() < 0.01, ratio
    # A demosaic keeps each measured value where it was measured: every channel's brightest sample comes through.
    h, w = source.sensor.shape
    channel = np.tile(source.cfa, (h // 2 + 1, w // 2 + 1))[:h, :w]
    span = float(source.white.max() - source.black.mean())
    measured = [(source.sensor[channel == c].max() - source.black.mean()) / span for c in range(3)]
    assert np.all(libraws.reshape(-1, 3).max(axis=0) > 0.98 * np.array(measured)), measured


# --- guided upsampling ----------------------------------------------------------------------------------------

def test_guided_upsampling_of_an_identity_finish_reproduces_the_full_resolution_input() -> None:
    # The upsampler fits affine models in square-root encoded linear RGB; a photofinish that outputs exactly
    # that encoding is an identity there, so the full-resolution result must equal the encoded full input,
    # sharp edge included, although the finish only ever saw a 150 px copy.
    y, x = np.mgrid[0:400, 0:600].astype(np.float32)
    full = np.stack([0.2 + 0.15 * np.sin(x / 40), 0.3 + 0.2 * np.cos(y / 50), 0.25 + 0.1 * np.sin((x + y) / 60)],
                    axis=-1).astype(np.float32)
    full[100:250, 200:400] *= 3.0
    low = downsample(full, 150)
    # the stage consumes its full input
    ctx = types.SimpleNamespace(low_input=low, full_input=full.copy(), device="cpu")
    out = BilateralGuidedUpsample().process(np.sqrt(low), {"params": UpsampleParams()}, ctx)
    assert out.shape == full.shape
    assert np.abs(out - np.sqrt(full)).max() < 1e-4


# --- white balance --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def srgb_source(tmp_path_factory: pytest.TempPathFactory) -> engine.Source:
    path = tmp_path_factory.mktemp("wb") / "colours.png"
    rgb = (np.random.default_rng(3).uniform(0.05, 0.95, (24, 32, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(path), rgb[..., ::-1])
    return engine.open(path)


def balance(source: engine.Source, temperature: float, tint: float) -> np.ndarray:
    """The gains a custom white balance applies to an image (output / input)."""
    ctx = Context(source=source, recipe=Recipe())
    image = np.full((4, 4, 3), 0.5, dtype=np.float32)
    params = WhiteBalanceParams(mode="custom", temperature=temperature, tint=tint)
    return WhiteBalance().process(image, {"params": params}, ctx)[0, 0] / 0.5


def test_white_balance_at_d65_leaves_an_srgb_image_unchanged(srgb_source) -> None:
    temperature, tint = xy_to_temperature_tint(D65_XY)  # 6504 K, tint +9.8
    assert balance(srgb_source, temperature, tint) == pytest.approx(np.ones(3), abs=1e-3)
    # 6504 K with tint 0 is on the Planckian locus, a touch magenta of D65: nearly the identity, a touch green.
    gains = balance(srgb_source, 6504, 0)
    assert gains == pytest.approx(np.ones(3), abs=0.08)
    assert gains[1] > max(gains[0], gains[2])


def test_lower_temperature_setting_cools_and_positive_tint_turns_magenta(srgb_source) -> None:
    warm_light = balance(srgb_source, 3200, 9.8)
    assert warm_light[2] > 1.2 * warm_light[0]  # blue boosted against tungsten light
    magenta = balance(srgb_source, 6504, 60)
    assert magenta[1] < 0.95 * min(magenta[0], magenta[2])


def test_every_custom_white_balance_in_range_renders_a_picture() -> None:
    # 3000 K with tint +150 put the Canon's white outside what its sensor sees: a negative response, and every
    # pixel balanced to black without a word
    source = engine.open(need(CANON))
    for temperature in (1700, 3000, 25000):
        for tint in (-150, 150):
            recipe = Recipe(wb="custom", temperature=temperature, tint=tint)
            rendered = engine.render(source, recipe, preview=128)
            assert min(rendered.notes["white_balance"]["neutral"]) > 0
            assert rendered.pixels.mean() > 0.05, (temperature, tint)
    # a response short of that is pinned alike, so the picture does not jump where the response turns negative
    nikon = engine.open(need(NIKON))
    for tint in (30, 35):
        small = engine.render(nikon, Recipe(wb="custom", temperature=1700, tint=tint), preview=64)
        assert small.notes["white_balance"]["neutral"][2] == pytest.approx(1 / 64, abs=1e-6)


def test_a_custom_white_far_off_the_locus_changes_the_picture_smoothly() -> None:
    # Between tint +75 and +100 at 3000 K the Canon's white crossed the point where its blue cone response is 0:
    # chromatic adaptation scaled blue without bound, then negatively, and the picture lost its blue (mean 0 at
    # +100). Pinned as the DNG SDK pins it, each step of the slider moves the picture a little. Further on, the
    # camera's own blue response nears 0 (+140: the highlight ceiling took nearly all of blue, mean 0.12).
    source = engine.open(need(CANON))
    means = {tint: engine.render(source, Recipe(wb="custom", temperature=3000, tint=tint), preview=96).pixels
             .reshape(-1, 3).mean(axis=0) for tint in range(50, 151, 10)}
    steps = [np.abs(means[tint + 10] - means[tint]).max() for tint in range(50, 120, 10)]
    assert max(steps) < 0.05, steps
    assert min(m[2] for m in means.values()) > 0.25


def test_recipes_before_version_11_keep_their_unpinned_white() -> None:
    # the pins change the picture far off the daylight locus: a recipe (sidecar, output) written before renders
    # as it did (white balance params version 2, colour version 1, pinned by recipe version 11's migration)
    canon, nikon = engine.open(need(CANON)), engine.open(need(NIKON))
    white = {"wb": "custom", "temperature": 3000, "tint": 100}
    then = engine.render(canon, Recipe.from_dict({"version": 10, **white}), preview=96).pixels
    now = engine.render(canon, Recipe.from_dict(white), preview=96).pixels
    assert then[..., 2].mean() < 0.01 < 0.3 < now[..., 2].mean()  # version 10's lost blue, as it was rendered
    small = {"wb": "custom", "temperature": 1700, "tint": 30}
    kept = engine.render(nikon, Recipe.from_dict({"version": 10, **small}), preview=64)
    assert 0 < kept.notes["white_balance"]["neutral"][2] < 1 / 64


def test_vibrance_moves_muted_colours_as_a_photographer_expects_and_old_recipes_keep_theirs() -> None:
    # vibrance +100 was about saturation +10 on ordinary colours (the tester measured +9.6 % chroma)
    canon = engine.open(need(CANON))

    def chroma(recipe: Recipe) -> float:
        pixels = engine.render(canon, recipe, preview=200).pixels
        return float((pixels.max(axis=2) - pixels.min(axis=2)).mean())

    plain = chroma(Recipe())
    assert chroma(Recipe(vibrance=100)) > 1.25 * plain and chroma(Recipe(vibrance=-100)) < 0.75 * plain
    assert chroma(Recipe(vibrance=100)) < chroma(Recipe(saturation=100))  # saturated colours are spared
    assert chroma(Recipe.from_dict({"version": 10, "vibrance": 100})) < 1.12 * plain  # as version 10 rendered


def test_more_saturation_never_pales_a_bright_orange_and_old_recipes_keep_theirs(tmp_path: Path) -> None:
    # a tester's chart: vivid and saturation +60 turned a bright orange salmon, paler than no saturation at all,
    # because the boosted colour left the gamut and was pulled back towards grey (photofinish params before 4)
    from PIL import Image

    picture = np.full((64, 96, 3), 120, dtype=np.uint8)
    picture[16:48, 16:80] = (250, 160, 16)
    Image.fromarray(picture).save(tmp_path / "orange.png")
    source = engine.open(tmp_path / "orange.png")

    def chroma(recipe: Recipe) -> float:
        orange = engine.render(source, recipe, preview=96).pixels[24:40, 32:64]
        return float((orange.max(axis=2) - orange.min(axis=2)).mean())

    plain = chroma(Recipe())
    assert chroma(Recipe(saturation=60)) >= plain and chroma(Recipe(style="vivid")) >= plain
    assert chroma(Recipe.from_dict({"version": 13, "saturation": 60})) < 0.7 * plain  # as version 13 rendered
    from engine.xmp.recipe_properties import properties_to_recipe

    sidecar = properties_to_recipe({"schemaVersion": "13", "saturation": "60"}, "IMG.png.xmp")  # layout 13
    assert chroma(sidecar) == chroma(Recipe.from_dict({"version": 13, "saturation": 60}))


def test_highlights_and_shadows_keep_bright_colours_and_the_gradation_of_upper_tones(tmp_path: Path) -> None:
    # a tester: Highlights +50 turned a saturated yellow nearly white (255, 252, 241), and +100 clipped every grey
    # from 75 % up flat, because the local tone map lifted past white after the tone curve (photofinish params 3)
    from PIL import Image

    picture = np.full((60, 200, 3), 128, dtype=np.uint8)
    picture[:30, 20:80] = (250, 225, 20)
    picture[40:, :] = np.linspace(0, 255, 200).astype(np.uint8)[None, :, None]  # a grey ramp
    Image.fromarray(picture).save(tmp_path / "yellow.png")
    source = engine.open(tmp_path / "yellow.png")

    def render(recipe: Recipe) -> tuple[float, np.ndarray]:
        pixels = engine.render(source, recipe, preview=200).pixels
        yellow = pixels[8:22, 35:65]
        return float((yellow.max(axis=2) - yellow.min(axis=2)).mean()), pixels[50, 150:190].mean(axis=1)

    plain, _ = render(Recipe())
    for recipe in (Recipe(highlights=50), Recipe(highlights=100)):
        chroma, upper = render(recipe)
        assert chroma > 0.8 * plain, recipe
        assert np.all(np.diff(upper) > 0), recipe  # the greys from 75 % to 95 % keep their order: none clipped
    assert render(Recipe(exposure=1.5, shadows=100))[0] > 0.8 * plain  # (+1.5 EV takes the upper greys to white)
    before, upper = render(Recipe.from_dict({"version": 13, "highlights": 100}))
    assert before < 0.5 * plain and np.sum(upper >= 0.999) > 10  # as version 13 rendered: pale, the top clipped


def test_a_colour_a_little_past_white_keeps_its_saturation_and_one_at_white_luminance_turns_white() -> None:
    # a tester: vivid with Highlights +100 took a pure yellow's blue from 0 to 47, its style grid having lifted it
    # 1 % past white and the move's start being pulled towards grey from there
    from engine import operators_numpy as np_ops

    x = np.array([[[1.0135, 0.9, 0.0], [1.3, 1.1, 1.0], [0.5, 0.4, 0.3]]], dtype=np.float32)
    table = np.zeros((2, 17, 17), dtype=np.float32)
    for out in (np_ops.chroma_map(x, table, stop_at_gamut=True),
                ops.chroma_map(nchw(x), torch.from_numpy(table)[None], stop_at_gamut=True)[0].permute(1, 2, 0).numpy()):
        assert out[0, 0, 2] < 0.002 and out[0, 0, 0] > 0.98  # still a pure yellow
        assert np.allclose(out[0, 1], 1.0, atol=1e-5)  # luminance past white: white
        assert np.allclose(out[0, 2], x[0, 2], atol=1e-5)  # inside the gamut: as it was


def test_a_held_lift_leaves_pixels_past_white_and_unlifted_ones_alone_in_numpy_and_torch() -> None:
    # a reviewer: a pixel the style's grid had put past white read as lifted and was scaled down, so Shadows +1
    # changed highlights by up to 17 levels
    from engine import operators_numpy as np_ops

    before = np.array([[[1.2, 0.6, 0.3], [0.5, 0.25, 0.1], [0.9, 0.8, 0.1], [0.0, 0.0, 0.0]]], dtype=np.float32)
    gain = np.array([[[1.0], [1.0], [2.0], [4.0]]], dtype=np.float32)
    held = np_ops.lift_below_white(before, before * gain)
    assert np.array_equal(held[0, :2], before[0, :2])  # no lift: untouched, past white or not
    assert 0.9 < held[0, 2, 0] < 1.0 and held[0, 2, 2] / held[0, 2, 0] == pytest.approx(0.1 / 0.9, rel=1e-5)
    assert np.array_equal(held[0, 3], before[0, 3])
    as_torch = ops.lift_below_white(nchw(before), nchw(before * gain))[0].permute(1, 2, 0).numpy()
    assert np.allclose(as_torch, held, atol=1e-6)


def test_a_chroma_move_stops_at_the_gamut_s_edge_in_numpy_and_torch() -> None:
    from engine import operators_numpy as np_ops

    start = np.array([[[1.0, 0.644, 0.063], [0.4, 0.3, 0.2], [0.9, 0.95, 1.0]]], dtype=np.float32)
    end = np.array([[[1.096, 0.619, 0.030], [0.5, 0.25, 0.1], [1.3, 0.9, 1.2]]], dtype=np.float32)
    moved = np_ops.towards_within_gamut(start, end)
    assert np.allclose(moved[0, 0], start[0, 0], atol=1e-6)  # already at the edge: stays as saturated as it was
    assert np.allclose(moved[0, 1], end[0, 1])  # within the gamut: the whole move
    assert moved.min() >= 0.0 and moved.max() <= 1.0 + 1e-6
    as_torch = ops.towards_within_gamut(nchw(start), nchw(end))[0].permute(1, 2, 0).numpy()
    assert np.allclose(as_torch, moved, atol=1e-6)


def test_a_chroma_move_changes_smoothly_as_it_crosses_the_gamut_s_edge() -> None:
    # a reviewer's case: a colour the local tone map pushed past white in red, moved bluer by a table whose red
    # offset grows in fine steps; when the moved red crossed 1 the whole move was dropped (blue jumped by 0.27
    # between neighbouring offsets), since the move started on the gamut's edge; it starts just inside now
    from engine import operators_numpy as np_ops

    x = np.array([[[1.05, 0.6, 0.2]]], dtype=np.float32)
    outs = []
    for red in np.linspace(-0.3, 0.1, 401, dtype=np.float32):
        table = np.zeros((2, 17, 17), dtype=np.float32)
        table[0], table[1] = 1.0, red  # bluer, and redder or less red
        out = np_ops.chroma_map(x, table, stop_at_gamut=True)
        torch_out = ops.chroma_map(nchw(x), torch.from_numpy(table)[None], stop_at_gamut=True)
        assert np.allclose(torch_out[0].permute(1, 2, 0).numpy(), out, atol=1e-5)
        outs.append(out[0, 0])
    assert np.abs(np.diff(np.array(outs), axis=0)).max() < 0.05
    assert np.min(outs) >= 0.0 and np.max(outs) <= 1.0 + 1e-6


def _oklab_hue_chroma(linear_srgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Oklab hue (degrees) and chroma of linear sRGB, by colour-science (an implementation apart from ours)."""
    import colour

    lab = colour.XYZ_to_Oklab(colour.RGB_to_XYZ(linear_srgb.astype(np.float64), colour.RGB_COLOURSPACES["sRGB"],
                                                apply_cctf_decoding=False))
    return np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360.0, np.hypot(lab[..., 1], lab[..., 2])


def test_more_saturation_keeps_each_colour_s_hue_and_luminance_and_stops_at_the_gamut_s_edge() -> None:
    # a tester: saturation +100 turned a sky-cyan 26 degrees (CIELAB) towards blue and an orange towards red, and
    # past the gamut's edge more saturation gave a yellow back some blue; scaling log-chromaticities (photofinish
    # params before 5) raises channel ratios to a power, which bends hues towards the primaries
    from engine import operators_numpy as np_ops
    from engine.colour import srgb_decode, srgb_encode

    srgb = np.array([[(90, 170, 230), (60, 190, 210), (110, 150, 210), (230, 130, 40), (220, 170, 140),
                      (90, 160, 70), (140, 90, 180), (250, 225, 20), (200, 50, 50), (10, 10, 60), (128, 128, 128)]])
    x = srgb_decode(srgb / 255.0).astype(np.float32)
    hue, chroma = _oklab_hue_chroma(x)
    blue_of_yellow = []
    for amount in (1.3, 1.6, 2.0):
        out = np_ops.saturate(x, amount)
        assert np.allclose(ops.saturate(nchw(x), torch.tensor([amount]))[0].permute(1, 2, 0).numpy(), out,
                           atol=1e-5)
        assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
        assert np.allclose(np_ops.luminance(out), np_ops.luminance(x), atol=1e-5)
        new_hue, new_chroma = _oklab_hue_chroma(out)
        coloured = chroma > 0.02
        assert np.abs((new_hue - hue + 180.0) % 360.0 - 180.0)[coloured].max() < 2.5, amount
        assert np.all(new_chroma >= chroma - 1e-6)
        assert np.sum(new_chroma > 1.05 * chroma) == 9  # every colour but grey and the yellow on the edge gains
        assert np.allclose(out[0, -1], x[0, -1], atol=1e-5)  # grey stays grey
        blue_of_yellow.append(out[0, 7, 2])
    assert srgb_encode(np.array(blue_of_yellow)).max() < 2 / 255  # the yellow reaches the edge; no blue comes back
    assert np.allclose(np_ops.saturate(x, 1.0), x, atol=1e-5)
    for amount in (0.7, 0.4):  # less: a tester's -60 turned an orange 11 degrees towards red, a blue towards purple
        out = np_ops.saturate(x, amount)
        assert np.allclose(ops.saturate(nchw(x), torch.tensor([amount]))[0].permute(1, 2, 0).numpy(), out,
                           atol=1e-5)
        new_hue, new_chroma = _oklab_hue_chroma(out)
        coloured = chroma > 0.02
        assert np.abs((new_hue - hue + 180.0) % 360.0 - 180.0)[coloured].max() < 1.0, amount
        assert np.allclose(new_chroma[coloured] / chroma[coloured], amount, rtol=0.05), amount
        assert np.allclose(np_ops.luminance(out), np_ops.luminance(x), atol=1e-5)
    grey = np_ops.saturate(x, 0.0)
    assert np.abs(grey - np_ops.luminance(x)[..., None]).max() < 1e-5  # -100: black and white, luminance kept


def test_more_saturation_never_gives_colour_back_and_neighbouring_colours_move_alike() -> None:
    # a reviewer: a deep blue's constant-hue path touched the gamut's edge and came back in, so a bisection found
    # either exit: +45 gave more chroma than +50, and a blue ramp jumped by 0.12 between neighbours
    from engine import operators_numpy as np_ops

    colours = np.random.default_rng(3).random((60, 60, 3)).astype(np.float32) ** 2.2
    colours[0, 0] = (0.00090047, 0.01021343, 0.13320026)
    before = _oklab_hue_chroma(colours)[1]
    for amount in np.arange(1.05, 2.001, 0.05):
        chroma = _oklab_hue_chroma(np_ops.saturate(colours, float(amount)))[1]
        assert np.all(chroma >= before - 1e-6), amount
        before = chroma
    ramp = np.stack([np.full(400, 0.003), np.linspace(0.02, 0.035, 400), np.full(400, 0.3)], axis=-1)[None]
    for amount in (1.5, 2.0):
        assert np.abs(np.diff(np_ops.saturate(ramp.astype(np.float32), amount)[0], axis=0)).max() < 1e-3


def test_saturation_keeps_the_sky_s_hue_in_a_render_and_version_14_recipes_keep_theirs(tmp_path: Path) -> None:
    from PIL import Image

    from engine.xmp.recipe_properties import properties_to_recipe

    picture = np.full((64, 128, 3), 120, dtype=np.uint8)
    picture[16:48, 8:56], picture[16:48, 72:120] = (90, 170, 230), (230, 130, 40)  # a sky-cyan and an orange
    Image.fromarray(picture).save(tmp_path / "sky.png")
    source = engine.open(tmp_path / "sky.png")

    def hues(recipe: Recipe) -> np.ndarray:
        pixels = engine.render(source, recipe, preview=128).pixels
        from engine.colour import srgb_decode

        patches = np.stack([pixels[24:40, 20:44].mean(axis=(0, 1)), pixels[24:40, 84:108].mean(axis=(0, 1))])
        return _oklab_hue_chroma(srgb_decode(patches))[0]

    def turn(recipe: Recipe) -> float:
        return float(np.abs((hues(recipe) - plain + 180.0) % 360.0 - 180.0).max())

    plain = hues(Recipe())
    assert turn(Recipe(saturation=100)) < 3.0 and turn(Recipe(saturation=100, style="vivid")) < 12.0
    assert turn(Recipe(saturation=-60)) < 3.0 and turn(Recipe.from_dict({"version": 14, "saturation": -60})) > 5.0
    assert turn(Recipe.from_dict({"version": 14, "saturation": 100})) > 5.0  # as version 14 rendered
    sidecar = properties_to_recipe({"schemaVersion": "14", "saturation": "100"}, "IMG.png.xmp")  # layout 14
    assert turn(sidecar) == turn(Recipe.from_dict({"version": 14, "saturation": 100}))


def test_vibrance_spares_skin_and_version_15_recipes_keep_its_boost(tmp_path: Path) -> None:
    # a tester: vibrance +100 boosted skin more than sky (+42 % against +25 %), where Lightroom's holds skin back
    from PIL import Image

    from engine.colour import srgb_decode
    from engine.xmp.recipe_properties import properties_to_recipe

    picture = np.full((64, 192, 3), 120, dtype=np.uint8)
    # the ColorChecker's light skin, a darker skin and its blue sky: muted colours all three
    picture[16:48, 8:56], picture[16:48, 72:120], picture[16:48, 136:184] = (194, 150, 130), (141, 85, 60), \
        (98, 122, 157)
    Image.fromarray(picture).save(tmp_path / "portrait.png")
    source = engine.open(tmp_path / "portrait.png")

    def hue_chroma(recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
        pixels = engine.render(source, recipe, preview=192).pixels
        patches = np.stack([pixels[24:40, x:x + 24].mean(axis=(0, 1)) for x in (20, 84, 148)])
        return _oklab_hue_chroma(srgb_decode(patches))

    hue, chroma = hue_chroma(Recipe())
    now = hue_chroma(Recipe(vibrance=100))[1] / chroma - 1.0
    for style in ("natural", "vivid"):
        plain = hue_chroma(Recipe(style=style))[1]
        boosted = hue_chroma(Recipe(style=style, vibrance=100))[1]
        gain = boosted / plain - 1.0
        assert gain[2] > 0.2 and gain[0] < 0.5 * gain[2] and gain[1] < 0.5 * gain[2], (style, gain)
        assert gain[0] > 0.03 and gain[1] > 0.03, (style, gain)  # spared, not left out
    assert np.abs((hue_chroma(Recipe(vibrance=100))[0] - hue + 180.0) % 360.0 - 180.0).max() < 4.0
    less = hue_chroma(Recipe(vibrance=-100))[1] / chroma  # less vibrance takes colour from skin as from the sky
    assert less[0] < 0.8 and less[1] < 0.8 and less[2] < 0.8, less
    version_15 = Recipe.from_dict({"version": 15, "vibrance": 100})
    was = hue_chroma(version_15)[1] / chroma - 1.0
    assert was[0] > 2.0 * now[0] and was[0] > 0.9 * was[2], (was, now)  # as version 15 rendered: skin as the sky
    from engine.stages.photofinish import VibranceShape, chroma_scale

    u, v = np.meshgrid(np.linspace(-3, 3, 301), np.linspace(-3, 3, 301))  # params 5's tables, to the last bit
    old = (1.0 + 20.0 / 100.0) * (1.0 + (70.0 / 100.0) * 0.9 * np.exp(-np.sqrt(u**2 + v**2) / 1.0))
    assert np.array_equal(chroma_scale(u, v, 20.0, 70.0, VibranceShape(0.9, 1.0, 0.0)), np.maximum(old, 0.0))
    sidecar = properties_to_recipe({"schemaVersion": "15", "vibrance": "100"}, "IMG.png.xmp")  # layout 15
    assert np.array_equal(engine.render(source, sidecar, preview=192).pixels,
                          engine.render(source, version_15, preview=192).pixels)


def _green_cast(pixels: np.ndarray) -> float:
    mean = pixels.reshape(-1, 3).mean(axis=0)
    return float(mean[1] - (mean[0] + mean[2]) / 2)


@pytest.mark.parametrize("temperature", [1700, 2500, 3200])
def test_more_tint_is_never_greener(temperature: int) -> None:
    # a tester's 1700 K at tint +150 was lime green, as -150 is: past the tint where the colour matrix can still
    # map the white to white, each step of magenta turned the picture greener. The tint is limited there now
    source = engine.open(need(CANON))
    casts = [_green_cast(engine.render(source, Recipe(wb="custom", temperature=temperature, tint=tint),
                                       preview=96).pixels) for tint in (-150, -50, 0, 25, 50, 100, 150)]
    assert all(later <= earlier + 1e-3 for earlier, later in zip(casts, casts[1:], strict=False)), casts
    assert casts[0] > 0.1 > -0.03 > casts[-1]  # -150 green, +150 magenta


def test_a_limited_tint_is_said_and_recorded(tmp_path: Path) -> None:
    from engine.stages.white_balance import reachable_tint

    source = engine.open(need(CANON))
    assert reachable_tint(source.calibration, 5000, 150) == 150  # daylight: every tint of the slider
    used = reachable_tint(source.calibration, 2500, 150)
    assert 0 < used < 100
    result = engine.render_file(need(CANON), tmp_path / "t.tif", changes={"wb": "custom", "temperature": 2500,
                                                                          "tint": 150})
    assert result.notice == (f"tint +150 at 2500 K is beyond what this camera's colour calibration balances to "
                             f"white: rendered with tint {used:+g}")
    assert result.recipe.tint == 150  # the photographer's setting is kept; the picture is the nearest it reaches
    assert abs(result.white_balance["tint"] - used) < 1.0


def test_recipes_before_version_17_keep_their_tint_and_gains() -> None:
    # the limit and the raised gains change pictures of far-off custom whites: a recipe written before renders as
    # it did (white balance params version 3, pinned by recipe version 17's migration)
    source = engine.open(need(CANON))
    white = {"wb": "custom", "temperature": 1700, "tint": 150}
    then = engine.render(source, Recipe.from_dict({"version": 16, **white}), preview=96).pixels
    now = engine.render(source, Recipe.from_dict(white), preview=96).pixels
    assert _green_cast(then) > 0.1 > -0.03 > _green_cast(now)  # version 16's green, as it was rendered


def test_layout_16_sidecars_keep_what_recipe_version_16_rendered() -> None:
    # a reviewer's: the layout stayed 16 with recipe version 17, so sidecars written before it read as current
    from engine.xmp.recipe_properties import SCHEMA_VERSION, properties_to_recipe

    assert SCHEMA_VERSION == engine.recipe.RECIPE_VERSION
    sidecar = properties_to_recipe({"schemaVersion": "16", "temperature": "2500", "tint": "150"}, "IMG.dng.xmp")
    assert sidecar.stage("white_balance").params == {"version": 3}
    assert sidecar.stage("denoise").params == {"version": 5}
    white = _white_balance_params(sidecar)
    assert (white.unreachable_tint, white.gains_below_one) == ("kept", "kept")
    current = properties_to_recipe({"schemaVersion": "17", "temperature": "2500", "tint": "150"}, "IMG.dng.xmp")
    assert _white_balance_params(current).unreachable_tint == "limited"


def _white_balance_params(recipe: Recipe) -> Any:
    from engine.pipeline import stage_for

    return stage_for("white_balance", recipe).resolve_params(recipe)


def test_a_custom_white_balance_keeps_an_images_whites_white(tmp_path: Path) -> None:
    # a tester's white page came out 75 % grey at 3000 K: a gain below 1 (red, warmer than the image's own white)
    # set the highlight ceiling below white. The gains are raised so the lowest is 1, as LibRaw scales them
    from PIL import Image

    page = tmp_path / "white.png"
    Image.new("RGB", (64, 64), (255, 255, 255)).save(page)
    for temperature in (3000, 4000, 9000):
        pixels = engine.render(engine.open(page), Recipe(wb="custom", temperature=temperature)).pixels
        assert pixels.min() > 0.9 and np.ptp(pixels.reshape(-1, 3).mean(axis=0)) < 0.02, temperature


def test_chromatic_adaptation_is_pinned_as_the_dng_sdk_pins_it() -> None:
    from engine.colour import BRADFORD, D50_XY, bradford_adaptation, temperature_tint_to_xy, xy_to_xyz

    daylight = temperature_tint_to_xy(5000, 10)
    assert np.allclose(bradford_adaptation(daylight, D50_XY) @ xy_to_xyz(daylight), xy_to_xyz(D50_XY))
    for white in (temperature_tint_to_xy(3000, 100), temperature_tint_to_xy(1700, 0)):  # blue cone at or near 0
        cones = BRADFORD @ bradford_adaptation(white, D50_XY) @ np.linalg.inv(BRADFORD)
        assert np.allclose(cones, np.diag(np.diag(cones)))
        assert np.diag(cones).min() >= 0.1 - 1e-9 and np.diag(cones).max() <= 10.0 + 1e-9


# --- pinned parameters and re-renders -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_dng(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colorchecker_dng(tmp_path_factory.mktemp("pin") / "small.dng", 120, 180, iso=400, model="Small")


def test_a_rerender_equals_the_render(small_dng: Path) -> None:
    source = engine.open(small_dng)
    assert np.array_equal(engine.render(source).pixels, engine.render(source).pixels)


def test_pinned_operator_parameters_reproduce_the_same_pixels(small_dng: Path) -> None:
    source = engine.open(small_dng)
    first = engine.render(source, Recipe(exposure=0.4, contrast=20))
    # What the photofinish stage decided, through JSON as a sidecar stores it.
    operators = json.loads(json.dumps(first.notes["photofinish"]["operators"]))
    pinned = Recipe(exposure=0.4, contrast=20,
                    stages={"photofinish": StageSettings(params={"operators": operators})})
    again = engine.render(engine.open(small_dng), pinned)
    assert np.array_equal(again.pixels, first.pixels)
    # Pinned, the decision no longer follows the adjustments: the operators win.
    assert np.array_equal(engine.render(source, pinned.replace(exposure=2.0)).pixels, first.pixels)


# --- stage parameters and their versions ----------------------------------------------------------------------

@dataclass(frozen=True)
class GlowParams:
    VERSION: ClassVar[int] = 2
    amount: float = 0.0  # was "strength" (0..1) in version 1; now 0..100
    radius: float = 2.0


class Glow(Stage):
    name = "detail"
    implementation = "glow"
    Params = GlowParams

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        if version == 1:
            params = dict(params)
            params["amount"] = 100.0 * params.pop("strength")
        return params

    def prepare(self, params: Any, ctx: Context) -> Any:
        return params

    def process(self, image: np.ndarray, data: Any, ctx: Context) -> np.ndarray:
        return image


def recipe_with(params: dict[str, Any]) -> Recipe:
    return Recipe(stages={"detail": StageSettings(params=params)})


def test_params_of_an_older_version_are_migrated() -> None:
    params = Glow().resolve_params(recipe_with({"version": 1, "strength": 0.25, "radius": 3}))
    assert params == GlowParams(amount=25.0, radius=3)


def test_current_params_are_used_as_they_are() -> None:
    assert Glow().resolve_params(recipe_with({"amount": 5.0})) == GlowParams(amount=5.0)
    assert Glow().resolve_params(Recipe()) == GlowParams()


def test_params_from_a_newer_version_or_unknown_names_are_refused() -> None:
    with pytest.raises(RecipeError, match="newer"):
        Glow().resolve_params(recipe_with({"version": 3, "amount": 1.0}))
    with pytest.raises(RecipeError, match="no parameter 'strength'"):
        Glow().resolve_params(recipe_with({"strength": 1.0}))


FROZEN_V1_SIDECAR = Path(__file__).parent / "data" / "hostplug-stage-params-v1.xmp"


def detail_radius_doubled_in_version_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the classical detail stage moved to params version 2, where ``radius`` means twice as much."""
    from engine.stages import catalogue
    from engine.stages.detail import DetailParams, UnsharpMask

    def migrate(cls: type, params: dict[str, Any], version: int) -> dict[str, Any]:
        return {**params, "radius": 2.0 * params["radius"]} if version < 2 else params

    monkeypatch.setattr(DetailParams, "VERSION", 2)
    monkeypatch.setitem(catalogue.PARAMS_VERSIONS, ("detail", "classical"), 2)
    monkeypatch.setattr(UnsharpMask, "migrate", classmethod(migrate))


def test_a_frozen_version_1_sidecar_is_migrated_after_a_version_bump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.stages.denoise import ClassicalDenoise
    from engine.stages.detail import UnsharpMask
    from engine.xmp.sidecar import read_sidecar

    detail_radius_doubled_in_version_2(monkeypatch)
    raw = tmp_path / "IMG_0001.DNG"
    raw.touch()
    (tmp_path / "IMG_0001.DNG.xmp").write_bytes(FROZEN_V1_SIDECAR.read_bytes())
    info = read_sidecar(raw)
    assert info is not None and info.recipe is not None
    recipe = info.recipe
    assert UnsharpMask().resolve_params(recipe).radius == 4.0
    assert ClassicalDenoise().resolve_params(recipe).strength == 20  # a stage still at version 1 is untouched
    # Stored again, the old params keep saying which version they are, so they are migrated again next time.
    assert recipe.to_dict()["stages"]["detail"]["params"] == {"version": 1, "radius": 2.0}


def test_params_a_version_1_recipe_stored_without_a_version_are_version_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.stages.detail import UnsharpMask

    detail_radius_doubled_in_version_2(monkeypatch)
    stored = Recipe.from_dict({"version": 1, "stages": {"detail": {"params": {"radius": 2.0}}}})
    assert UnsharpMask().resolve_params(stored).radius == 4.0
    # Made in this process (``--set``, pinning), params are current, and stored with the current version.
    fresh = Recipe(stages={"detail": StageSettings(params={"radius": 2.0})})
    assert UnsharpMask().resolve_params(fresh).radius == 2.0
    assert fresh.to_dict()["stages"]["detail"]["params"] == {"version": 2, "radius": 2.0}
    assert Recipe.from_json(fresh.to_json()) == fresh


def test_each_implementation_s_params_version_is_the_one_the_recipe_stamps() -> None:
    from engine.pipeline import IMPLEMENTATIONS, STAGE_ORDER
    from engine.stages.catalogue import DEFAULT_IMPLEMENTATIONS, PARAMS_VERSIONS

    registered = {(name, impl): stage.Params.VERSION for name, impls in IMPLEMENTATIONS.items()
                  for impl, stage in impls.items()}
    assert registered == PARAMS_VERSIONS
    assert set(DEFAULT_IMPLEMENTATIONS) == set(STAGE_ORDER)
    assert all(impl in IMPLEMENTATIONS[name] for name, impl in DEFAULT_IMPLEMENTATIONS.items())


# --- params that describe themselves --------------------------------------------------------------------------

class Untouchable(Source):
    """A source that fails the test if any stage reads it: params must be refused before any pixel work."""

    def __init__(self) -> None:  # a Source (render checks that), with nothing in it
        pass

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__"):
            return super().__getattribute__(name)
        raise AssertionError(f"the source's {name} was read before the params were checked")


@pytest.mark.parametrize(
    ("stage", "params", "words"),
    [
        ("denoise", {"strength": 500}, "'denoise' parameter 'strength' = 500 is out of range (0 to 100)"),
        ("denoise", {"strength": float("nan")}, "'strength' = nan is not a finite number"),
        ("denoise", {"strength": "high"}, "'strength' = 'high' is not a number"),
        ("demosaic", {"algorithm": "fancy"}, "'algorithm' = 'fancy' is not one of: mhc, ahd, dcb, aahd, vng"),
        ("white_balance", {"mode": "daylight"}, "'mode' = 'daylight' is not one of: as-shot, auto, custom"),
        ("white_balance", {"neutral": [0.5, 1.0]}, "'neutral' = [0.5, 1.0] is not a list of 3 numbers"),
        ("white_balance", {"estimator": "gray-world"}, "is not one of: learned, classical"),
        ("colour", {"matrix": [[1, 0, 0], [0, 1, 0]]}, "'matrix' = [[1, 0, 0], [0, 1, 0]] is not a list of 3"),
        ("upsample", {"cells": 2.5}, "'cells' = 2.5 is not a whole number"),
        ("photofinish", {"exposure": float("inf")}, "'exposure' = inf is not a finite number"),
        ("photofinish", {"operators": [1, 2]}, "'operators' = [1, 2] is not an object"),
        ("detail", {"amount": 101}, "'amount' = 101 is out of range (0 to 100)"),
        ("detail", {"version": "one", "amount": 1}, "'detail' params version 'one' is not a whole number"),
    ],
)
def test_bad_stage_params_are_refused_in_one_line_before_any_pixel(stage: str, params: dict, words: str) -> None:
    recipe = Recipe(stages={stage: StageSettings(params=params)})
    with pytest.raises(RecipeError) as info:
        engine.render(Untouchable(), recipe)  # type: ignore[arg-type]
    assert words in str(info.value) and f"stage {stage!r}" in str(info.value)
    assert "\n" not in str(info.value)


def test_learned_denoise_choices_are_the_sizes_and_noise_sources_it_knows() -> None:
    import typing

    from engine.io.noise_level import NOISE_SOURCES
    from engine.models.denoiser import SIZES
    from engine.stages.denoise_learned import LearnedDenoiseParams
    from engine.stages.params import field_types

    hints = field_types(LearnedDenoiseParams)
    assert typing.get_args(hints["model"]) == tuple(SIZES)
    assert typing.get_args(hints["noise"]) == NOISE_SOURCES


def test_json_lists_become_the_declared_tuples() -> None:
    from engine.stages.colour_matrix import ColourMatrix

    recipe = Recipe(stages={"colour": StageSettings(params={"matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]})})
    matrix = ColourMatrix().resolve_params(recipe).matrix
    assert matrix == ((1, 0, 0), (0, 1, 0), (0, 0, 1))


def test_stages_declare_their_resolution_and_encoding() -> None:
    from engine.pipeline import IMPLEMENTATIONS

    facts = {name: {(s.resolution, s.encoding) for s in impls.values()} for name, impls in IMPLEMENTATIONS.items()}
    assert facts == {
        "demosaic": {("full", "linear")}, "denoise": {("full", "linear")}, "white_balance": {("full", "linear")},
        "colour": {("full", "linear")}, "photofinish": {("low", "display")}, "upsample": {("full", "display")},
        "detail": {("full", "display")},
    }


def test_detail_takes_the_style_s_sharpening_through_its_params() -> None:
    from engine.stages.detail import UnsharpMask

    assert UnsharpMask().params_from(Recipe()).amount == 25.0  # the natural style's default
    assert UnsharpMask().params_from(Recipe(sharpening=60.0)).amount == 60.0


def test_white_balance_hands_the_colour_stage_its_white_as_a_typed_field(srgb_source) -> None:
    ctx = Context(source=srgb_source, recipe=Recipe())
    WhiteBalance().process(np.full((4, 4, 3), 0.5, dtype=np.float32), {"params": WhiteBalanceParams()}, ctx)
    assert ctx.white is not None
    assert list(ctx.white.neutral) == ctx.notes["white_balance"]["neutral"]
    assert list(ctx.white.white_xy) == ctx.notes["white_balance"]["white_xy"]


def test_one_luma_table_serves_numpy_torch_and_the_kernels() -> None:
    from engine import colour
    from engine.models import detail_net

    assert ops.LUMA is colour.LUMA and detail_net.LUMA is colour.LUMA
    assert colour.LUMA == (0.2126, 0.7152, 0.0722)


def test_a_current_value_set_on_top_of_old_params_is_not_migrated_away() -> None:
    stored = Recipe.from_dict({"wb": "auto",
                               "stages": {"white_balance": {"params": {"version": 1, "mode": "auto"}}}})
    assert WhiteBalance().resolve_params(stored).estimator == "classical"  # version 1 knew only the classical one
    settings = stored.stage("white_balance")
    changed = stored.replace(stages={"white_balance": StageSettings(params={**settings.params,
                                                                            "estimator": "learned"})})
    assert WhiteBalance().resolve_params(changed).estimator == "learned"


@pytest.mark.parametrize("operators, says", [
    ({}, "lack 'gain_ev'"),
    ({"gain_ev": 1}, "lack 'knee'"),
    ({"gain_ev": "a", "knee": 0.8, "tone": [1, 0, 0], "local_tone": [[[[[0]]]]], "chroma": [[[[0]], [[0]]]],
      "gamma": 2.2}, "'gain_ev' is not numbers"),
    ({"gain_ev": 0, "knee": 0.8, "tone": [1, 0], "local_tone": [[[[[0]]]]], "chroma": [[[[0]], [[0]]]],
      "gamma": 2.2}, "'tone' has shape (2,)"),
    ({"gain_ev": 0, "knee": 0.8, "tone": [1, 0, 0], "local_tone": [[[[[0]]]]], "chroma": [[[[0]], [[0]]]],
      "gamma": float("nan")}, "'gamma' has values outside"),
])
def test_pinned_operators_are_checked_before_any_pixel(operators: dict, says: str) -> None:
    # a sidecar or --set may pin them by hand: a wrong set is one line, not a traceback at render time
    from engine.edits import check_renderable

    recipe = Recipe(stages={"photofinish": StageSettings(params={"operators": operators})})
    with pytest.raises(RecipeError, match=re.escape(says)):
        check_renderable(recipe)
