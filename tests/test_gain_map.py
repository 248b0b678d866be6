"""DNG lens-shading maps (GainMap opcodes, which phones and drones write and LibRaw ignores): a raw whose corners
the lens darkened, and tinted, renders as the same scene without the shading, on every demosaic path."""

from __future__ import annotations

import math
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

import engine
import engine.stages.demosaic as demosaic_stage
from engine import kernels
from engine.io import gain_map
from engine.io.gain_map import GainMap, RadialGain
from engine.recipe import Recipe
from engine.stages.demosaic import linear_raw_to_rgb
from engine.training import synthetic
from engine.training.raw_noise import RGGB, add_noise, mosaic
from engine.xmp.recipe_properties import properties_to_recipe
from tests.conftest import NIKON, hostplug, need
from tests.hostile_inputs import dng_with, opcode_list, undefined
from tests.test_xtrans import XTRANS

HEIGHT, WIDTH = 528, 792
# How much brighter each corner's red, green and blue are made by the maps than the middle (a phone's lens:
# about a stop and a half at the corners, more in red and blue than in green, so the corners also turn green).
CORNER_GAIN = (3.0, 2.2, 3.4)
LINEAR = {name: engine.StageSettings(enabled=False) for name in ("denoise", "photofinish", "detail")}


def _listed(maps: list[GainMap]) -> bytes:
    """An OpcodeList of GainMap opcodes, as a camera writes it."""
    return opcode_list(*((9, gain_map.encode(m)) for m in maps))


def _radial(strength: float, planes: int = 1) -> np.ndarray:
    """A 13 x 17 grid of gains rising from 1 in the middle to ``strength`` at the corners."""
    v, u = np.linspace(0, 1, 13), np.linspace(0, 1, 17)
    r2 = ((v[:, None] - 0.5) ** 2 + (u[None, :] - 0.5) ** 2) / 0.5
    return np.repeat((1 + (strength - 1) * r2).astype(np.float32)[..., None], planes, axis=2)


def bayer_maps() -> list[GainMap]:
    """Four maps, one per RGGB position (pitch 2), as Android writes them in OpcodeList2."""
    positions = {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 2}
    return [GainMap(dy, dx, HEIGHT, WIDTH, 0, 1, 2, 2, (1 / 12, 1 / 16), (0.0, 0.0), _radial(CORNER_GAIN[c]))
            for (dy, dx), c in positions.items()]


def rgb_map() -> GainMap:
    """One map of three planes on the demosaiced image, as DJI's drones write it in OpcodeList3."""
    gains = np.concatenate([_radial(g) for g in CORNER_GAIN], axis=2)
    return GainMap(0, 0, HEIGHT, WIDTH, 0, 3, 1, 1, (1 / 12, 1 / 16), (0.0, 0.0), gains)


def _shaded(raw: synthetic.SyntheticRaw, gain: np.ndarray) -> synthetic.SyntheticRaw:
    """``raw`` as the lens delivered it: each pixel divided by the gain that restores it."""
    signal = (raw.cfa.astype(np.float64) - raw.black_level) / gain
    return replace(raw, cfa=np.rint(signal + raw.black_level).astype(np.uint16))


def _write(path: Path, raw: synthetic.SyntheticRaw, lists: dict[int, bytes] | None = None,
           pattern: np.ndarray = RGGB) -> Path:
    synthetic.write_dng(path, raw, make="hostplug", model="Synthetic phone", iso=100, exposure_time=0.01,
                        f_number=2.0, pattern=pattern, opcode_lists=lists)
    return path


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A noiseless chart without shading, and the same chart shaded by the lens with the maps that undo it in
    OpcodeList2 (on the mosaic) and in OpcodeList3 (on the demosaiced image)."""
    folder = tmp_path_factory.mktemp("gain_map")
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(HEIGHT, WIDTH), iso=100, noise=False)
    rows, cols = range(HEIGHT), range(WIDTH)
    mosaic_gain = gain_map.combined_gain(bayer_maps(), rows, cols, (HEIGHT, WIDTH))
    plane_gain = np.stack([rgb_map().field(rows, cols, (HEIGHT, WIDTH), plane) for plane in range(3)], axis=2)
    rgb_gain = mosaic(plane_gain, RGGB)  # each pixel's own colour's gain
    return {
        "flat": _write(folder / "flat.dng", raw),
        "list2": _write(folder / "list2.dng", _shaded(raw, mosaic_gain), {51009: _listed(bayer_maps())}),
        "list3": _write(folder / "list3.dng", _shaded(raw, rgb_gain), {51022: _listed([rgb_map()])}),
    }


def _linear(path: Path, recipe: Recipe | None = None, **demosaic: object) -> engine.Rendered:
    stages = {**LINEAR, "demosaic": engine.StageSettings(params=demosaic)}
    return engine.render(engine.open(path), recipe or Recipe(stages=stages))


def _corner(image: np.ndarray) -> np.ndarray:
    return image[:40, :40].reshape(-1, 3).mean(axis=0)


def test_a_gain_map_is_interpolated_at_pixel_centres_as_the_dng_sdk_does() -> None:
    two = GainMap(0, 0, 4, 8, 0, 1, 1, 1, (1.0, 1.0), (0.0, 0.0), np.array([[[1.0], [3.0]]], dtype=np.float32))
    gain = two.field(range(4), range(8), (4, 8))
    np.testing.assert_allclose(gain[0], 1.0 + 2.0 * (np.arange(8) + 0.5) / 8, rtol=1e-6)  # one row of points
    parsed = gain_map.parse(gain_map.encode(two))
    assert (parsed.top, parsed.right, parsed.spacing, parsed.origin) == (0, 8, (1.0, 1.0), (0.0, 0.0))
    assert np.array_equal(parsed.gains, two.gains)
    every_other = replace(two, left=1, col_pitch=2)
    assert np.all(every_other.field(range(4), range(8), (4, 8))[:, ::2] == 1.0)  # untouched columns


def test_opcode_list_2_gain_maps_undo_the_lens_shading_on_every_demosaic_path(phone: dict[str, Path]) -> None:
    flat = _linear(phone["flat"]).pixels
    shaded = _linear(phone["list2"])
    assert shaded.notes["gain_maps"] == "4 in OpcodeList2: applied"
    assert np.abs(shaded.pixels - flat).max() < 2e-3  # only the shaded raw's rounding to whole numbers
    with kernels.torch_everywhere():
        np.testing.assert_allclose(np.asarray(_linear(phone["list2"]).pixels), shaded.pixels, atol=1e-5)
    libraw = {name: _linear(phone[name], algorithm="ahd").pixels for name in ("flat", "list2")}
    assert np.abs(libraw["list2"] - libraw["flat"]).mean() < 1e-3
    np.testing.assert_allclose(_corner(libraw["list2"]), _corner(libraw["flat"]), rtol=0.01)


def test_without_the_maps_the_corners_stay_dark_and_tinted(phone: dict[str, Path]) -> None:
    flat = _corner(_linear(phone["flat"]).pixels)
    off = _linear(phone["list2"], gain_map=False)
    assert off.notes["gain_maps"] == "4 in OpcodeList2: not applied (gain_map off)"
    ratio = _corner(off.pixels) / flat
    assert np.all(ratio < 0.8) and ratio[1] > 1.2 * max(ratio[0], ratio[2])  # darker, and greener


def test_opcode_list_3_gain_maps_apply_to_the_demosaiced_image(phone: dict[str, Path]) -> None:
    flat = _linear(phone["flat"]).pixels
    shaded = _linear(phone["list3"])
    assert shaded.notes["gain_maps"] == "1 in OpcodeList3: applied"
    np.testing.assert_allclose(_corner(shaded.pixels), _corner(flat), rtol=0.01)
    assert np.median(np.abs(shaded.pixels - flat)) < 1e-3
    with kernels.torch_everywhere():
        np.testing.assert_allclose(np.asarray(_linear(phone["list3"]).pixels), shaded.pixels, atol=1e-5)


def test_an_x_trans_raw_gets_its_gain_map_through_libraws_demosaic(tmp_path: Path) -> None:
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(HEIGHT, WIDTH), iso=100, noise=False)
    signal = mosaic(raw.camera_rgb, XTRANS)
    span = synthetic.WHITE_LEVEL - synthetic.BLACK_LEVEL
    xtrans = replace(raw, cfa=np.rint(synthetic.BLACK_LEVEL + signal * span).astype(np.uint16))
    one = GainMap(0, 0, HEIGHT, WIDTH, 0, 1, 1, 1, (1 / 12, 1 / 16), (0.0, 0.0), _radial(2.5))
    gain = one.field(range(HEIGHT), range(WIDTH), (HEIGHT, WIDTH))
    flat = _linear(_write(tmp_path / "flat.dng", xtrans, pattern=XTRANS)).pixels
    shaded = _linear(_write(tmp_path / "shaded.dng", _shaded(xtrans, gain), {51009: _listed([one])},
                            pattern=XTRANS))
    assert shaded.notes["demosaic"] == "libraw-ahd" and shaded.notes["gain_maps"] == "1 in OpcodeList2: applied"
    np.testing.assert_allclose(_corner(shaded.pixels), _corner(flat), rtol=0.01)


def test_a_linear_raw_dng_gets_its_gain_map_after_its_polynomial(tmp_path: Path) -> None:
    nikon = need(NIKON)
    with tifffile.TiffFile(nikon) as tif:
        existing = next(bytes(page.tags[51009].value) for page in (tif.pages[0], *(tif.pages[0].pages or []))
                        if 51009 in page.tags)
    (count,) = struct.unpack(">I", existing[:4])
    height, width = engine.open(nikon).size
    brighter = GainMap(0, 0, height, width, 0, 3, 1, 1, (1.0, 1.0), (0.0, 0.0),
                       np.array([[[1.5, 1.2, 1.0]]], dtype=np.float32))
    patched = tmp_path / "nikon_gain.dng"
    extended = struct.pack(">I", count + 1) + existing[4:] + _listed([brighter])[4:]
    patched.write_bytes(dng_with(raw={51009: undefined(extended)}, base=nikon.read_bytes()))
    source = engine.open(patched)
    assert len(source.gain_maps) == 1 and len(source.polynomial_maps) == len(engine.open(nikon).polynomial_maps)
    before, after = linear_raw_to_rgb(source), linear_raw_to_rgb(source, source.gain_maps)
    unclipped = (before > 0).all(axis=2)  # a dark frame: nothing near white
    np.testing.assert_allclose(np.median(after[unclipped] / before[unclipped], axis=0), [1.5, 1.2, 1.0], rtol=1e-4)
    assert _linear(patched).notes["gain_maps"] == "1 in OpcodeList2: applied"


def test_the_denoiser_knows_the_maps_raised_the_noise_in_the_corners(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # ISO 3200 noise on the shaded raw, as a sensor adds it: the maps raise it with the signal
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(HEIGHT, WIDTH), iso=3200, noise=False)
    span = raw.white_level - raw.black_level
    signal = (raw.cfa.astype(np.float64) - raw.black_level) / span
    gain = gain_map.combined_gain(bayer_maps(), range(HEIGHT), range(WIDTH), (HEIGHT, WIDTH))
    noisy = add_noise(signal / gain, *raw.noise_profile, np.random.default_rng(1))
    cfa = np.clip(np.rint(raw.black_level + noisy * span), 0, raw.white_level).astype(np.uint16)
    kw = {"make": "hostplug", "model": "phone", "iso": 3200, "exposure_time": 0.01, "f_number": 2.0,
          "noise_profile": raw.noise_profile}
    synthetic.write_dng(tmp_path / "clean.dng", raw, **kw)
    synthetic.write_dng(tmp_path / "noisy.dng", replace(raw, cfa=cfa),
                        opcode_lists={51009: _listed(bayer_maps())}, **kw)
    # without the false-colour medians, which change the noise the network was trained on (docs/rendering.md)
    plain = engine.StageSettings(params={"false_colour_passes": 0})
    learned = {**LINEAR, "demosaic": plain, "denoise": engine.StageSettings(implementation="learned")}
    clean = engine.render(engine.open(tmp_path / "clean.dng"), Recipe(stages={**LINEAR, "demosaic": plain})).pixels

    def errors() -> tuple[float, float]:
        """RMS error against the clean render in the four corners, and in the middle."""
        rendered = engine.render(engine.open(tmp_path / "noisy.dng"), Recipe(stages=learned))
        error = np.square(np.asarray(rendered.pixels) - clean)
        corners = np.concatenate([error[:80, :80], error[:80, -80:], error[-80:, :80], error[-80:, -80:]])
        middle = error[HEIGHT // 2 - 60 : HEIGHT // 2 + 60, WIDTH // 2 - 60 : WIDTH // 2 + 60]
        return float(np.sqrt(corners.mean())), float(np.sqrt(middle.mean()))

    aware = errors()
    with kernels.torch_everywhere():
        np.testing.assert_allclose(errors(), aware, rtol=0.02)
    monkeypatch.setattr(demosaic_stage, "Shading", lambda *args, **kwargs: None)  # the noise model as before
    unaware = errors()
    assert aware[0] < 0.7 * unaware[0]  # measured: 0.0059 against 0.0102
    assert aware[1] == pytest.approx(unaware[1], rel=0.05)  # the middle, which the maps leave alone


def test_recipes_from_before_gain_maps_keep_rendering_without_them(phone: dict[str, Path]) -> None:
    old = Recipe.from_dict({"version": 4, "stages": {name: {"enabled": False} for name in LINEAR}})
    assert _linear(phone["list2"], old).notes["gain_maps"] == "4 in OpcodeList2: not applied (gain_map off)"
    sidecar = properties_to_recipe({"schemaVersion": "4", "exposure": "0.3"}, "old.xmp")
    assert sidecar.stage("demosaic").params == {"version": 1}
    newer = properties_to_recipe({"schemaVersion": "5", "exposure": "0.3"}, "newer.xmp")
    assert newer.stage("demosaic").params == {"version": 2}  # maps applied, bad pixels not yet repaired
    assert _linear(phone["list2"], Recipe.from_dict({"version": 5, "stages": {
        name: {"enabled": False} for name in LINEAR}})).notes["gain_maps"] == "4 in OpcodeList2: applied"
    before_false_colour = properties_to_recipe({"schemaVersion": "7", "exposure": "0.3"}, "7.xmp")
    assert before_false_colour.stage("demosaic").params == {"version": 3}  # the demosaic's false colour left
    before_camera_crop = properties_to_recipe({"schemaVersion": "9", "exposure": "0.3"}, "9.xmp")
    assert before_camera_crop.stage("demosaic").params == {"version": 4}  # a raw that is no DNG keeps its border
    before_image_unprocessing = properties_to_recipe({"schemaVersion": "10", "exposure": "0.3"}, "10.xmp")
    assert before_image_unprocessing.stage("demosaic").params == {"version": 5}  # an image input decoded
    current = properties_to_recipe({"schemaVersion": "13", "exposure": "0.3"}, "new.xmp")
    assert current.stage("demosaic").params == {}


def test_info_names_the_lens_shading_maps(phone: dict[str, Path]) -> None:
    result = hostplug("info", phone["list2"])
    assert result.exit_code == 0
    assert "lens shading      4 GainMap(s) of 13 x 17 points in OpcodeList2, applied at render" in result.stdout
    assert "lens shading      none in the file" in hostplug("info", phone["flat"]).stdout


@pytest.mark.parametrize(("change", "why"), [
    ({"gains": np.full((13, 17, 1), np.nan, dtype=np.float32)}, "gains outside 0..64"),
    ({"gains": np.full((13, 17, 1), 1000.0, dtype=np.float32)}, "gains outside 0..64"),
    ({"spacing": (0.0, 1 / 16)}, "spacing above 0"),
    ({"bottom": 0}, "over rows 0..0"),
])
def test_a_damaged_gain_map_is_refused_in_one_line(tmp_path: Path, phone: dict[str, Path], change: dict,
                                                   why: str) -> None:
    damaged = tmp_path / "damaged.dng"
    bad = replace(bayer_maps()[0], **change)  # the dataclass checks nothing: the damage goes into the file
    damaged.write_bytes(dng_with(raw={51009: undefined(opcode_list((9, gain_map.encode(bad))))},
                                 base=phone["flat"].read_bytes()))
    result = hostplug("render", damaged, "-o", tmp_path / "out.tif")
    assert result.exit_code != 0 and not (tmp_path / "out.tif").exists()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "damaged DNG: OpcodeList2" in lines[0] and why in lines[0], lines


def _short_of_two_gains() -> bytes:
    return gain_map.encode(bayer_maps()[0])[:-8]


def _four_million_points() -> bytes:
    """4 million points in one column (16 MB, within an opcode's limit): interpolating them would take gigabytes."""
    return gain_map.encode(replace(bayer_maps()[0], gains=np.ones((1 << 22, 1, 1), dtype=np.float32)))


@pytest.mark.parametrize(("params", "why"), [
    (_short_of_two_gains, "a GainMap of 13 x 17 x 1 points in 952 bytes"),
    (_four_million_points, "a GainMap of 4194304 x 1 points (1 to 1024 a side)"),
], ids=["two gains short", "4 million points"])
def test_a_gain_map_of_impossible_points_is_refused(tmp_path: Path, phone: dict[str, Path], params: Any,
                                                    why: str) -> None:
    damaged = tmp_path / "points.dng"
    damaged.write_bytes(dng_with(raw={51009: undefined(opcode_list((9, params())))},
                                 base=phone["flat"].read_bytes()))
    result = hostplug("info", damaged)
    assert result.exit_code != 0
    assert why in result.stderr, result.stderr[:300]


# FixVignetteRadial: a gain rising from the optical centre (a little off the middle) to 2.6 at the farthest corner
RADIAL = RadialGain((1.0, 0.4, 0.2, 0.0, 0.0), (0.47, 0.53))


def test_a_radial_vignette_is_evaluated_as_the_dng_sdk_does() -> None:
    gain = RADIAL.field(range(HEIGHT), range(WIDTH), (HEIGHT, WIDTH))
    centre_h, centre_v = 0.47 * WIDTH, 0.53 * HEIGHT
    radius = math.hypot(max(centre_h, WIDTH - centre_h), max(centre_v, HEIGHT - centre_v))
    for row, col in ((0, 0), (HEIGHT - 1, WIDTH - 1), (280, 372), (100, 700)):
        r2 = ((row + 0.5 - centre_v) ** 2 + (col + 0.5 - centre_h) ** 2) / radius**2  # at the pixel's centre
        assert gain[row, col] == pytest.approx(1 + 1.0 * r2 + 0.4 * r2**2 + 0.2 * r2**3, rel=1e-5)
    assert gain.max() == pytest.approx(2.6, rel=0.01) and gain.min() == pytest.approx(1.0, abs=1e-4)
    parsed = gain_map.parse_radial(gain_map.encode_radial(RADIAL))
    assert parsed == RADIAL


@pytest.mark.parametrize("code", [51009, 51022], ids=["OpcodeList2, on the mosaic", "OpcodeList3, on the image"])
def test_a_radial_vignette_is_undone_in_either_list(tmp_path: Path, code: int) -> None:
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(HEIGHT, WIDTH), iso=100, noise=False)
    gain = RADIAL.field(range(HEIGHT), range(WIDTH), (HEIGHT, WIDTH))
    listed = opcode_list((3, gain_map.encode_radial(RADIAL)))
    flat = _linear(_write(tmp_path / "flat.dng", raw)).pixels
    shaded = _linear(_write(tmp_path / "shaded.dng", _shaded(raw, gain), {code: listed}))
    assert shaded.notes["gain_maps"] == f"1 in OpcodeList{2 if code == 51009 else 3}: applied"
    np.testing.assert_allclose(_corner(shaded.pixels), _corner(flat), rtol=0.01)
    assert np.median(np.abs(shaded.pixels - flat)) < 1e-3
    info = hostplug("info", tmp_path / "shaded.dng").stdout
    assert f"lens shading      1 FixVignetteRadial in OpcodeList{2 if code == 51009 else 3}" in info


@pytest.mark.parametrize(("params", "why"), [
    (gain_map.encode_radial(RADIAL)[:48], "a FixVignetteRadial opcode of 48 bytes"),
    (gain_map.encode_radial(replace(RADIAL, centre=(1.5, 0.5))), "the centre within the image"),
    (gain_map.encode_radial(replace(RADIAL, coefficients=(100.0, 0.0, 0.0, 0.0, 0.0))), "whose gain reaches 1..101"),
], ids=["short", "centre outside", "gain of 101"])
def test_a_damaged_radial_vignette_is_refused(tmp_path: Path, phone: dict[str, Path], params: bytes,
                                              why: str) -> None:
    damaged = tmp_path / "radial.dng"
    damaged.write_bytes(dng_with(raw={51009: undefined(opcode_list((3, params)))}, base=phone["flat"].read_bytes()))
    result = hostplug("info", damaged)
    assert result.exit_code != 0 and why in result.stderr, result.stderr


def test_a_gain_of_zero_gives_a_finite_noise_map() -> None:
    # a GainMap may hold gains of 0 (a masked corner); the noise model must not divide by them
    from engine.io.gain_map import Shading
    from engine.io.noise_level import from_iso

    zero = GainMap(0, 0, 64, 64, 0, 1, 1, 1, (1.0, 1.0), (0.0, 0.0), np.zeros((1, 1, 1), dtype=np.float32))
    noise = replace(from_iso(3200), shading=Shading((zero,), (), None, (64, 64), planes=True))
    rgb = np.random.default_rng(0).uniform(0.0, 0.5, (64, 64, 3)).astype(np.float32)
    sigma = noise.sigma(rgb, (range(64), range(64), (64, 64)))
    assert np.all(np.isfinite(sigma)) and np.all(sigma[..., 0] == 0.0) and np.all(sigma[..., 1:] > 0)


def test_the_noise_model_counts_only_the_maps_the_mosaic_got() -> None:
    # a map on plane 1 is not applied to a mosaic (one plane): it must not raise the noise model's gain either
    from engine.io.gain_map import Shading

    elsewhere = GainMap(0, 0, 64, 64, 1, 1, 1, 1, (1.0, 1.0), (0.0, 0.0), np.full((1, 1, 1), 3.0, dtype=np.float32))
    assert np.all(elsewhere.field(range(64), range(64), (64, 64), plane=0) == 1.0)
    for cfa in (RGGB, None):
        shading = Shading((elsewhere,), (), cfa, (64, 64))
        assert np.all(shading.channel_gains(range(64), range(64), (64, 64)) == 1.0)
