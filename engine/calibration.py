"""Camera colour calibration as the DNG specification (chapter 6, "Mapping Camera Color Space to CIE XYZ")
describes it: matrices interpolated in inverse colour temperature, white balance as a camera neutral.
"""

from __future__ import annotations

import numpy as np

from engine.colour import (
    D50_XY,
    SRGB,
    bradford_adaptation,
    xy_to_temperature_tint,
    xy_to_xyz,
    xyz_d50_to_linear_srgb,
    xyz_to_xy,
)
from engine.io.dng import ILLUMINANT_TEMPERATURE
from engine.io.source import Calibration


def srgb_calibration() -> Calibration:
    """Calibration of an sRGB image seen as a "camera": linear sRGB, white balanced for D65."""
    return Calibration(color_matrices=[np.linalg.inv(SRGB.rgb_to_xyz)], illuminants=[21], origin="sRGB")


def _weight(cal: Calibration, temperature: float) -> float:
    """Weight of the first matrix, linear in inverse temperature and clamped (DNG spec)."""
    if len(cal.color_matrices) < 2:
        return 1.0
    t1, t2 = (ILLUMINANT_TEMPERATURE.get(i, 5000.0) for i in cal.illuminants[:2])
    if t1 == t2:
        return 1.0
    g = (1.0 / temperature - 1.0 / t2) / (1.0 / t1 - 1.0 / t2)
    return float(np.clip(g, 0.0, 1.0))


def _blend(matrices: list[np.ndarray], g: float) -> np.ndarray:
    return matrices[0] if len(matrices) < 2 else g * matrices[0] + (1.0 - g) * matrices[1]


def xyz_to_camera(cal: Calibration, temperature: float) -> np.ndarray:
    """AB * CC * CM at a colour temperature: XYZ to camera RGB."""
    g = _weight(cal, temperature)
    cc = _blend(cal.camera_calibrations, g) if cal.camera_calibrations else np.eye(3)
    return np.diag(cal.analog_balance) @ cc @ _blend(cal.color_matrices, g)


def neutral_to_xy(cal: Calibration, neutral: np.ndarray) -> np.ndarray:
    """The white chromaticity whose camera response is ``neutral`` (the DNG SDK's fixed-point iteration)."""
    xy = D50_XY.copy()
    for _ in range(30):
        temperature, _tint = xy_to_temperature_tint(xy)
        xyz = np.linalg.solve(xyz_to_camera(cal, temperature), neutral)
        new = xyz_to_xy(xyz)
        if np.abs(new - xy).max() < 1e-7:
            return new
        xy = 0.5 * (xy + new)  # damped: plain iteration can oscillate between the two matrices
    return xy


def xy_to_neutral(cal: Calibration, xy: np.ndarray) -> np.ndarray:
    """Camera response to a white of chromaticity ``xy``, normalised to green = 1."""
    temperature, _tint = xy_to_temperature_tint(xy)
    n = xyz_to_camera(cal, temperature) @ xy_to_xyz(xy)
    return n / n[1]


def balanced_camera_to_linear_srgb(cal: Calibration, neutral: np.ndarray, white_xy: np.ndarray,
                                   pinned_adaptation: bool = True) -> np.ndarray:
    """Matrix from white-balanced camera RGB (camera / neutral) to linear sRGB; balanced white maps to 1, 1, 1.
    ``pinned_adaptation``: see :func:`engine.colour.bradford_adaptation`."""
    temperature, _tint = xy_to_temperature_tint(white_xy)
    g = _weight(cal, temperature)
    ab_cc = np.diag(cal.analog_balance) @ (_blend(cal.camera_calibrations, g) if cal.camera_calibrations
                                          else np.eye(3))
    if cal.forward_matrices:
        reference_neutral = np.linalg.solve(ab_cc, neutral)
        camera_to_d50 = _blend(cal.forward_matrices, g) @ np.diag(1.0 / reference_neutral) @ np.linalg.inv(ab_cc)
    else:
        camera_to_xyz = np.linalg.inv(ab_cc @ _blend(cal.color_matrices, g))
        camera_to_d50 = bradford_adaptation(white_xy, D50_XY, pinned_adaptation) @ camera_to_xyz
    matrix = xyz_d50_to_linear_srgb() @ camera_to_d50 @ np.diag(neutral)
    return matrix / (matrix @ np.ones(3))[1]
