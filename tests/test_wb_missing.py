"""A raw whose file holds no as-shot white balance renders with the learned estimate, says so, and records it.

The raw is written by the project's own synthetic writer (:func:`engine.training.synthetic.write_dng`) with its
AsShotNeutral tag left out: a ColorChecker lit by CIE A (tungsten), where the old fallback (LibRaw's daylight
balance) renders the greys orange. Covered end to end: detection, ``info``, the render, the written output's
recorded white balance and greys, and its re-render after a new estimator.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

import engine
from engine.io.source_info import describe
from engine.recipe import StageSettings
from engine.training import synthetic
from engine.training.eval_wb import _lab_chroma

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

AS_SHOT_NEUTRAL = 50728


@pytest.fixture(scope="module")
def no_wb_dng(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synthetic.SyntheticRaw]:
    """A synthetic DNG under CIE A without AsShotNeutral (nor AsShotWhiteXY, which the writer never writes)."""
    pytest.importorskip("colour")
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("A"),
                               synthetic.scene_colorchecker(400, 600), iso=200, seed=3)
    path = tmp_path_factory.mktemp("nowb") / "no_as_shot.dng"
    original = tifffile.TiffWriter.write

    def without_as_shot(self, data, *args, extratags=(), **kwargs):
        return original(self, data, *args, extratags=[t for t in extratags if t[0] != AS_SHOT_NEUTRAL], **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(tifffile.TiffWriter, "write", without_as_shot)
    try:
        synthetic.write_dng(path, raw, make="hostplug", model="Synthetic no WB", iso=200, exposure_time=1 / 60,
                            f_number=4.0)
    finally:
        mp.undo()
    return path, raw


def _pinned(neutral: list[float]) -> engine.Recipe:
    return engine.Recipe(stages={"white_balance": StageSettings(params={"neutral": [float(v) for v in neutral]})})


def _grey_chroma(pixels: np.ndarray, raw: synthetic.SyntheticRaw) -> np.ndarray:
    """CIELAB C*ab of the six neutral patches (white to black) of the rendered chart, each its eroded interior."""
    names = raw.scene.names
    chroma = []
    for name in names[19:25]:
        inside = cv2.erode((raw.scene.index == names.index(name)).astype(np.uint8), np.ones((9, 9), np.uint8))
        chroma.append(float(_lab_chroma(pixels[inside.astype(bool)].mean(axis=0))))
    return np.array(chroma)


def test_missing_as_shot_is_detected(no_wb_dng) -> None:
    path, _raw = no_wb_dng
    source = engine.open(path)
    assert source.as_shot_missing
    assert source.neutral_origin == "none in the file; learned estimate"


def test_info_says_none_in_the_file_and_shows_the_estimate(no_wb_dng) -> None:
    path, raw = no_wb_dng
    wb = describe(engine.open(path))["white_balance"]
    assert wb["origin"] == "none in the file; learned estimate"
    assert wb["in_file"] is False
    assert 2500 < wb["temperature"] < 3300  # CIE A is 2856 K; daylight would say about 5000 K and more
    estimate = np.array(wb["as_shot_neutral"])
    cos = estimate @ raw.camera_neutral / np.linalg.norm(estimate) / np.linalg.norm(raw.camera_neutral)
    assert np.degrees(np.arccos(min(cos, 1.0))) < 3.0


def test_render_is_neutral_and_records_the_estimate(no_wb_dng) -> None:
    path, raw = no_wb_dng
    source = engine.open(path)
    rendered = engine.render(source, engine.Recipe())
    notes = rendered.notes["white_balance"]
    assert notes["mode"] == "as-shot"
    assert notes["as_shot"] == "none in the file; learned estimate"
    assert notes["estimator"] == "learned"
    chroma = _grey_chroma(rendered.pixels, raw)
    # the old fallback, LibRaw's daylight balance, for comparison: orange greys
    daylight = _pinned(source.as_shot_neutral.tolist())
    orange = _grey_chroma(engine.render(engine.open(path), daylight).pixels, raw)
    assert orange[:5].mean() > 10.0, orange
    assert chroma[:5].mean() < 3.0, chroma
    # a re-render from the recorded neutral gives the same picture
    pinned = _pinned(notes["neutral"])
    again = engine.render(engine.open(path), pinned).pixels
    assert np.array_equal(again, rendered.pixels)


def test_files_with_white_balance_are_unchanged(sample_dng: Path) -> None:
    source = engine.open(sample_dng)
    assert not source.as_shot_missing
    notes = engine.render(source, engine.Recipe()).notes["white_balance"]
    assert "as_shot" not in notes
    assert np.allclose(notes["neutral"], source.as_shot_neutral, atol=1e-6)


def test_info_command_says_none_in_the_file(no_wb_dng) -> None:
    from click.testing import CliRunner

    from hostplug.cli import main

    path, _raw = no_wb_dng
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if "as-shot WB" in row)
    assert "none in the file; learned estimate" in line


def test_end_to_end_the_written_output_records_the_estimate_and_renders_the_greys_grey(no_wb_dng,
                                                                                       tmp_path: Path) -> None:
    """``hostplug render`` of the file: the output's XMP says the white balance is the learned estimate (the one
    ``info`` prints), its greys are grey, and a re-render after a new estimator shipped keeps that white balance."""
    from click.testing import CliRunner

    from engine.rerender import plan_rerender, read_record
    from hostplug.cli import main

    path, raw = no_wb_dng
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["render", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    record = read_record(out)
    assert record.recipe.wb == "as-shot"
    decided = record.decided["white_balance"]
    assert decided["as_shot"] == "none in the file; learned estimate" and decided["estimator"] == "learned"
    info = describe(engine.open(path))["white_balance"]
    assert np.allclose(decided["neutral"], info["as_shot_neutral"], atol=1e-4)
    assert decided["temperature"] == info["temperature"]
    png = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16
    written = png[..., ::-1].astype(np.float32) / 65535.0
    assert written.shape[:2] == raw.scene.index.shape
    chroma = _grey_chroma(written, raw)
    assert chroma[:5].mean() < 3.0, chroma
    pinned, notice = plan_rerender(record, record.recipe, record.engine_version, {"wb-c5": "a newer estimator"})
    assert notice is not None and pinned.stage("white_balance").params["neutral"] == decided["neutral"]
