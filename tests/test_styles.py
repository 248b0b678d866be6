"""Picture styles: names, blends, strength, presets, and that every shipped style looks like itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.errors import HostplugError, RecipeError
from engine.stages.photofinish import PhotofinishParams
from engine.stages.photofinish_learned import LearnedPhotofinish
from engine.styles import STYLES, UnknownStyleError, blend_operators, parse_style, style_operators
from engine.xmp.presets import list_presets


def _ops(value: float) -> dict:
    return {"gain_ev": value, "knee": 0.7 + value / 10, "tone": [1.0 + value, 1.1, 0.5],
            "local_tone": [[[[value] * 2] * 2]], "chroma": [[[value, -value]]], "gamma": 2.2 + value / 10}


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """The bundled sample's scene (ColorChecker on grey, with a specular highlight) as linear sRGB, small."""
    from engine.training import synthetic

    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(120, 180), noise=False)
    return raw.linear_srgb


def _render(style: str, low: np.ndarray, strength: float = 1.0) -> np.ndarray:
    from engine.stages.photofinish import apply_operators
    from engine.training.look_data import to_batch

    operators = LearnedPhotofinish().operators_for(PhotofinishParams(style=style, strength=strength), low)
    return apply_operators(to_batch([low]), operators)[0].permute(1, 2, 0).numpy()


def test_a_blend_is_parsed_case_insensitively_and_normalised() -> None:
    assert parse_style("Warm:0.7, moody:0.7") == [("warm", 0.5), ("moody", 0.5)]
    assert parse_style("vivid") == [("vivid", 1.0)]
    assert parse_style("warm:3,warm:1") == [("warm", 1.0)]


def test_an_unknown_style_is_one_line_listing_the_known_ones() -> None:
    with pytest.raises(UnknownStyleError) as info:
        parse_style("warm:0.5,sepia:0.5")
    message = str(info.value)
    assert isinstance(info.value, RecipeError) and isinstance(info.value, HostplugError)
    assert "\n" not in message and "'sepia'" in message
    assert all(name in message for name in STYLES)


@pytest.mark.parametrize("spec", ["warm:x", "warm:-1", "warm:0", "warm,,moody", "warm:nan"])
def test_a_malformed_blend_is_refused(spec: str) -> None:
    with pytest.raises(RecipeError):
        parse_style(spec)


def test_weights_one_and_zero_give_the_single_style_and_strength_zero_gives_natural() -> None:
    predicted = {"natural": _ops(0.0), "warm": _ops(1.0), "moody": _ops(-1.0)}
    assert style_operators(predicted, "warm:1,moody:0", 1.0) == predicted["warm"]
    assert style_operators(predicted, "warm:0.5,moody:0.5", 0.0) == predicted["natural"]
    half = blend_operators([predicted["warm"], predicted["moody"]], [0.5, 0.5])
    assert half["gain_ev"] == 0.0 and half["local_tone"] == [[[[0.0, 0.0], [0.0, 0.0]]]]


def test_each_style_has_a_preset_that_selects_it_and_names_its_model() -> None:
    presets = [p for p in list_presets() if p.kind == "style"]
    for style in STYLES.values():
        chosen = [p for p in presets if p.settings["style"] == style.name]
        assert chosen, f"no preset selects style {style.name}"
        assert style.name == "natural" or style.model in chosen[0].description


def test_learned_blends_mix_predictions_and_strength_zero_is_natural(scene: np.ndarray) -> None:
    stage = LearnedPhotofinish()
    warm = stage.operators_for(PhotofinishParams(style="warm"), scene)
    assert stage.operators_for(PhotofinishParams(style="Warm:1,moody:0"), scene) == warm
    natural = stage.operators_for(PhotofinishParams(style="natural"), scene)
    assert stage.operators_for(PhotofinishParams(style="warm:0.6,moody:0.4", strength=0.0), scene) == natural
    both = stage.operators_for(PhotofinishParams(style="warm:0.5,moody:0.5"), scene)
    moody = stage.operators_for(PhotofinishParams(style="moody"), scene)
    assert both["gain_ev"] == pytest.approx((warm["gain_ev"] + moody["gain_ev"]) / 2, abs=1e-4)


def test_every_shipped_style_renders_the_sample_visibly_differently(scene: np.ndarray) -> None:
    renders = {style: _render(style, scene) for style in STYLES}
    for a, b in itertools.combinations(STYLES, 2):
        difference = float(np.mean(np.abs(renders[a] - renders[b])))
        assert difference > 0.012, f"{a} and {b} differ by only {difference:.4f} on average"
    mono = renders["monochrome"]
    assert float(np.abs(mono - mono.mean(axis=2, keepdims=True)).mean()) < 0.01  # no colour left


def test_a_stronger_style_moves_further_from_natural(scene: np.ndarray) -> None:
    natural = _render("natural", scene)
    distance = [float(np.mean(np.abs(_render("vivid", scene, s) - natural))) for s in (0.5, 1.0, 1.5)]
    assert distance[0] < distance[1] < distance[2]
