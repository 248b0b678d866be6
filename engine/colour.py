"""Colour science the stages share: white points, chromatic adaptation, RGB spaces, transfer functions.

Everything here is plain numpy on 3-vectors and 3x3 matrices; the heavy per-pixel work lives in the stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

D50_XY = np.array([0.34567, 0.35850])
D65_XY = np.array([0.31270, 0.32900])

# Bradford cone response matrix (the adaptation the ICC and DNG specifications use).
BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)

# Luminance weights of linear Rec.709 / sRGB primaries: the one table every luminance in the engine uses. Plain
# floats, so numpy (as float32 arrays), torch and numba kernels all read exactly the same coefficients.
LUMA = (0.2126, 0.7152, 0.0722)


def xy_to_xyz(xy: np.ndarray) -> np.ndarray:
    """Chromaticity to XYZ with Y = 1."""
    x, y = float(xy[0]), float(xy[1])
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def xyz_to_xy(xyz: np.ndarray) -> np.ndarray:
    """XYZ to chromaticity (x, y)."""
    s = float(np.sum(xyz))
    return np.array([xyz[0] / s, xyz[1] / s])


def bradford_adaptation(src_xy: np.ndarray, dst_xy: np.ndarray) -> np.ndarray:
    """3x3 matrix that adapts XYZ seen under white ``src_xy`` to white ``dst_xy``."""
    src = BRADFORD @ xy_to_xyz(src_xy)
    dst = BRADFORD @ xy_to_xyz(dst_xy)
    return np.linalg.inv(BRADFORD) @ np.diag(dst / src) @ BRADFORD


@dataclass(frozen=True)
class RGBSpace:
    """An RGB colour space: primaries, white point and transfer function name."""

    name: str
    primaries_xy: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    white_xy: tuple[float, float]
    transfer: str  # "srgb", "gamma2.2" (Adobe RGB 563/256), "prophoto" or "linear"

    @property
    def rgb_to_xyz(self) -> np.ndarray:
        """Matrix from linear RGB to XYZ under the space's own white."""
        prim = np.stack([xy_to_xyz(np.array(p)) for p in self.primaries_xy], axis=1)
        scale = np.linalg.solve(prim, xy_to_xyz(np.array(self.white_xy)))
        return prim * scale

    @property
    def rgb_to_xyz_d50(self) -> np.ndarray:
        """Matrix from linear RGB to D50 XYZ (the ICC profile connection space), Bradford-adapted."""
        return bradford_adaptation(np.array(self.white_xy), D50_XY) @ self.rgb_to_xyz


SRGB = RGBSpace("sRGB", ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), tuple(D65_XY), "srgb")
DISPLAY_P3 = RGBSpace("Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), tuple(D65_XY), "srgb")
ADOBE_RGB = RGBSpace("Adobe RGB (1998)", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), tuple(D65_XY), "gamma2.2")
PROPHOTO_RGB = RGBSpace(
    "ProPhoto RGB", ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), tuple(D50_XY), "prophoto"
)

SPACES: dict[str, RGBSpace] = {
    "srgb": SRGB,
    "display-p3": DISPLAY_P3,
    "adobe-rgb": ADOBE_RGB,
    "prophoto": PROPHOTO_RGB,
}


def xyz_d50_to_linear_srgb() -> np.ndarray:
    """Matrix from D50 XYZ (the DNG and ICC connection space) to linear sRGB (D65)."""
    return np.linalg.inv(SRGB.rgb_to_xyz_d50)


def srgb_to_space_matrix(space: RGBSpace) -> np.ndarray:
    """Matrix from linear sRGB to another space's linear RGB, adapting white points with Bradford."""
    return np.linalg.inv(space.rgb_to_xyz_d50) @ SRGB.rgb_to_xyz_d50


def srgb_encode(x: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1), linear to encoded, on values clipped to [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def srgb_decode(v: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer function, encoded to linear."""
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, np.power((v + 0.055) / 1.055, 2.4)).astype(np.float32)


def encode(linear: np.ndarray, transfer: str) -> np.ndarray:
    """Apply a space's transfer function to linear values clipped to [0, 1]."""
    x = np.clip(linear, 0.0, 1.0)
    if transfer == "srgb":
        return srgb_encode(x)
    if transfer == "gamma2.2":
        return np.power(x, 256 / 563).astype(np.float32)
    if transfer == "prophoto":
        return np.where(x < 1 / 512, 16 * x, np.power(x, 1 / 1.8)).astype(np.float32)
    if transfer == "linear":
        return x.astype(np.float32)
    raise ValueError(f"unknown transfer function {transfer!r}")


# The DNG SDK's scale between a uv offset from the Planckian locus and Adobe's tint (kTintScale = -3000 there,
# applied along the isotherm pointing to the magenta side). colour-science's Duv is positive on the green side, so
# the same convention is +3000 here: whites greener than the locus (daylight, fluorescent) have a positive tint,
# and a positive tint setting turns the image magenta, as in Adobe Camera Raw.
_TINT_SCALE = 3000.0


def _colour_science():
    """colour-science, imported on first use (it is slow to import) and without its matplotlib warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    return colour


def xy_to_temperature_tint(xy: np.ndarray) -> tuple[float, float]:
    """Correlated colour temperature (K) and Adobe-style tint of a white (Robertson's method, as the DNG SDK)."""
    colour = _colour_science()

    uv = colour.xy_to_UCS_uv(np.asarray(xy, dtype=float))
    cct, duv = colour.temperature.uv_to_CCT_Robertson1968(uv)
    return float(cct), float(duv * _TINT_SCALE)


def temperature_tint_to_xy(temperature: float, tint: float = 0.0) -> np.ndarray:
    """White chromaticity of a correlated colour temperature (K) and Adobe-style tint."""
    colour = _colour_science()

    cct = float(np.clip(temperature, 1667.0, 25000.0))
    uv = colour.temperature.CCT_to_uv_Robertson1968(np.array([cct, tint / _TINT_SCALE]))
    return np.asarray(colour.UCS_uv_to_xy(uv), dtype=float)
