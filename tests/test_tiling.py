"""Big images in bands of rows (engine/tiling.py): the same pixels as one pass, with tiles forced small."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import engine
from engine import Recipe, StageSettings, tiling
from engine.colour import SPACES
from engine.output.write import output_pixels, output_strips, quantise, to_output_space, write_image
from engine.stages.demosaic import bayer_to_rgb
from tests.conftest import colorchecker_dng

WHOLE = 10**9  # a band taller than any test image: one pass, today's code path


@pytest.fixture(scope="module")
def noisy_dng(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 246 x 180 ISO 3200 raw: 16 bands of 16 rows, the last one shorter."""
    return colorchecker_dng(tmp_path_factory.mktemp("tiling") / "noisy.dng", 246, 180, iso=3200, seed=1,
                            model="Tiling")


def test_bands_cover_the_rows_once_and_start_even() -> None:
    for height in (1, 2, 7, 64, 65, 1000):
        for rows in (1, 5, 16, 40):
            spans = tiling.bands(height, rows)
            assert spans[0][0] == 0 and spans[-1][1] == height
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
            assert all(start % 16 == 0 and end > start for start, end in spans)


def test_rewriting_in_place_reads_only_original_rows() -> None:
    image = np.random.default_rng(0).random((101, 37, 3), dtype=np.float32)
    expected = cv2.blur(image, (3, 3), borderType=cv2.BORDER_REFLECT_101)
    padded = cv2.copyMakeBorder(image, 1, 1, 1, 1, cv2.BORDER_REFLECT_101)

    def band(start: int, end: int) -> np.ndarray:
        # reads the image being rewritten, rows start - 1 to end + 1
        window = cv2.copyMakeBorder(image[max(0, start - 1):end + 1], 0, 0, 1, 1, cv2.BORDER_REFLECT_101)
        if start == 0:
            window = np.concatenate([padded[:1], window])
        if end == image.shape[0]:
            window = np.concatenate([window, padded[-1:]])
        return cv2.blur(window, (3, 3))[1:-1, 1:-1]

    with tiling.tile_rows(8):
        tiling.rewrite_in_bands(image, band, halo=1)
    assert np.allclose(image, expected, atol=1e-6)


def test_demosaic_in_bands_is_bit_identical(noisy_dng: Path) -> None:
    source = engine.open(noisy_dng)
    with tiling.tile_rows(WHOLE):
        whole = bayer_to_rgb(source)
    with tiling.tile_rows(6):
        banded = bayer_to_rgb(source)
    assert np.array_equal(whole, banded)


@pytest.mark.parametrize("detail", ["classical", "learned"])
def test_tiled_render_agrees_with_one_pass(noisy_dng: Path, detail: str) -> None:
    """Denoise (strength 60), white balance, colour, upsample and detail in bands of 16 rows: within 1/1023."""
    recipe = Recipe(sharpening=80, stages={"denoise": StageSettings(implementation="classical",
                                                                    params={"strength": 60.0}),
                                           "detail": StageSettings(implementation=detail)})
    source = engine.open(noisy_dng)
    with tiling.tile_rows(WHOLE):
        whole = engine.render(source, recipe).pixels
    with tiling.tile_rows(16):
        tiled = engine.render(source, recipe).pixels
    assert float(np.abs(whole - tiled).max()) <= 1.0 / 1023.0
    if detail == "classical":  # OpenCV's filters and the compiled kernels give the very same pixels
        assert np.array_equal(whole, tiled)


@pytest.mark.parametrize("space", ["srgb", "display-p3"])
@pytest.mark.parametrize("bits", [8, 16])
def test_output_conversion_in_bands_is_bit_identical(space: str, bits: int) -> None:
    pixels = np.random.default_rng(1).uniform(-0.1, 1.1, (70, 23, 3)).astype(np.float32)
    expected = quantise(to_output_space(pixels, SPACES[space]), bits)
    with tiling.tile_rows(8):
        assert np.array_equal(output_pixels(pixels, SPACES[space], None, bits), expected)
        resized = output_pixels(pixels, SPACES[space], 30, bits)
    assert np.array_equal(resized, quantise(to_output_space(pixels, SPACES[space], 30), bits))


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_an_uncompressed_tiff_is_written_in_strips_with_the_same_bits(tmp_path: Path, turns: int) -> None:
    """No full-size integer copy for an uncompressed TIFF: strips made as tifffile writes them, the same pixels
    as the whole-array path, also from a view turned upright (as apply_orientation gives)."""
    import tifffile

    pixels = np.random.default_rng(2).uniform(-0.1, 1.1, (70, 37, 3)).astype(np.float32)
    pixels = np.rot90(pixels, turns)[:, ::-1] if turns else pixels  # views, as orientations give
    expected = quantise(to_output_space(pixels, SPACES["srgb"]), 16)
    with tiling.tile_rows(16):
        rows, _strips = output_strips(pixels, SPACES["srgb"], 16)
        write_image(pixels, tmp_path / "x.tif", engine.OutputOptions(bits=16))
    assert rows == 16
    with tifffile.TiffFile(tmp_path / "x.tif") as tif:
        page = tif.pages[0]
        assert page.tags["RowsPerStrip"].value == 16 and len(page.dataoffsets) == -(-pixels.shape[0] // 16)
        assert np.array_equal(page.asarray(), expected)
        assert page.tags.get(34675) is not None  # the ICC profile
