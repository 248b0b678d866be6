"""Colour temperature and camera calibration, checked against a physically computed camera with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from engine.calibration import balanced_camera_to_linear_srgb, neutral_to_xy, srgb_calibration, xy_to_neutral
from engine.colour import D50_XY, D65_XY, temperature_tint_to_xy, xy_to_temperature_tint
from engine.io.source import Calibration
from engine.training.synthetic import camera_from_colour, fit_color_matrix, illuminant, render_raw, scene_colorchecker


@pytest.fixture(scope="module")
def camera():
    return camera_from_colour()


@pytest.fixture(scope="module")
def calibration(camera) -> Calibration:
    """The DNG calibration of the synthetic camera: ColorMatrix1 for CIE A, ColorMatrix2 for D65."""
    return Calibration(
        color_matrices=[fit_color_matrix(camera, illuminant("A")), fit_color_matrix(camera, illuminant("D65"))],
        illuminants=[17, 21],
        origin="synthetic",
    )


@pytest.fixture(scope="module")
def d55_raw(camera):
    return render_raw(camera, illuminant("D55"), scene_colorchecker(60, 90), noise=False)


def test_d65_is_6504_kelvin_on_the_green_side_of_the_locus() -> None:
    temperature, tint = xy_to_temperature_tint(D65_XY)
    assert temperature == pytest.approx(6504, abs=5)
    # Adobe's convention: daylight lies slightly green of the Planckian locus, which reads as tint ~ +10.
    assert tint == pytest.approx(9.8, abs=0.5)


def test_d50_is_about_5003_kelvin() -> None:
    assert xy_to_temperature_tint(D50_XY)[0] == pytest.approx(5003, abs=5)


@pytest.mark.parametrize(("temperature", "tint"), [(2000, 0), (2856, 5), (5000, -20), (6504, 0), (10000, 40)])
def test_temperature_and_tint_round_trip(temperature: float, tint: float) -> None:
    back = xy_to_temperature_tint(temperature_tint_to_xy(temperature, tint))
    assert back == pytest.approx((temperature, tint), rel=1e-4, abs=1e-3)


def test_a_positive_tint_is_a_greener_white() -> None:
    # A greener white (higher y) makes a render more magenta once balanced: "+150 (magenta)" in the CLI help.
    greener, plain, magenta = (temperature_tint_to_xy(5000, tint)[1] for tint in (30, 0, -30))
    assert greener > plain > magenta


def test_the_neutral_of_a_white_and_its_chromaticity_round_trip(calibration: Calibration) -> None:
    for xy in (temperature_tint_to_xy(3000, 0), D65_XY, temperature_tint_to_xy(5500, 10)):
        assert neutral_to_xy(calibration, xy_to_neutral(calibration, xy)) == pytest.approx(xy, abs=1e-5)


def test_camera_neutral_under_d55_gives_back_the_d55_white(calibration, d55_raw) -> None:
    # D55 lies between the two calibration illuminants, so this exercises the matrix interpolation.
    xy = neutral_to_xy(calibration, d55_raw.camera_neutral)
    assert np.abs(xy - d55_raw.white_xy).max() < 0.005
    assert xy_to_temperature_tint(xy)[0] == pytest.approx(5500, abs=100)


def test_colour_matrix_maps_chart_patches_to_their_true_linear_srgb(calibration, d55_raw) -> None:
    raw = d55_raw
    xy = neutral_to_xy(calibration, raw.camera_neutral)
    matrix = balanced_camera_to_linear_srgb(calibration, raw.camera_neutral, xy)
    predicted = (raw.patch_rgb / raw.camera_neutral) @ matrix.T
    index, shading = raw.scene.index, raw.scene.shading
    truth = np.array([(raw.linear_srgb[index == k] / shading[index == k, None]).mean(axis=0) for k in range(1, 25)])
    error = np.abs(predicted[1:25] - truth) / raw.gain  # per channel, in units of the white's level
    # Observed: mean 0.0062, max 0.030 (a 3x3 matrix cannot fit a camera's spectra exactly).
    assert error.mean() < 0.012
    assert error.max() < 0.06
    # The balanced white maps onto equal RGB.
    assert matrix @ np.ones(3) == pytest.approx(np.ones(3), abs=1e-6)


def test_srgb_images_are_their_own_calibration() -> None:
    calibration = srgb_calibration()
    assert xy_to_neutral(calibration, D65_XY) == pytest.approx(np.ones(3), abs=1e-5)
    matrix = balanced_camera_to_linear_srgb(calibration, np.ones(3), D65_XY)
    assert matrix == pytest.approx(np.eye(3), abs=1e-6)
