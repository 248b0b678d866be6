"""DNG lens-distortion correction (WarpRectilinear, WarpRectilinear2 and WarpFisheye in OpcodeList3, which phones,
drones, action cameras and Adobe's DNG Converter write and LibRaw ignores): a raw whose lens bent the scene renders
as the scene itself."""

from __future__ import annotations

import math
import struct
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

import engine
from engine.io import lens_warp
from engine.io.lens_warp import FisheyeWarp, LensWarp, Rectilinear2Warp, RectilinearWarp
from engine.recipe import Recipe
from engine.training import synthetic
from engine.training.raw_noise import RGGB, mosaic
from tests.conftest import hostplug
from tests.hostile_inputs import dng_with, opcode_list, undefined

HEIGHT, WIDTH = 528, 792
LINEAR = {name: engine.StageSettings(enabled=False) for name in ("denoise", "photofinish", "detail")}
# A phone's wide lens corrected: barrel distortion (the corners' light fell about 8 % nearer the middle), with a
# little lateral colour (red and blue slightly apart) and a tangential term.
BARREL = RectilinearWarp(((1.0, -0.10, 0.02, 0.0, 0.001, -0.0005), (1.0, -0.09, 0.02, 0.0, 0.001, -0.0005),
                          (1.0, -0.085, 0.02, 0.0, 0.001, -0.0005)), (0.48, 0.52))


# WarpRectilinear2: odd powers of r too, r held within 0..0.95 of the radius, a different lens per plane
RECTILINEAR2 = Rectilinear2Warp(tuple(
    (1.0, 0.01, -0.11 - 0.01 * p, 0.0, 0.02, *[0.0] * 10, 0.001, -0.0005, 0.0, 0.95) for p in range(3)), (0.5, 0.47))
# the same kind of lens as its reciprocal: 1 / (1 + 0.09 r^2)
RECIPROCAL = Rectilinear2Warp(((1.0, 0.0, 0.09, *[0.0] * 12, 0.0, 0.0, 0.0, 1.0),), (0.5, 0.5), reciprocal=True)
# a fisheye straightened: the light of a corrected pixel at angle atan(r) fell at radius t (1 + 0.03 t^2)
FISHEYE = FisheyeWarp(((1.0, 0.03, 0.0, 0.0),), (0.51, 0.5))


def _sdk_ratio(warp: LensWarp, rr: float, plane: int) -> float:
    """The DNG SDK's EvaluateRatio of each model (dng_warp_params_radial, dng_warp_params_fisheye), written out."""
    k = warp.plane(plane)
    if isinstance(warp, RectilinearWarp):
        return k[0] + k[1] * rr + k[2] * rr**2 + k[3] * rr**3
    if isinstance(warp, Rectilinear2Warp):
        r = math.sqrt(min(max(rr, k[17] ** 2), k[18] ** 2))
        poly = sum(k[i] * r**i for i in range(15))
        return 1 / poly if warp.reciprocal else poly
    if rr < 1e-12:
        return 1.0
    t = math.atan(math.sqrt(rr))
    return t * (k[0] + k[1] * t**2 + k[2] * t**4 + k[3] * t**6) / math.sqrt(rr)


def _sdk_source(warp: LensWarp, row: int, col: int, plane: int) -> tuple[float, float]:
    """The DNG SDK's dng_filter_warp::GetSrcPixelPosition for one pixel, written out step by step."""
    kt = (0.0, 0.0) if isinstance(warp, FisheyeWarp) else warp.plane(plane)[-4:-2] if isinstance(
        warp, Rectilinear2Warp) else warp.plane(plane)[4:]
    centre_h, centre_v = warp.centre[0] * WIDTH, warp.centre[1] * HEIGHT
    norm = max(math.dist((centre_v, centre_h), corner) for corner in ((0, 0), (0, WIDTH), (HEIGHT, 0),
                                                                       (HEIGHT, WIDTH)))
    dv, dh = (row - centre_v) / norm, (col - centre_h) / norm
    rr = min(dv * dv + dh * dh, 1.0)
    ratio = _sdk_ratio(warp, rr, plane)
    tan_v = kt[0] * (rr + 2 * dv * dv) + 2 * kt[1] * dh * dv
    tan_h = kt[1] * (rr + 2 * dh * dh) + 2 * kt[0] * dh * dv
    return centre_h + norm * (dh * ratio + tan_h), centre_v + norm * (dv * ratio + tan_v)


@pytest.mark.parametrize("warp", [BARREL, RECTILINEAR2, RECIPROCAL, FISHEYE], ids=lambda w: w.name)
def test_each_pixel_is_read_where_the_dng_sdk_reads_it(warp: LensWarp) -> None:
    # an image of its own coordinates: a bicubic resample of a ramp returns the position it was read at
    y, x = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), indexing="ij")
    ramps = np.stack([x / WIDTH, y / HEIGHT, x / WIDTH], axis=2).astype(np.float32)
    corrected = warp.apply(ramps)
    for row, col in ((60, 90), (264, 396), (400, 700), (500, 30), (2, 3)):
        for plane, (axis, extent) in enumerate(((0, WIDTH), (1, HEIGHT), (0, WIDTH))):
            expected = _sdk_source(warp, row, col, plane)[axis]
            # within the 1/32 px steps in which OpenCV, like the SDK, places its bicubic kernel
            assert corrected[row, col, plane] * extent == pytest.approx(expected, abs=1 / 16)
    parser = lens_warp.PARSERS[warp.opcode]
    assert parser(lens_warp.encode(warp)) == warp


@pytest.fixture(scope="module")
def bent(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A noiseless chart, and the same chart as the lens bent it, with the warp that straightens it."""
    folder = tmp_path_factory.mktemp("lens_warp")
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(HEIGHT, WIDTH, specular_peak=0.0), iso=100, noise=False)
    scene = raw.camera_rgb
    span = synthetic.WHITE_LEVEL - synthetic.BLACK_LEVEL

    def as_raw(rgb: np.ndarray) -> synthetic.SyntheticRaw:
        signal = mosaic(np.clip(rgb, 0, 1), RGGB)
        return replace(raw, cfa=np.rint(synthetic.BLACK_LEVEL + signal * span).astype(np.uint16))

    def write(name: str, rgb: np.ndarray, lists: dict[int, bytes] | None = None) -> Path:
        synthetic.write_dng(folder / name, as_raw(rgb), make="hostplug", model="Synthetic wide lens", iso=100,
                            exposure_time=0.01, f_number=2.0, opcode_lists=lists)
        return folder / name

    files = {"scene": write("scene.dng", scene)}
    for name, warp in (("bent", BARREL), ("bent2", RECTILINEAR2), ("fisheye", FISHEYE)):
        listed = opcode_list((warp.opcode, lens_warp.encode(warp)))
        files[name] = write(f"{name}.dng", _bent(scene, warp), {51022: listed})
    return files


def _bent(scene: np.ndarray, warp: LensWarp) -> np.ndarray:
    """``scene`` as the lens put it on the sensor: the correction inverted at each pixel (a fixed point)."""
    y, x = np.meshgrid(np.arange(HEIGHT, dtype=np.float64), np.arange(WIDTH, dtype=np.float64), indexing="ij")
    planes = []
    for plane in range(3):
        px, py = x.copy(), y.copy()
        for _ in range(40):
            sx, sy = warp.source_of(px, py, (HEIGHT, WIDTH), plane, outside=True)
            px, py = px - (sx - x), py - (sy - y)
        planes.append(cv2.remap(np.ascontiguousarray(scene[..., plane]), px.astype(np.float32),
                                py.astype(np.float32), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE))
    return np.stack(planes, axis=2)


def _render(path: Path, **demosaic: object) -> engine.Rendered:
    return engine.render(engine.open(path), Recipe(stages={**LINEAR, "demosaic": engine.StageSettings(
        params=demosaic)}))


def _interior(image: np.ndarray) -> np.ndarray:
    """The picture away from its edges (which the bent raw does not reach), smoothed past the demosaic's detail."""
    return cv2.blur(image, (5, 5))[40:-40, 60:-60]


@pytest.mark.parametrize(("name", "opcode"), [("bent", "WarpRectilinear"), ("bent2", "WarpRectilinear2"),
                                              ("fisheye", "WarpFisheye")])
def test_a_bent_raw_renders_as_the_straight_scene(bent: dict[str, Path], name: str, opcode: str) -> None:
    scene = _interior(_render(bent["scene"]).pixels)
    corrected = _render(bent[name])
    assert corrected.notes["lens_warp"] == f"{opcode} in OpcodeList3: applied"
    error = np.abs(_interior(corrected.pixels) - scene)
    left = np.abs(_interior(_render(bent[name], lens_warp=False).pixels) - scene)
    # measured: 0.0001 and 0.0026 (without: 0.019); WarpRectilinear2 the same (0.022); WarpFisheye 0.0029 (0.052)
    assert np.median(error) < 0.002 and error.mean() < 0.01
    assert left.mean() > 5 * error.mean()


def test_info_names_the_warp_and_a_damaged_warp_is_refused(bent: dict[str, Path], tmp_path: Path) -> None:
    assert "lens warp         WarpRectilinear (3 plane(s)) in OpcodeList3, applied at render" in hostplug(
        "info", bent["bent"]).stdout
    assert "lens warp         WarpFisheye (1 plane(s)) in OpcodeList3, applied at render" in hostplug(
        "info", bent["fisheye"]).stdout
    wild = lens_warp.encode(replace(BARREL, coefficients=((1.0, -2.0, 0.0, 0.0, 0.0, 0.0),)))
    listed = opcode_list((1, wild))
    damaged = tmp_path / "wild.dng"
    damaged.write_bytes(dng_with(raw={51022: undefined(listed)}, base=bent["scene"].read_bytes()))
    result = hostplug("render", damaged, "-o", tmp_path / "out.tif")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0 and not (tmp_path / "out.tif").exists()
    assert len(lines) == 1 and "radial ratio reaches -1..1" in lines[0], lines



def test_damaged_warps_of_the_newer_opcodes_are_refused() -> None:
    reversed_range = replace(RECTILINEAR2, coefficients=((*RECTILINEAR2.coefficients[0][:17], 0.9, 0.5),))
    with pytest.raises(ValueError, match="valid radii are"):
        lens_warp.parse_rectilinear2(lens_warp.encode(reversed_range))
    pole = replace(RECIPROCAL, coefficients=((1.0, 0.0, -1.2, *[0.0] * 12, 0.0, 0.0, 0.0, 1.0),))  # 1 / (1 - 1.2 r^2)
    with pytest.raises(ValueError, match="radial ratio reaches"):
        lens_warp.parse_rectilinear2(lens_warp.encode(pole))
    with pytest.raises(ValueError, match="a WarpFisheye of 1 planes in 60 bytes"):
        lens_warp.parse_fisheye(lens_warp.encode(FISHEYE) + bytes(8))
    with pytest.raises(ValueError, match="WarpFisheye coefficients"):
        lens_warp.parse_fisheye(lens_warp.encode(replace(FISHEYE, centre=(1.5, 0.5))))


def test_gain_maps_and_warps_of_one_list_are_applied_in_the_files_order(bent: dict[str, Path]) -> None:
    from engine.io.gain_map import GainMap, apply_to_planes
    from engine.stages.base import Context
    from engine.stages.demosaic import Demosaic, DemosaicParams, bayer_to_rgb

    # brighter to the right: a gain that the warp moves, so the order shows
    ramp = GainMap(0, 0, HEIGHT, WIDTH, 0, 3, 1, 1, (1.0, 1.0), (0.0, 0.0),
                   np.array([[[1.0], [2.0]]], dtype=np.float32))
    source = engine.open(bent["scene"])
    demosaiced = bayer_to_rgb(source)
    for order in ([ramp, BARREL], [BARREL, ramp]):
        source.rgb_opcodes = order
        ctx = Context(source=source, recipe=Recipe())
        params = DemosaicParams(false_colour_passes=0)  # the opcodes' order alone
        rendered = Demosaic().process(None, Demosaic().prepare(params, ctx), ctx)
        expected = demosaiced.copy()
        for opcode in order:
            if isinstance(opcode, GainMap):
                apply_to_planes([opcode], expected, 0, (HEIGHT, WIDTH))
            else:
                expected = opcode.apply(expected)
        np.testing.assert_allclose(rendered, expected, atol=1e-6)
        assert ctx.notes["lens_warp"] == "WarpRectilinear in OpcodeList3: applied"
    source.rgb_opcodes = [ramp, BARREL]
    ctx = Context(source=source, recipe=Recipe())
    first = Demosaic().process(None, Demosaic().prepare(DemosaicParams(), ctx), ctx)
    assert np.abs(first - expected).max() > 0.01  # the two orders differ


def test_the_gpu_path_warps_on_the_host_and_carries_on(bent: dict[str, Path]) -> None:
    from engine import kernels

    with kernels.torch_everywhere():
        on_device = np.asarray(_render(bent["bent"]).pixels)
    np.testing.assert_allclose(on_device, _render(bent["bent"]).pixels, atol=1e-4)


def test_positions_worked_out_every_few_pixels_stay_within_a_few_hundredths_of_a_pixel() -> None:
    size = (1000, 1500)  # a small picture: the mapping bends faster per pixel than on a phone's 12 MP
    strong = RectilinearWarp(((1.0, -0.3, 0.1, -0.05, 0.002, -0.002),), (0.5, 0.5))
    for warp, within in ((BARREL, 0.01), (strong, 0.03)):  # measured: 0.003 and 0.017 px
        for rows in (range(0, 100), range(950, 1000), range(3, 4)):  # the corners, where r^2 reaches 1
            x, y = warp.source_positions(rows, size, 0)
            down, along = np.meshgrid(np.arange(rows.start, rows.stop, dtype=np.float64),
                                      np.arange(size[1], dtype=np.float64), indexing="ij")
            exact_x, exact_y = warp.source_of(along, down, size, 0)
            assert np.abs(x - exact_x).max() < within and np.abs(y - exact_y).max() < within


def test_opcodes_hostplug_does_not_apply_are_named_and_the_raw_still_renders(bent: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    trim = struct.pack(">IIII", 8, 8, 520, 784)  # TrimBounds, which hostplug does not apply
    raw = dng_with(raw={51008: undefined(opcode_list((6, trim))),
                        51022: undefined(opcode_list((200, b"\0" * 8), (FISHEYE.opcode, lens_warp.encode(FISHEYE))))},
                   base=bent["scene"].read_bytes())
    path = tmp_path / "opcodes.dng"
    path.write_bytes(raw)
    assert "opcodes skipped   TrimBounds (OpcodeList1), opcode 200 (OpcodeList3)" in hostplug(
        "info", path).stdout
    rendered = _render(path)
    assert rendered.notes["skipped_opcodes"] == ["TrimBounds (OpcodeList1)", "opcode 200 (OpcodeList3)"]
    assert rendered.notes["lens_warp"] == "WarpFisheye in OpcodeList3: applied"
    assert "opcodes skipped   none" in hostplug("info", bent["bent"]).stdout


def _exact(warp: LensWarp, size: tuple[int, int], plane: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The formula's source position of every pixel of an image of ``size``."""
    down, along = np.meshgrid(np.arange(size[0], dtype=np.float64), np.arange(size[1], dtype=np.float64),
                              indexing="ij")
    return warp.source_of(along, down, size, plane)


def test_a_phones_lens_keeps_the_quick_interpolated_positions() -> None:
    for warp in (BARREL, RECIPROCAL, FISHEYE):
        assert warp.coarse_shifts((3000, 4000), 0) is not None


@pytest.mark.parametrize("size", [(256, 256), (250, 250)])
def test_a_steep_accepted_warp_is_worked_out_at_every_pixel(size: tuple[int, int]) -> None:
    # an audit finding: 1 + 20 (r^14 - r^13) stays within 0.46..1 inside the image (the parser takes it), but grows
    # fast past it, where the positions an interpolation starts from lie: 9.4 px off at the corner on 256 x 256
    steep = Rectilinear2Warp(((1.0, *[0.0] * 12, -20.0, 20.0, 0.0, 0.0, 0.0, 1.0),), (0.0, 0.0))
    assert lens_warp.parse_rectilinear2(lens_warp.encode(steep)) == steep
    assert steep.coarse_shifts(size, 0) is None
    x, y = steep.source_positions(range(size[0]), size, 0)
    exact_x, exact_y = _exact(steep, size)
    assert np.abs(x - exact_x).max() < 1e-3 and np.abs(y - exact_y).max() < 1e-3


def _zero_past_the_corner(size: int) -> Rectilinear2Warp:
    """The reciprocal of ``1 + k r^14`` with the polynomial exactly 0 at the first interpolation point past the
    corner of a ``size`` x ``size`` image (centre at the top left): an infinite ratio there, NaN positions next to
    it. Within the image the ratio stays within 1..3.6, so the parser takes it. ``k`` is searched for among the
    floating-point neighbours of -(r past the corner)^-14, as rounding decides which one gives exactly 0."""
    step = lens_warp.POSITION_STEP
    past = float(step * -(-size // step))
    k = -((size / past) ** 14)
    for nudge in range(-40, 41):
        warp = Rectilinear2Warp(((1.0, *[0.0] * 13, k + nudge * np.spacing(k), 0.0, 0.0, 0.0, 1.0),), (0.0, 0.0),
                                reciprocal=True)
        with np.errstate(divide="ignore"):
            if not np.isfinite(warp.source_of(np.array(past), np.array(past), (size, size), 0, outside=True)[0]):
                return warp
    raise AssertionError(f"no exact zero for {size} px")


def test_a_warp_whose_ratio_is_infinite_past_the_image_renders(tmp_path: Path) -> None:
    # an audit finding: NaN positions past the image reached int(np.floor(y.min())), a ValueError out of render
    warp = _zero_past_the_corner(250)
    assert lens_warp.parse_rectilinear2(lens_warp.encode(warp)) == warp
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(250, 250, specular_peak=0.0), iso=100, noise=False)
    path = tmp_path / "pole.dng"
    synthetic.write_dng(path, raw, make="hostplug", model="Synthetic pole", iso=100, exposure_time=0.01,
                        f_number=2.0, opcode_lists={51022: opcode_list((warp.opcode, lens_warp.encode(warp)))})
    with np.errstate(all="raise"):  # and no RuntimeWarning on the way
        rendered = _render(path)
    assert rendered.notes["lens_warp"] == "WarpRectilinear2 in OpcodeList3: applied"
    assert np.isfinite(rendered.pixels).all()
    x, y = warp.source_positions(range(250), (250, 250), 0)
    exact_x, exact_y = _exact(warp, (250, 250))
    assert np.abs(x - exact_x).max() < 1e-3 and np.abs(y - exact_y).max() < 1e-3


def test_a_warp_that_puts_light_at_no_position_is_one_error(bent: dict[str, Path]) -> None:
    from engine.stages.base import Context
    from engine.stages.demosaic import Demosaic, DemosaicParams

    # the last guard, for what the parser's checks miss: here a warp the parser would refuse, made directly
    broken = RectilinearWarp(((math.nan, 0.0, 0.0, 0.0, 0.0, 0.0),), (0.5, 0.5))
    source = engine.open(bent["scene"])
    source.rgb_opcodes = [broken]
    ctx = Context(source=source, recipe=Recipe())
    with pytest.raises(engine.errors.CorruptInputError,
                       match=f"^{bent['scene']}: damaged DNG: its WarpRectilinear opcode puts some pixels' light at "
                             "no position"):
        Demosaic().process(None, Demosaic().prepare(DemosaicParams(), ctx), ctx)


def test_tangential_terms_no_lens_has_are_refused(bent: dict[str, Path], tmp_path: Path) -> None:
    # an audit finding: kt0, kt1 of +-1000 were taken, and every pixel read far outside the image
    wild = replace(BARREL, coefficients=((1.0, -0.1, 0.02, 0.0, 1000.0, -1000.0),))
    with pytest.raises(ValueError, match=r"tangential terms \(1000, -1000\) shift the corners by 4.24e\+03 of the "
                                         r"radius \(a lens's by at most 0.1\)"):
        lens_warp.parse(lens_warp.encode(wild))
    tilted = replace(RECTILINEAR2, coefficients=((*RECTILINEAR2.coefficients[0][:15], 0.0, 0.2, 0.0, 0.95),))
    with pytest.raises(ValueError, match="a WarpRectilinear2 whose tangential terms"):
        lens_warp.parse_rectilinear2(lens_warp.encode(tilted))
    damaged = tmp_path / "tangential.dng"
    damaged.write_bytes(dng_with(raw={51022: undefined(opcode_list((1, lens_warp.encode(wild))))},
                                 base=bent["scene"].read_bytes()))
    with pytest.raises(engine.errors.CorruptInputError, match="OpcodeList3 .* tangential terms"):
        engine.open(damaged)
