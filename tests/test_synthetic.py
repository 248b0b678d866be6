"""Tests of engine.training.synthetic: physically computed raws, their ground truth and the DNGs written from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile

from engine.training import synthetic

HEIGHT, WIDTH = 120, 180


@pytest.fixture(scope="module")
def camera() -> synthetic.CameraModel:
    """The bundled camera, Nikon 5100 (NPL)."""
    return synthetic.camera_from_colour()


@pytest.fixture(scope="module")
def daylight() -> np.ndarray:
    """CIE D55."""
    return synthetic.illuminant("D55")


@pytest.fixture(scope="module")
def raw(camera: synthetic.CameraModel, daylight: np.ndarray) -> synthetic.SyntheticRaw:
    """A small noisy render at ISO 400."""
    return synthetic.render_raw(camera, daylight, synthetic.scene_colorchecker(HEIGHT, WIDTH), iso=400)


@pytest.fixture(scope="module")
def dng(raw: synthetic.SyntheticRaw, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``raw`` written as a DNG."""
    path = tmp_path_factory.mktemp("dng") / "chart.dng"
    synthetic.write_dng(
        path, raw, make="hostplug", model="Test", iso=400, exposure_time=1 / 60, f_number=5.6,
        noise_profile=raw.noise_profile,
    )  # fmt: skip
    return path


def _check_rawpy(path: Path, height: int, width: int) -> None:
    """rawpy opens ``path`` with the written size, levels and RGGB pattern, and renders a plausible image."""
    with rawpy.imread(str(path)) as image:
        assert image.raw_image.shape == (height, width)
        assert image.black_level_per_channel == [synthetic.BLACK_LEVEL] * 4
        assert image.white_level == synthetic.WHITE_LEVEL
        colours = image.color_desc.decode()
        assert "".join(colours[i] for i in image.raw_pattern.ravel()) == synthetic.CFA_PATTERN
        rgb = image.postprocess(use_camera_wb=True, output_bps=8)
    assert rgb.shape == (height, width, 3)
    assert 60 < rgb.mean() < 200
    assert np.ptp(rgb.mean(axis=(0, 1))) < 30  # mostly grey background: roughly neutral after white balance


def test_bundled_sample_opens_in_rawpy() -> None:
    assert synthetic.SAMPLE_PATH.stat().st_size < 1_250_000
    _check_rawpy(synthetic.SAMPLE_PATH, 600, 900)


def test_written_dng_opens_in_rawpy(dng: Path) -> None:
    _check_rawpy(dng, HEIGHT, WIDTH)


def test_dng_tags_read_back_as_written(dng: Path, raw: synthetic.SyntheticRaw) -> None:
    with tifffile.TiffFile(dng) as tif:
        tags = {tag.code: tag.value for tag in tif.pages[0].tags}
        raw_page = tif.pages[0].pages[0]
        cfa = raw_page.asarray()
        raw_tags = {tag.code: tag.value for tag in raw_page.tags}
    for code, illuminant in ((50721, "A"), (50722, "D65")):
        written = np.array(tags[code], dtype=float).reshape(9, 2)
        expected = synthetic.fit_color_matrix(raw.camera, synthetic.illuminant(illuminant)).ravel()
        np.testing.assert_allclose(written[:, 0] / written[:, 1], expected, atol=0.5e-4)
    assert (tags[50778], tags[50779]) == (17, 21)
    neutral = np.array(tags[50728], dtype=float).reshape(3, 2)
    np.testing.assert_allclose(neutral[:, 0] / neutral[:, 1], raw.camera_neutral, atol=1e-6)
    assert tuple(tags[50706]) == (1, 4, 0, 0)
    np.testing.assert_allclose(tags[51041], raw.noise_profile)
    assert raw_tags[262] == 32803 and tuple(raw_tags[33422]) == (0, 1, 1, 2)
    assert (raw_tags[50714], raw_tags[50717]) == (synthetic.BLACK_LEVEL, synthetic.WHITE_LEVEL)
    np.testing.assert_array_equal(cfa, raw.cfa)


def test_pyexiv2_reads_make_model_and_exposure(dng: Path) -> None:
    import pyexiv2

    image = pyexiv2.Image(str(dng))
    try:
        exif = image.read_exif()
    finally:
        image.close()
    assert exif["Exif.Image.Make"] == "hostplug"
    assert exif["Exif.Image.Model"] == "Test"
    assert exif["Exif.Image.ISOSpeedRatings"] == "400"
    assert exif["Exif.Image.ExposureTime"] == "1/60"
    assert exif["Exif.Image.FNumber"] == "28/5"


def test_noiseless_mosaic_matches_camera_rgb_per_patch(
    camera: synthetic.CameraModel, daylight: np.ndarray
) -> None:
    scene = synthetic.scene_colorchecker(HEIGHT, WIDTH)
    raw = synthetic.render_raw(camera, daylight, scene, noise=False)
    signal = (raw.cfa.astype(float) - raw.black_level) / (raw.white_level - raw.black_level)
    sites = {0: (slice(0, None, 2), slice(0, None, 2)), 1: (slice(0, None, 2), slice(1, None, 2)),
             2: (slice(1, None, 2), slice(1, None, 2))}  # fmt: skip
    for patch in range(1, 25):
        for channel, site in sites.items():
            mask = scene.index[site] == patch
            measured = signal[site][mask].sum() / scene.shading[site][mask].sum()
            assert measured == pytest.approx(raw.patch_rgb[patch, channel], abs=1e-4)
    level = raw.camera_rgb.max(axis=2)[scene.index != len(scene.names) - 1].max()
    assert level == pytest.approx(synthetic.AUTO_LEVEL)


def test_noise_variance_grows_with_iso(camera: synthetic.CameraModel, daylight: np.ndarray) -> None:
    scene = synthetic.scene_colorchecker(HEIGHT, WIDTH)
    clean = synthetic.render_raw(camera, daylight, scene, noise=False).cfa.astype(float)
    variances = []
    for iso in (100, 800, 6400):
        noisy = synthetic.render_raw(camera, daylight, scene, iso=iso, seed=1).cfa.astype(float)
        variances.append(np.var((noisy - clean)[scene.index == 0]))
    assert variances[0] < variances[1] < variances[2]
    shot, read = synthetic.noise_profile(6400)
    signal = (clean[scene.index == 0] - synthetic.BLACK_LEVEL) / (
        synthetic.WHITE_LEVEL - synthetic.BLACK_LEVEL
    )
    expected = np.mean(shot * signal + read) * (synthetic.WHITE_LEVEL - synthetic.BLACK_LEVEL) ** 2
    assert variances[2] == pytest.approx(expected, rel=0.05)


def test_fitted_matrix_maps_colorchecker_xyz_to_camera_rgb(camera: synthetic.CameraModel) -> None:
    for name in ("A", "D65"):
        spd = synthetic.illuminant(name)
        matrix = synthetic.fit_color_matrix(camera, spd)
        reflectances, _ = synthetic.colorchecker_reflectances()
        rgb, xyz, rgb_white, xyz_white = synthetic._camera_and_xyz(camera, spd, reflectances)
        np.testing.assert_allclose(matrix @ xyz_white, rgb_white / rgb_white.max(), atol=1e-9)
        assert np.abs(xyz @ matrix.T - rgb / rgb_white.max()).max() < 0.03


def test_ground_truth_white_is_neutral_and_matches_gain(raw: synthetic.SyntheticRaw) -> None:
    specular = raw.scene.index == len(raw.scene.names) - 1
    shading = raw.scene.shading[specular][:, None]
    np.testing.assert_allclose(raw.linear_srgb[specular] / shading, raw.gain, rtol=1e-4)
    np.testing.assert_allclose(raw.xyz[specular][:, 1] / shading[:, 0], raw.gain, rtol=1e-5)
    assert raw.camera_neutral[1] == 1.0


def test_same_seed_gives_identical_bytes(raw: synthetic.SyntheticRaw, dng: Path, tmp_path: Path) -> None:
    again = synthetic.render_raw(raw.camera, synthetic.illuminant("D55"), raw.scene, iso=400)
    path = tmp_path / "again.dng"
    synthetic.write_dng(
        path, again, make="hostplug", model="Test", iso=400, exposure_time=1 / 60, f_number=5.6,
        noise_profile=again.noise_profile,
    )  # fmt: skip
    assert path.read_bytes() == dng.read_bytes()


@pytest.mark.skipif(not synthetic.SPECTRAL_DIR.is_dir(), reason="shared spectral data absent")
def test_rawtoaces_camera_renders(daylight: np.ndarray) -> None:
    camera = synthetic.load_rawtoaces_camera(
        synthetic.SPECTRAL_DIR / "camera" / "sony_ilce-7rm2_380_780_5.json"
    )
    assert camera.sensitivities.shape == (len(synthetic.WAVELENGTHS), 3)
    raw = synthetic.render_raw(camera, daylight, synthetic.scene_colorchecker(40, 60))
    assert raw.cfa.shape == (40, 60) and raw.cfa.max() == synthetic.WHITE_LEVEL  # the highlight clips


def test_engine_reads_the_iso_libraw_misses(dng: Path) -> None:
    """LibRaw reads a DNG's ISO only from the EXIF IFD; ours is in IFD0 (TIFF/EP), and the engine finds it there."""
    import engine

    with rawpy.imread(str(dng)) as image:
        assert image.other.iso_speed == 0  # what LibRaw alone gives
    assert engine.open(dng).camera.iso == 400
    assert engine.open(synthetic.SAMPLE_PATH).camera.iso == 200
