"""DNG tags that LibRaw leaves out or gets wrong, read with tifffile.

LibRaw reports an all-zero colour matrix for camera-written DNGs, a wrong white level for some converter-written
ones, and applies none of the DNG opcodes. This module reads the tags themselves (DNG specification 1.6,
chapters 4 and 6), so the colour stage can follow the specification.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

# EXIF LightSource codes of the calibration illuminants, mapped to correlated colour temperature (DNG SDK).
ILLUMINANT_TEMPERATURE = {
    1: 5500.0, 2: 4200.0, 3: 2850.0, 4: 5500.0, 9: 5500.0, 10: 6500.0, 11: 7500.0, 12: 6430.0, 13: 5000.0,
    14: 4150.0, 15: 3450.0, 16: 2850.0, 17: 2856.0, 18: 4874.0, 19: 6774.0, 20: 5503.0, 21: 6504.0,
    22: 7504.0, 23: 5003.0, 24: 3200.0,
}


@dataclass
class PolynomialMap:
    """A DNG MapPolynomial opcode: ``y = sum(c_k x^k)`` on one plane of normalised raw data."""

    plane: int
    planes: int
    coefficients: tuple[float, ...]


@dataclass
class DngTags:
    """The colour and level tags of a DNG file; ``None`` where the file does not have the tag."""

    color_matrix: list[np.ndarray] = field(default_factory=list)  # XYZ -> camera, one per illuminant
    forward_matrix: list[np.ndarray] = field(default_factory=list)  # white-balanced camera -> XYZ D50
    camera_calibration: list[np.ndarray] = field(default_factory=list)
    illuminants: list[int] = field(default_factory=list)  # EXIF LightSource codes
    analog_balance: np.ndarray | None = None
    as_shot_neutral: np.ndarray | None = None
    as_shot_white_xy: np.ndarray | None = None
    baseline_exposure: float = 0.0
    black_level: np.ndarray | None = None
    white_level: np.ndarray | None = None
    noise_profile: np.ndarray | None = None
    orientation: int = 1
    photometric: int = 0  # 32803 = CFA, 34892 = LinearRaw
    unique_camera_model: str = ""
    polynomial_maps: list[PolynomialMap] = field(default_factory=list)  # from OpcodeList2
    compression: int = 1


def _values(tag_value) -> np.ndarray:
    """Rational tags come back from tifffile as flat (numerator, denominator) tuples; make them floats."""
    v = np.asarray(tag_value, dtype=np.float64).ravel()
    return v


def _rationals(tag_value, count: int) -> np.ndarray:
    v = _values(tag_value)
    if v.size == 2 * count:
        return v[0::2] / np.where(v[1::2] == 0, 1, v[1::2])
    return v[:count]


def _matrix(tag_value) -> np.ndarray | None:
    m = _rationals(tag_value, 9)
    if m.size != 9 or not np.any(m):
        return None
    return m.reshape(3, 3)


def _raw_page(page: tifffile.TiffPage | tifffile.TiffFrame) -> tifffile.TiffPage:
    """The IFD that holds the main raw image: IFD0 itself, or the SubIFD with NewSubfileType 0."""
    page = page.aspage()  # a TiffFrame (a lightweight IFD) becomes a full page with its tags
    if int(page.tags.valueof(254, 1) or 0) == 0:
        return page
    for sub in page.pages or []:
        sub = sub.aspage()
        if int(sub.tags.valueof(254, 0) or 0) == 0:
            return sub
    return page


def _polynomial_maps(opcodes: bytes) -> list[PolynomialMap]:
    """The MapPolynomial opcodes of an opcode list; other opcodes are skipped (they are rare after LinearRaw)."""
    maps: list[PolynomialMap] = []
    (count,) = struct.unpack(">I", opcodes[:4])
    offset = 4
    for _ in range(count):
        opcode_id, _version, _flags, size = struct.unpack(">IIII", opcodes[offset : offset + 16])
        params = opcodes[offset + 16 : offset + 16 + size]
        offset += 16 + size
        if opcode_id == 8:  # MapPolynomial
            _t, _l, _b, _r, plane, planes, _rp, _cp, degree = struct.unpack(">9I", params[:36])
            coefficients = struct.unpack(f">{degree + 1}d", params[36 : 36 + 8 * (degree + 1)])
            maps.append(PolynomialMap(plane, planes, coefficients))
    return maps


def read_dng_tags(path: Path) -> DngTags | None:
    """The DNG tags of ``path``, or ``None`` when the file is not a DNG."""
    try:
        with tifffile.TiffFile(path) as tif:
            ifd0 = tif.pages[0].aspage()
            if 50706 not in ifd0.tags:  # DNGVersion
                return None
            return _parse(ifd0, _raw_page(ifd0))
    except (tifffile.TiffFileError, OSError, ValueError, struct.error, IndexError):
        return None


def _parse(ifd0: tifffile.TiffPage, raw: tifffile.TiffPage) -> DngTags:
    tags = DngTags()
    for cm_code, fm_code, cc_code, ill_code in ((50721, 50964, 50723, 50778), (50722, 50965, 50724, 50779)):
        cm = _matrix(ifd0.tags.valueof(cm_code)) if cm_code in ifd0.tags else None
        if cm is None:
            continue
        tags.color_matrix.append(cm)
        fm = _matrix(ifd0.tags.valueof(fm_code)) if fm_code in ifd0.tags else None
        cc = _matrix(ifd0.tags.valueof(cc_code)) if cc_code in ifd0.tags else None
        if fm is not None:
            tags.forward_matrix.append(fm)
        tags.camera_calibration.append(cc if cc is not None else np.eye(3))
        tags.illuminants.append(int(ifd0.tags.valueof(ill_code, 21 if cm_code == 50721 else 17)))
    if len(tags.forward_matrix) != len(tags.color_matrix):
        tags.forward_matrix = []  # the specification uses forward matrices only when every illuminant has one
    if 50727 in ifd0.tags:
        tags.analog_balance = _rationals(ifd0.tags.valueof(50727), 3)
    if 50728 in ifd0.tags:
        tags.as_shot_neutral = _rationals(ifd0.tags.valueof(50728), 3)
    if 50729 in ifd0.tags:
        tags.as_shot_white_xy = _rationals(ifd0.tags.valueof(50729), 2)
    if 50730 in ifd0.tags:
        tags.baseline_exposure = float(_rationals(ifd0.tags.valueof(50730), 1)[0])
    tags.orientation = int(ifd0.tags.valueof(274, 1) or 1)
    unique = ifd0.tags.valueof(50708, "")
    tags.unique_camera_model = unique.decode(errors="replace") if isinstance(unique, bytes) else str(unique)
    tags.photometric = int(raw.tags.valueof(262, 0) or 0)
    tags.compression = int(raw.tags.valueof(259, 1) or 1)
    if 50714 in raw.tags:
        black = _values(raw.tags.valueof(50714))
        is_rational = raw.tags[50714].dtype in (5, 10)
        tags.black_level = black[0::2] / black[1::2] if is_rational else black
    if 50717 in raw.tags:
        tags.white_level = _values(raw.tags.valueof(50717))
    for page in (raw, ifd0):
        if 51041 in page.tags:
            tags.noise_profile = _values(page.tags.valueof(51041))
            break
    if 51009 in raw.tags:
        tags.polynomial_maps = _polynomial_maps(bytes(raw.tags.valueof(51009)))
    return tags


def read_linear_raw(path: Path) -> np.ndarray:
    """The pixel data of a LinearRaw DNG's main image, as stored (H x W x samples)."""
    with tifffile.TiffFile(path) as tif:
        return _raw_page(tif.pages[0]).asarray()
