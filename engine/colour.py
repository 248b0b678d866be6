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


def bradford_adaptation(src_xy: np.ndarray, dst_xy: np.ndarray, pinned: bool = True) -> np.ndarray:
    """3x3 matrix that adapts XYZ seen under white ``src_xy`` to white ``dst_xy``, as the DNG SDK's
    MapWhiteMatrix: each cone's ratio pinned to 0.1..10, a negative cone response read as none. Far off the
    daylight locus (a yellow-green white, 3000 K with tint +85) a white's blue cone response reaches 0, and the
    plain ratio (``pinned=False``: colour params version 1) grew without bound, then turned negative: blue rendered
    as noise, then as nothing."""
    src = BRADFORD @ xy_to_xyz(src_xy)
    dst = BRADFORD @ xy_to_xyz(dst_xy)
    if not pinned:
        return np.linalg.inv(BRADFORD) @ np.diag(dst / src) @ BRADFORD
    src, dst = np.maximum(src, 0.0), np.maximum(dst, 0.0)
    ratio = np.clip(np.divide(dst, src, out=np.full(3, 10.0), where=src > 0.0), 0.1, 10.0)
    return np.linalg.inv(BRADFORD) @ np.diag(ratio) @ BRADFORD


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


# Robertson's (1968) isotemperature lines: reciprocal megakelvin, CIE 1960 u and v on the Planckian locus, and the
# isotherm's slope (Wyszecki & Stiles, table 1(3.11); 325: u corrected by Lindbloom to 0.24792). The same table
# and arithmetic as colour-science's ``uv_to_CCT_Robertson1968`` / ``CCT_to_uv_Robertson1968``, so the results
# are identical (tests/test_calibration.py checks it); kept here because importing colour-science costs 1.3 s.
_ROBERTSON = np.array([
    (0, 0.18006, 0.26352, -0.24341), (10, 0.18066, 0.26589, -0.25479), (20, 0.18133, 0.26846, -0.26876),
    (30, 0.18208, 0.27119, -0.28539), (40, 0.18293, 0.27407, -0.30470), (50, 0.18388, 0.27709, -0.32675),
    (60, 0.18494, 0.28021, -0.35156), (70, 0.18611, 0.28342, -0.37915), (80, 0.18740, 0.28668, -0.40955),
    (90, 0.18880, 0.28997, -0.44278), (100, 0.19032, 0.29326, -0.47888), (125, 0.19462, 0.30141, -0.58204),
    (150, 0.19962, 0.30921, -0.70471), (175, 0.20525, 0.31647, -0.84901), (200, 0.21142, 0.32312, -1.0182),
    (225, 0.21807, 0.32909, -1.2168), (250, 0.22511, 0.33439, -1.4512), (275, 0.23247, 0.33904, -1.7298),
    (300, 0.24010, 0.34308, -2.0637), (325, 0.24792, 0.34655, -2.4681), (350, 0.25591, 0.34951, -2.9641),
    (375, 0.26400, 0.35200, -3.5814), (400, 0.27218, 0.35407, -4.3633), (425, 0.28039, 0.35577, -5.3762),
    (450, 0.28863, 0.35714, -6.7262), (475, 0.29685, 0.35823, -8.5955), (500, 0.30505, 0.35907, -11.324),
    (525, 0.31320, 0.35968, -15.628), (550, 0.32129, 0.36011, -23.325), (575, 0.32931, 0.36038, -40.770),
    (600, 0.33724, 0.36051, -116.45),
])


def _isotherm_directions() -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (du, dv) along each isotemperature line."""
    length = np.hypot(1.0, _ROBERTSON[:, 3])
    return 1.0 / length, _ROBERTSON[:, 3] / length


def xy_to_temperature_tint(xy: np.ndarray) -> tuple[float, float]:
    """Correlated colour temperature (K) and Adobe-style tint of a white (Robertson's method, as the DNG SDK)."""
    x, y = (float(c) for c in np.asarray(xy, dtype=float))
    d = 12 * y - 2 * x + 3
    u, v = 4 * x / d, 6 * y / d
    mired, u_line, v_line = _ROBERTSON[:, 0], _ROBERTSON[:, 1], _ROBERTSON[:, 2]
    du, dv = _isotherm_directions()
    dt = -(u - u_line[1:]) * dv[1:] + (v - v_line[1:]) * du[1:]
    crossed = dt <= 0
    i = int(np.argmax(crossed)) + 1 if crossed.any() else 30  # the first line the white lies beyond
    f = 0.0 if i == 1 else -min(dt[i - 1], 0.0) / (dt[i - 2] + -min(dt[i - 1], 0.0))
    temperature = 1.0e6 / (mired[i - 1] * f + mired[i] * (1 - f))
    du_i = du[i] * (1 - f) + du[i - 1] * f
    dv_i = dv[i] * (1 - f) + dv[i - 1] * f
    length = np.hypot(du_i, dv_i)
    duv = (u - (u_line[i - 1] * f + u_line[i] * (1 - f))) * (du_i / length) + (
        v - (v_line[i - 1] * f + v_line[i] * (1 - f))) * (dv_i / length)
    return float(temperature), float(-duv * _TINT_SCALE)


def temperature_tint_to_xy(temperature: float, tint: float = 0.0) -> np.ndarray:
    """White chromaticity of a correlated colour temperature (K) and Adobe-style tint."""
    r = 1.0e6 / float(np.clip(temperature, 1667.0, 25000.0))
    mired, u_line, v_line = _ROBERTSON[:, 0], _ROBERTSON[:, 1], _ROBERTSON[:, 2]
    du, dv = _isotherm_directions()
    above = r < mired[1:]
    i = int(np.argmax(above)) if above.any() else 29  # r lies between lines i and i + 1
    f = (mired[i + 1] - r) / (mired[i + 1] - mired[i])
    du_i = du[i] * f + du[i + 1] * (1 - f)
    dv_i = dv[i] * f + dv[i + 1] * (1 - f)
    length = np.hypot(du_i, dv_i)
    duv = tint / _TINT_SCALE
    u = u_line[i] * f + u_line[i + 1] * (1 - f) + du_i / length * -duv
    v = v_line[i] * f + v_line[i + 1] * (1 - f) + dv_i / length * -duv
    d = 2 * u - 8 * v + 4
    return np.array([3 * u / d, 2 * v / d])
