"""A DNG's DefaultCrop (the picture's area within the sensor's active area, which Adobe's converters and cameras
write and LibRaw leaves out): the render is cut to it, as Adobe's own rendering is."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

import engine
from engine import kernels
from engine.io.gain_map import GainMap, Shading
from engine.recipe import Recipe
from tests.conftest import SAMPLE_DNG, hostplug
from tests.hostile_inputs import dng_with

# the bundled sample is 900 x 600; a crop 6 px in from the top, 8 from the left, 16 and 12 px smaller
CROP = {"top": 6, "left": 8, "height": 588, "width": 884}
LINEAR = {name: engine.StageSettings(enabled=False) for name in ("denoise", "photofinish", "detail")}


def _longs(*values: int) -> tuple[int, int, bytes]:
    return 4, len(values), struct.pack(f"<{len(values)}I", *values)


def _cropped_dng(path: Path, left: int, top: int, width: int, height: int) -> Path:
    path.write_bytes(dng_with(raw={50719: _longs(left, top), 50720: _longs(width, height)}))
    return path


@pytest.fixture(scope="module")
def cropped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cropped_dng(tmp_path_factory.mktemp("crop") / "cropped.dng", CROP["left"], CROP["top"], CROP["width"],
                        CROP["height"])


def test_the_render_is_the_default_crop_of_the_whole_picture(cropped: Path) -> None:
    source = engine.open(cropped)
    assert source.size == (600, 900) and source.crop == (6, 8, 588, 884)
    rendered = engine.render(source, Recipe(stages=LINEAR))
    assert rendered.pixels.shape == (588, 884, 3) and rendered.notes["default_crop"] == CROP
    with kernels.torch_everywhere():  # the GPU's path
        np.testing.assert_allclose(engine.render(source, Recipe(stages=LINEAR)).pixels, rendered.pixels, atol=1e-4)
    whole = engine.render(source, Recipe(stages={**LINEAR, "demosaic": engine.StageSettings(
        params={"default_crop": False})})).pixels
    assert whole.shape == (600, 900, 3)
    # the same picture: only the guided upsampling, which fits its grid to the picture it is given, differs
    difference = np.abs(rendered.pixels - whole[6:594, 8:892])
    assert difference.mean() < 2e-4 and np.percentile(difference, 99) < 3e-3  # measured 0.00008, 0.001


def test_a_written_output_has_the_crops_size_and_info_names_it(cropped: Path, tmp_path: Path) -> None:
    result = hostplug("render", cropped, "-o", tmp_path / "out.tif")
    assert result.exit_code == 0, result.stderr
    assert tifffile.imread(tmp_path / "out.tif").shape == (588, 884, 3)
    assert "default crop      884 x 588 from (8, 6), applied at render" in hostplug("info", cropped).stdout
    assert "default crop      none (the whole image)" in hostplug("info", SAMPLE_DNG).stdout


def test_recipes_from_before_the_crop_keep_the_whole_picture(cropped: Path) -> None:
    old = Recipe.from_dict({"version": 4, "stages": {name: {"enabled": False} for name in LINEAR}})
    assert engine.render(engine.open(cropped), old).pixels.shape == (600, 900, 3)


def test_a_crop_past_the_edge_keeps_what_is_there_and_a_crop_of_nothing_is_refused(tmp_path: Path) -> None:
    assert engine.open(_cropped_dng(tmp_path / "past.dng", 100, 50, 900, 600)).crop == (50, 100, 550, 800)
    assert engine.open(_cropped_dng(tmp_path / "whole.dng", 0, 0, 900, 600)).crop is None
    result = hostplug("render", _cropped_dng(tmp_path / "tiny.dng", 0, 0, 4, 4), "-o", tmp_path / "out.tif")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0 and not (tmp_path / "out.tif").exists()
    assert len(lines) == 1 and "DefaultCrop keeps 4 x 4 of the 900 x 600 pixels" in lines[0]


def test_the_lens_shading_of_a_cropped_picture_is_read_where_the_crop_lies() -> None:
    grid = np.linspace(1, 3, 5 * 7, dtype=np.float32).reshape(5, 7, 1)
    gain_map = GainMap(0, 0, 600, 900, 0, 3, 1, 1, (1 / 4, 1 / 6), (0.0, 0.0), grid)
    whole = Shading((gain_map,), (), None, (600, 900), planes=True)
    window = Shading((gain_map,), (), None, (600, 900), (6, 8, 588, 884), planes=True)
    full = whole.channel_gains(range(600), range(900), (600, 900))
    np.testing.assert_allclose(window.channel_gains(range(588), range(884), (588, 884)), full[6:594, 8:892],
                               rtol=1e-6)
    # a preview of the crop, half its size: each of its pixels covers two of the crop's
    half = window.channel_gains(range(294), range(442), (294, 442))
    np.testing.assert_allclose(half, (full[6:594:2, 8:892:2] + full[7:594:2, 9:892:2]) / 2, rtol=2e-3)


def _rationals(*values: float) -> tuple[int, int, bytes]:
    pairs = [part for v in values for part in (round(v * 1000), 1000)]
    return 5, len(values), struct.pack(f"<{len(pairs)}I", *pairs)


def test_the_cameras_suggested_crop_narrows_the_default_crop(tmp_path: Path) -> None:
    # a 16:9 picture chosen in the camera, within the DefaultCrop: DefaultUserCrop (top, left, bottom, right)
    path = tmp_path / "wide.dng"
    path.write_bytes(dng_with(raw={50719: _longs(8, 6), 50720: _longs(884, 588),
                                   51125: _rationals(0.125, 0.0, 0.875, 1.0)}))
    source = engine.open(path)
    assert source.crop == (80, 8, 441, 884)  # 6 + 0.125 x 588 (rounded), 0.75 x 588
    assert engine.render(source, Recipe(stages=LINEAR)).pixels.shape == (441, 884, 3)
    path.write_bytes(dng_with(raw={51125: _rationals(0.5, 0.0, 0.25, 1.0)}))
    result = hostplug("info", path)
    assert result.exit_code != 0 and "DefaultUserCrop is (0.5, 0, 0.25, 1), not top < bottom" in result.stderr


def test_the_thumbnail_gives_the_size_of_the_cropped_picture(cropped: Path, tmp_path: Path) -> None:
    from hostplug.thumbnail import write_thumbnail

    info = write_thumbnail(cropped, tmp_path / "thumb.jpg", 128)
    assert (info["width"], info["height"]) == (884, 588)  # what GIMP shows next to the preview, and then opens
    assert write_thumbnail(SAMPLE_DNG, tmp_path / "whole.jpg", 128)["width"] == 900


@pytest.mark.parametrize(("crop", "expected"), [
    ((8, 8, 3448, 5168), (8, 8, 3448, 5168)),  # the Sony a7R III's ARW: an 8-pixel border round the picture
    ((12, 8, 3448, 5168), (8, 4, 3448, 5168)),  # LibRaw counts it from the whole raw, margins included
    ((65535, 65535, 3448, 5168), None),  # LibRaw's "unknown"
    ((0, 0, 0, 0), None),  # none named
    ((0, 0, 3464, 5184), None),  # all of it
    ((8, 8, 3464, 5184), None),  # past the edge: a misread tag, not a picture area
    ((0, 874, 3464, 3464), None),  # an in-camera 1:1 crop: its origin is not confirmed by any sample here
])
def test_the_picture_area_libraw_names_in_a_raw_that_is_no_dng(crop: tuple[int, ...], expected) -> None:
    from types import SimpleNamespace

    from engine.io.picture_area import camera_crop

    left, top, width, height = crop[1], crop[0], crop[3], crop[2]
    margins = {"top_margin": 0, "left_margin": 0} if crop[0] != 12 else {"top_margin": 4, "left_margin": 4}
    sizes = SimpleNamespace(crop_left_margin=left, crop_top_margin=top, crop_width=width, crop_height=height,
                            **margins)
    assert camera_crop(sizes, (3464, 5184)) == expected


def test_the_thumbnail_of_a_raw_that_is_no_dng_gives_its_picture_area(tmp_path: Path) -> None:
    from hostplug.thumbnail import write_thumbnail
    from tests.conftest import SONY, need

    info = write_thumbnail(need(SONY), tmp_path / "thumb.jpg", 128)
    assert (info["width"], info["height"]) == (5168, 3448)  # the size a render makes, and GIMP then opens
