"""A DNG's bad pixels (FixBadPixelsConstant and FixBadPixelsList in OpcodeList1, which Android writes from the
sensor's hot-pixel map and LibRaw leaves in): they are repaired before demosaicing, so no dot or line shows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.io import bad_pixels
from engine.io.bad_pixels import BadPixelsConstant, BadPixelsList
from engine.recipe import Recipe
from engine.training import synthetic
from tests.conftest import hostplug
from tests.hostile_inputs import opcode_list

HEIGHT, WIDTH = 400, 600
LINEAR = {name: engine.StageSettings(enabled=False) for name in ("denoise", "photofinish", "detail")}
HOT = ((101, 203), (250, 77), (251, 78), (3, 598))  # a pair side by side, and one at the edge
COLUMN = (120, 333, 260, 334)  # a dead stretch of a column: top, left, bottom, right
MARKED = ((40, 40), (41, 47), (300, 512))  # pixels written as 0, the constant that marks them


@pytest.fixture(scope="module")
def raws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A noiseless chart, and the same chart with hot pixels, a dead column and pixels marked bad by a constant."""
    folder = tmp_path_factory.mktemp("bad_pixels")
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(HEIGHT, WIDTH, specular_peak=0.0), iso=100, noise=False)
    damaged = raw.cfa.copy()
    for row, col in HOT:
        damaged[row, col] = synthetic.WHITE_LEVEL
    top, left, bottom, right = COLUMN
    damaged[top:bottom, left:right] = synthetic.BLACK_LEVEL
    for row, col in MARKED:
        damaged[row, col] = 0
    lists = {51008: opcode_list((5, bad_pixels.encode_list(BadPixelsList(HOT, (COLUMN,)))),
                                (4, bad_pixels.encode_constant(BadPixelsConstant(0))))}

    def write(name: str, cfa: np.ndarray, opcodes: dict[int, bytes] | None = None) -> Path:
        synthetic.write_dng(folder / name, replace(raw, cfa=cfa), make="hostplug", model="Synthetic hot pixels",
                            iso=100, exposure_time=0.01, f_number=2.8, opcode_lists=opcodes)
        return folder / name

    return {"clean": write("clean.dng", raw.cfa), "bad": write("bad.dng", damaged, lists)}


def _render(path: Path, **demosaic: object) -> engine.Rendered:
    return engine.render(engine.open(path), Recipe(stages={**LINEAR, "demosaic": engine.StageSettings(
        params=demosaic)}))


@pytest.mark.parametrize("algorithm", ["mhc", "ahd"])
def test_bad_pixels_are_repaired_before_demosaicing(raws: dict[str, Path], algorithm: str) -> None:
    clean = _render(raws["clean"], algorithm=algorithm).pixels
    repaired = _render(raws["bad"], algorithm=algorithm)
    left = np.abs(_render(raws["bad"], algorithm=algorithm, bad_pixels=False).pixels - clean)
    error = np.abs(repaired.pixels - clean)
    assert repaired.notes["bad_pixels"] == "2 in OpcodeList1: repaired"
    assert left.max() > 0.3  # the hot pixels and the column show where they are left
    # measured: 0.0002 at most (0.96 left in), 3e-8 on average, for either demosaic
    assert error.max() < 0.005 and error.mean() < 1e-6


def test_with_the_torch_kernels_too(raws: dict[str, Path]) -> None:
    from engine import kernels

    with kernels.torch_everywhere():
        on_device = np.asarray(_render(raws["bad"]).pixels)
    np.testing.assert_allclose(on_device, _render(raws["bad"]).pixels, atol=1e-4)


def test_info_names_them_and_older_recipes_leave_them(raws: dict[str, Path]) -> None:
    assert ("bad pixels        FixBadPixelsList (4 point(s), 1 rectangle(s)), FixBadPixelsConstant (value 0) in "
            "OpcodeList1, repaired at render") in hostplug("info", raws["bad"]).stdout
    assert "bad pixels        none marked in the file" in hostplug("info", raws["clean"]).stdout
    old = Recipe.from_dict({"version": 5, "stages": {name: {"enabled": False} for name in LINEAR}})
    rendered = engine.render(engine.open(raws["bad"]), old)
    assert rendered.notes["bad_pixels"] == "2 in OpcodeList1: left (bad_pixels off)"
    as_then = Recipe(stages={**LINEAR, "demosaic": engine.StageSettings(params={
        "bad_pixels": False, "false_colour_passes": 0}), "colour": engine.StageSettings(params={"gamut": "unbounded"})})
    np.testing.assert_array_equal(rendered.pixels, engine.render(engine.open(raws["bad"]), as_then).pixels)


def test_a_repair_fills_runs_and_rectangles_from_their_edges() -> None:
    # 200 x 250: the pixels marked stay well within the share a sensor's map may mark (bad_pixels.MAX_SHARE)
    ramp = (np.arange(200)[:, None] * 10 + np.arange(250)[None, :] * 4 + 1000).astype(np.uint16)
    data = ramp.copy()
    data[10:22, 20:26] = 0  # a rectangle six pixels across: three rounds of same-colour neighbours
    data[30, 30] = 65535
    fixes = [BadPixelsConstant(0), BadPixelsList(((30, 30), (-5, 3), (38, 900)))]  # two points outside the image
    out = bad_pixels.repaired(data, fixes)
    assert out is not data and data[30, 30] == 65535  # a copy: the source is left as it was read
    # a linear ramp is its own same-colour neighbours' mean where both sides of a pixel are good; inside the
    # rectangle, filled from one side at first, within the ramp's step over two pixels
    assert out[30, 30] == ramp[30, 30] and np.count_nonzero(out != ramp) < 6 * 12
    assert np.abs(out.astype(int) - ramp).max() <= 20
    assert bad_pixels.repaired(ramp, fixes[1:2] + [BadPixelsList((), ((500, 50, 510, 60),))]) is not ramp
    assert bad_pixels.repaired(ramp, [BadPixelsList(((-1, -1),))]) is ramp  # nothing within it: untouched


def test_list_coordinates_move_to_the_active_area() -> None:
    fix = BadPixelsList(((10, 20),), ((5, 6, 7, 8),))
    assert fix.shifted(4, 2) == BadPixelsList(((6, 18),), ((1, 4, 3, 6),))


def test_damaged_bad_pixel_opcodes_are_refused() -> None:
    with pytest.raises(ValueError, match="rectangle .* that holds no pixel"):
        bad_pixels.parse_list(bad_pixels.encode_list(BadPixelsList((), ((5, 5, 5, 9),))))
    with pytest.raises(ValueError, match="a FixBadPixelsList of 1 points"):
        bad_pixels.parse_list(bad_pixels.encode_list(BadPixelsList(((1, 2),))) + bytes(4))
    with pytest.raises(ValueError, match="Bayer phase 7"):
        bad_pixels.parse_list(bad_pixels.encode_list(BadPixelsList(((1, 2),)), phase=7))
    with pytest.raises(ValueError, match="a FixBadPixelsConstant of 12 bytes"):
        bad_pixels.parse_constant(bad_pixels.encode_constant(BadPixelsConstant(0)) + bytes(4))
    fix = BadPixelsList(((1, 2), (3, 4)), ((0, 0, 2, 9),))
    assert bad_pixels.parse_list(bad_pixels.encode_list(fix)) == fix


def test_many_rectangles_are_masked_in_one_pass_as_one_at_a_time() -> None:
    # an audit finding: 2^20 whole-image rectangles, one slice each, took 26 s and 619 MB on 1024 x 1024
    data = np.zeros((300, 400), dtype=np.uint16)
    rng = np.random.default_rng(5)
    corners = rng.integers(-40, 440, size=(2000, 2))
    rects = np.concatenate([corners, corners + rng.integers(1, 30, size=(2000, 2))], axis=1)
    expected = np.zeros(data.shape, dtype=bool)
    for top, left, bottom, right in rects.tolist():
        expected[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = True
    assert len(rects) > bad_pixels.FEW_RECTS  # the one-pass way; a few take a slice each, as before
    np.testing.assert_array_equal(BadPixelsList((), tuple(map(tuple, rects.tolist()))).mask(data), expected)
    few = tuple(map(tuple, rects[:10].tolist()))
    np.testing.assert_array_equal(BadPixelsList((), few).mask(data), BadPixelsList((), few * 100).mask(data))
    whole = BadPixelsList(((5, 5),), ((0, 0, 300, 400),) * (1 << 16))
    assert whole.mask(data).all()


def test_fixes_that_mark_much_of_the_sensor_are_left_and_named(raws: dict[str, Path], tmp_path: Path) -> None:
    # an audit finding: a constant that most pixels take (a dark frame's 0) made 64 repair rounds over nearly
    # every pixel (17.6 s, 353 MB on 2048 x 2048), and would paint over the picture
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(HEIGHT, WIDTH, specular_peak=0.0), iso=100, noise=False)
    dark = raw.cfa.copy()
    dark[:, 400:550] = 0  # a quarter of the sensor reads the constant (a band of columns)
    for row, col in HOT:  # outside it
        dark[row, col] = synthetic.WHITE_LEVEL
    lists = {51008: opcode_list((4, bad_pixels.encode_constant(BadPixelsConstant(0))),
                                (5, bad_pixels.encode_list(BadPixelsList(HOT))))}
    path = tmp_path / "dark.dng"
    synthetic.write_dng(path, replace(raw, cfa=dark), make="hostplug", model="Synthetic dark frame", iso=100,
                        exposure_time=0.01, f_number=2.8, opcode_lists=lists)
    rendered = _render(path)
    left = "FixBadPixelsConstant (OpcodeList1; marks 25.0% of the sensor: left as it is)"
    assert rendered.notes["skipped_opcodes"] == [left]
    assert rendered.notes["bad_pixels"] == "1 in OpcodeList1: repaired"  # the list of hot pixels
    hot_left = _render(path, bad_pixels=False).pixels
    assert np.abs(rendered.pixels - hot_left).max() > 0.3  # the hot pixels went
    np.testing.assert_array_equal(rendered.pixels[:, 402:548], hot_left[:, 402:548])  # the band stayed as it is
    info = hostplug("info", path).stdout
    assert f"opcodes skipped   {left}" in info
    assert "bad pixels        FixBadPixelsList (4 point(s), 0 rectangle(s)) in OpcodeList1, repaired" in info


def test_a_repair_stays_within_its_share_of_the_pixels() -> None:
    dark = np.zeros((2048, 2048), dtype=np.uint16)
    dark[:, :4] = 1000
    constant = BadPixelsConstant(0)
    assert bad_pixels.repaired(dark, [constant]) is dark  # at once: nothing repaired
    column = BadPixelsList((), ((0, 100, 2048, 101),))  # 0.05 % of the pixels: a dead column is repaired
    assert bad_pixels.repairable(dark, [constant, column]) == ([column], [(constant, np.count_nonzero(dark == 0)
                                                                           / dark.size)])
    assert bad_pixels.MAX_SHARE * dark.size < np.count_nonzero(dark == 0)
