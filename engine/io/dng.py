"""DNG tags that LibRaw leaves out or gets wrong, read with tifffile.

LibRaw reports an all-zero colour matrix for camera-written DNGs, a wrong white level for some converter-written
ones, and applies none of the DNG opcodes. This module reads the tags themselves (DNG specification 1.6,
chapters 4 and 6), so the colour stage can follow the specification.
"""

from __future__ import annotations

import errno
import math
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from engine.errors import CorruptInputError, HostplugError, UnsupportedInputError
from engine.io import bad_pixels, gain_map, lens_warp
from engine.io.formats import starts_as_tiff
from engine.io.gain_map import ShadingMap
from engine.io.lens_warp import LensWarp
from engine.io.limits import check_pixels, quiet_tifffile

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
    orientation: int | None = None  # IFD0's Orientation (1 where out of range); None where there is none
    photometric: int = 0  # 32803 = CFA, 34892 = LinearRaw
    unique_camera_model: str = ""
    polynomial_maps: list[PolynomialMap] = field(default_factory=list)  # from OpcodeList2
    # lens shading (GainMap, FixVignetteRadial) from OpcodeList2: on the raw data
    gain_maps: list[ShadingMap] = field(default_factory=list)
    # from OpcodeList3, in order: lens shading and lens warps (engine.io.lens_warp), applied after demosaicing
    rgb_opcodes: list[ShadingMap | LensWarp] = field(default_factory=list)
    # from OpcodeList1: bad pixels (engine.io.bad_pixels), in the stored image's coordinates
    bad_pixels: list[bad_pixels.BadPixels] = field(default_factory=list)
    # the opcodes of the raw IFD's lists that hostplug does not apply, as "Name (OpcodeListN)"
    skipped_opcodes: list[str] = field(default_factory=list)
    default_crop: tuple[float, float, float, float] | None = None  # (top, left, height, width) in the active area
    user_crop: tuple[float, float, float, float] | None = None  # DefaultUserCrop: (top, left, bottom, right) in 0..1
    compression: int = 1


class _Tags:
    """Numeric tag values of one IFD, each checked as it is read: finite, in range, the right count and type.

    A bad value raises :class:`CorruptInputError` (or :class:`UnsupportedInputError`) with one line that names
    the file, the tag and the value.
    """

    def __init__(self, path: Path, page: tifffile.TiffPage) -> None:
        self.path = path
        self.page = page

    def __contains__(self, code: int) -> bool:
        return code in self.page.tags

    def name(self, code: int) -> str:
        return TAG_NAMES.get(code) or f"tag {code}"

    def bad(self, code: int, values: object, why: str, error: type[HostplugError] = CorruptInputError) -> HostplugError:
        return error(f"{self.path}: damaged DNG: {self.name(code)} is {_show(values)}, {why}; the file was damaged "
                     "or written by a faulty tool")

    def floats(self, code: int, count: int = 0) -> np.ndarray | None:
        """The tag's values as finite float64 (rationals divided out; a zero denominator counts as one, as it
        always has); ``None`` when the tag is absent; at least ``count`` values, of which the first are kept."""
        if code not in self.page.tags:
            return None
        tag = self.page.tags[code]
        value = tag.value
        try:
            if isinstance(value, str):
                raise ValueError
            if isinstance(value, bytes):
                value = np.frombuffer(value, dtype=np.uint8)
            v = np.asarray(value, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise self.bad(code, value, "not a number") from None
        if tag.dtype in (5, 10):  # RATIONAL, SRATIONAL: flat (numerator, denominator) pairs
            if v.size % 2:
                raise self.bad(code, v, "an odd count of rational halves")
            v = v[0::2] / np.where(v[1::2] == 0, 1, v[1::2])
        if v.size < max(count, 1):
            raise self.bad(code, v, f"{v.size} values where {max(count, 1)} are needed")
        if count:
            v = v[:count]
        if not np.all(np.isfinite(v)):
            raise self.bad(code, v, "not a finite number")
        return v

    def number(self, code: int, low: float, high: float, default: float | None = None) -> float | None:
        """One finite value in ``low..high``; ``default`` when the tag is absent."""
        v = self.floats(code, 1)
        if v is None:
            return default
        if not low <= v[0] <= high:
            raise self.bad(code, v, f"outside {_number_text(low)}..{_number_text(high)}")
        return float(v[0])

    def integer(self, code: int, low: int, high: int, default: int | None = None) -> int | None:
        value = self.number(code, low, high, None if default is None else float(default))
        return None if value is None else int(value)

    def integers(self, code: int, low: int, high: int) -> list[int] | None:
        v = self.floats(code)
        if v is None:
            return None
        if np.any(v < low) or np.any(v > high) or np.any(v != np.floor(v)):
            raise self.bad(code, v, f"not whole numbers in {low}..{high}")
        return [int(x) for x in v]

    def matrix(self, code: int) -> np.ndarray | None:
        """A 3x3 matrix, ``None`` when absent, all zero (LibRaw's way of saying "none") or not 3x3 (a
        4-colour camera's, which the colour stage does not use); refused when not invertible or absurd."""
        v = self.floats(code)
        if v is None or v.size != 9 or not np.any(v):
            return None
        m = v.reshape(3, 3)
        largest = float(np.abs(m).max())
        if not MATRIX_MIN <= largest <= MATRIX_MAX:
            raise self.bad(code, v, f"out of range (largest magnitude {_number_text(largest)}, expected "
                           f"{_number_text(MATRIX_MIN)}..{_number_text(MATRIX_MAX)})")
        if np.linalg.cond(m) > MATRIX_CONDITION:
            raise self.bad(code, v, "a singular matrix (it cannot be inverted)")
        return m

    def balance(self, code: int, low: float, high: float) -> np.ndarray | None:
        """Three positive per-channel factors (AnalogBalance)."""
        v = self.floats(code, 3)
        if v is None:
            return None
        if np.any(v < low) or np.any(v > high):
            raise self.bad(code, v, f"not three factors in {_number_text(low)}..{_number_text(high)}")
        return v


# Names of the tags the engine reads, for the error messages.
TAG_NAMES = {
    256: "ImageWidth", 257: "ImageLength", 258: "BitsPerSample", 259: "Compression", 262: "PhotometricInterpretation",
    273: "StripOffsets", 274: "Orientation", 277: "SamplesPerPixel", 278: "RowsPerStrip", 279: "StripByteCounts",
    322: "TileWidth", 323: "TileLength", 324: "TileOffsets", 325: "TileByteCounts", 33421: "CFARepeatPatternDim",
    33422: "CFAPattern", 50710: "CFAPlaneColor", 50711: "CFALayout", 50714: "BlackLevel", 50717: "WhiteLevel",
    50721: "ColorMatrix1",
    50722: "ColorMatrix2", 50723: "CameraCalibration1", 50724: "CameraCalibration2", 50727: "AnalogBalance",
    50728: "AsShotNeutral", 50729: "AsShotWhiteXY", 50730: "BaselineExposure", 50778: "CalibrationIlluminant1",
    50779: "CalibrationIlluminant2", 50964: "ForwardMatrix1", 50965: "ForwardMatrix2", 51008: "OpcodeList1",
    51009: "OpcodeList2", 51022: "OpcodeList3", 51041: "NoiseProfile", 50712: "LinearizationTable",
    50829: "ActiveArea", 50719: "DefaultCropOrigin", 50720: "DefaultCropSize", 51125: "DefaultUserCrop",
    700: "XMLPacket",  # read by engine.xmp.embedded: one tifffile cannot read must not vanish unseen
}

# What a DNG's values may be. Real files stay far inside these; outside them lies damage, and arithmetic that
# overflows or divides by zero further down.
MATRIX_MIN, MATRIX_MAX, MATRIX_CONDITION = 1e-4, 1e3, 1e8
BALANCE_MIN, BALANCE_MAX = 1e-3, 1e3  # AnalogBalance and the as-shot neutral, relative to green
BASELINE_EXPOSURE_MAX = 16.0  # EV either way
LEVEL_MAX = 2.0**32  # black and white levels are LONG at most
MAX_OPCODE_PARAMS = 1 << 26  # one opcode's parameters: 64 MB (a gain map of a 100 MP sensor is well under)
MAX_POLYNOMIAL_DEGREE = 8  # DNG 1.6, MapPolynomial
# Opcodes of one list that hostplug applies: each is a pass over the whole image (a warp, a gain), so a list of
# thousands takes minutes. Real files hold a few: Android's four GainMaps (one per Bayer channel), Adobe's warp
# and vignette, one bad-pixel list; 32 is several times that.
MAX_APPLIED_OPCODES = 32
POLYNOMIAL_MAX = 1e6
RAW_PHOTOMETRIC = {32803: "CFA", 34892: "LinearRaw"}


def _show(values: object) -> str:
    """A short text for a tag's value."""
    if isinstance(values, bytes):
        text = values[:16].hex(" ") + (" ..." if len(values) > 16 else "")
        return text or "empty"
    try:
        flat = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return repr(values)[:60]
    text = ", ".join(_number_text(x) for x in flat[:9]) + (", ..." if flat.size > 9 else "")
    return text if flat.size == 1 else f"({text})"


def _number_text(x: float) -> str:
    """A tag's number as people read it: a whole number in full (4294967295, where ``:g`` wrote 4.29497e+09),
    others to six significant digits."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:.6g}"


def _raw_page(page: tifffile.TiffPage | tifffile.TiffFrame) -> tifffile.TiffPage:
    """The IFD that holds the main raw image: IFD0 itself, or the SubIFD with NewSubfileType 0."""
    page = page.aspage()  # a TiffFrame (a lightweight IFD) becomes a full page with its tags
    if _subfile_type(page, 1) == 0:
        return page
    for sub in page.pages or []:
        sub = sub.aspage()
        if _subfile_type(sub, 0) == 0:
            return sub
    return page


def _subfile_type(page: tifffile.TiffPage, default: int) -> int:
    value = page.tags.valueof(254, default)
    try:
        flat = np.asarray(value, dtype=np.float64).ravel()
        return int(flat[0]) if flat.size else 0
    except (TypeError, ValueError, OverflowError):
        return -1


def _opcode_list(tags: _Tags, code: int) -> list[tuple[int, bytes]]:
    """The (id, parameters) of an opcode list, refused when the list is malformed: LibRaw walks it as its count
    says, and a count of 0xFFFFFFFF keeps it busy for minutes."""
    value = tags.page.tags[code].value
    data = bytes(value) if isinstance(value, (bytes, bytearray)) else b""
    if len(data) < 4:
        raise tags.bad(code, data, "too short for an opcode list")
    (count,) = struct.unpack(">I", data[:4])
    if count > (len(data) - 4) // 16:
        raise tags.bad(code, data, f"a list that claims {count} opcodes in {len(data)} bytes")
    opcodes: list[tuple[int, bytes]] = []
    offset = 4
    for _ in range(count):
        if offset + 16 > len(data):
            raise tags.bad(code, data, f"a list that ends inside opcode {len(opcodes) + 1} of {count}")
        opcode_id, _version, _flags, size = struct.unpack(">IIII", data[offset : offset + 16])
        if size > min(len(data) - offset - 16, MAX_OPCODE_PARAMS):
            raise tags.bad(code, data, f"a list whose opcode {len(opcodes) + 1} claims {size} bytes of parameters "
                           f"where {len(data) - offset - 16} remain")
        opcodes.append((opcode_id, data[offset + 16 : offset + 16 + size]))
        offset += 16 + size
    return opcodes


def _polynomial(params: bytes) -> PolynomialMap:
    """A MapPolynomial opcode's parameters, checked; ValueError says what is wrong with them."""
    if len(params) < 36:
        raise ValueError("a MapPolynomial opcode too short for its parameters")
    _t, _l, _b, _r, plane, planes, _rp, _cp, degree = struct.unpack(">9I", params[:36])
    if degree > MAX_POLYNOMIAL_DEGREE or len(params) < 36 + 8 * (degree + 1):
        raise ValueError(f"a MapPolynomial of degree {degree} (at most {MAX_POLYNOMIAL_DEGREE}, with "
                         f"{8 * (degree + 1)} bytes of coefficients)")
    if plane > 3 or not 1 <= planes <= 4:
        raise ValueError(f"a MapPolynomial on plane {plane} of {planes}: plane and plane count outside 0..3 and "
                         "1..4")
    coefficients = struct.unpack(f">{degree + 1}d", params[36 : 36 + 8 * (degree + 1)])
    if not all(math.isfinite(c) and abs(c) <= POLYNOMIAL_MAX for c in coefficients):
        raise ValueError(f"MapPolynomial coefficients {_show(coefficients)} that are not finite numbers within "
                         f"+-{_number_text(POLYNOMIAL_MAX)}")
    return PolynomialMap(plane, planes, coefficients)


def _parsed_opcodes(tags: _Tags, code: int, parsers: Mapping[int, Callable[[bytes], Any]],
                    skipped: list[str]) -> list[Any]:
    """The opcodes of an opcode list that ``parsers`` (opcode id -> parser) know, parsed and checked, in order;
    a parser's ValueError says what is wrong. The others are named in ``skipped``. A list of more than
    :data:`MAX_APPLIED_OPCODES` that ``parsers`` know is refused."""
    opcodes = _opcode_list(tags, code)
    applied = sum(opcode_id in parsers for opcode_id, _ in opcodes)
    if applied > MAX_APPLIED_OPCODES:
        raise tags.bad(code, tags.page.tags[code].value, f"a list of {applied} opcodes to apply (a camera writes "
                       f"a few; at most {MAX_APPLIED_OPCODES} are taken)")
    parsed = []
    for opcode_id, params in opcodes:
        if opcode_id in parsers:
            try:
                parsed.append(parsers[opcode_id](params))
            except ValueError as e:
                raise tags.bad(code, params, str(e)) from None
        else:
            skipped.append(f"{OPCODE_NAMES.get(opcode_id, f'opcode {opcode_id}')} ({tags.name(code)})")
    return parsed


GAIN_MAP, FIX_VIGNETTE_RADIAL, MAP_POLYNOMIAL = 9, 3, 8  # opcode ids (DNG 1.3, chapter 7; warps: lens_warp)
OPCODE_NAMES = {1: "WarpRectilinear", 2: "WarpFisheye", 3: "FixVignetteRadial", 4: "FixBadPixelsConstant",
                5: "FixBadPixelsList", 6: "TrimBounds", 7: "MapTable", 8: "MapPolynomial", 9: "GainMap",
                10: "DeltaPerRow", 11: "DeltaPerColumn", 12: "ScalePerRow", 13: "ScalePerColumn",
                14: "WarpRectilinear2"}
SHADING_PARSERS = {GAIN_MAP: gain_map.parse, FIX_VIGNETTE_RADIAL: gain_map.parse_radial}


# What tifffile raises on a file it cannot read as a TIFF (an OverflowError: a NaN or infinite DOUBLE where it
# expects a size, such as BitsPerSample or RowsPerStrip)
_NOT_READABLE = (tifffile.TiffFileError, OSError, ValueError, ArithmeticError, struct.error, IndexError, KeyError,
                 TypeError)


# DNG compressions LibRaw cannot decode, by name
UNDECODABLE_COMPRESSIONS = {9: "VC-5 (GoPro)", 52546: "JPEG XL", 34892: "lossy JPEG"}
# Those that no LibRaw build decodes; lossy JPEG is decoded where LibRaw was built with libjpeg (rawpy's wheels are),
# so only a render can tell (the Nikon D500 sample of ../shared is one).
NEVER_DECODED = frozenset({9, 52546})


def undecodable(path: Path, compression: int) -> UnsupportedInputError:
    """The refusal of a DNG whose raw data uses a compression LibRaw cannot decode."""
    name = UNDECODABLE_COMPRESSIONS.get(compression, f"code {compression}")
    return UnsupportedInputError(f"{path}: unsupported raw: this DNG uses {name} compression, which LibRaw cannot "
                                 "decode; convert it to a standard DNG (e.g. with Adobe DNG Converter or the vendor's "
                                 "tool) and try again")


# What a TIFF's pixels are (its PhotometricInterpretation) when it is a picture: black or white is zero, RGB,
# palette, YCbCr. A raw in a TIFF is CFA (32803) or LinearRaw (34892), and a DNG says so by its DNGVersion.
# grey, RGB, palette, mask, CMYK, YCbCr, CIELab (ICC, ITU): never a raw's sensor data (CFA or LinearRaw)
_PICTURE_PHOTOMETRICS = frozenset({0, 1, 2, 3, 4, 5, 6, 8, 9, 10})


def is_tiff_picture(file: Path) -> bool:
    """Whether ``file`` is a TIFF of a picture, not of a raw: LibRaw takes a 16-bit grey TIFF for a "flat" raw
    of a Bayer sensor, and renders it as one. A raw in a TIFF (an ARW, a Kodak or early Canon ``.TIF``) keeps a
    preview first and its sensor data in another directory or a SubIFD, so every one is looked at. A TIFF whose
    first directory cannot be read at all is taken for a damaged picture (refused by the picture reader): LibRaw
    rendered a tester's RGB TIFF with SamplesPerPixel 0 as a Bayer mosaic, colour noise, exit 0."""
    with quiet_tifffile():
        try:
            tif = tifffile.TiffFile(file)
        except _NOT_READABLE:
            return starts_as_tiff(file)  # a damaged TIFF; or none at all, which LibRaw may know
        with tif:
            try:
                first = tif.pages[0].aspage()
                if 50706 in first.tags or int(first.photometric) not in _PICTURE_PHOTOMETRICS:
                    return False
            except _NOT_READABLE:
                return True
            try:
                return not any(int(page.photometric) not in _PICTURE_PHOTOMETRICS for page in _directories(tif))
            except _NOT_READABLE:
                return False


# How much of a TIFF raw's uncompressed image data may lie past the file's end before the file counts as truncated:
# a cut copy loses megabytes; a camera's sloppy byte count, if any, a little
TRUNCATION_SLACK = 65536
# Raws whose byte counts are known not to be their data's size (exiftool's list: Hasselblad's count the
# uncompressed size of compressed data, Kodak's and Sony's SRF lay their data out their own way): not checked
UNRELIABLE_COUNTS = frozenset({".3fr", ".fff", ".dcr", ".kdc", ".k25", ".srf"})


def check_tiff_raw_complete(path: Path, file: Path | None = None) -> None:
    """Refuse a raw in a TIFF structure (ARW, NEF, CR2, PEF, ...; a DNG's own check is :func:`read_dng_tags`)
    whose largest image data, the sensor's, runs past the end of the file: a card copy cut short. Uncompressed
    data may overrun by TRUNCATION_SLACK and 1 %; compressed data, whose count a camera may get wrong, must miss
    more than half. From the header alone, so that ``show`` and ``edit`` refuse what a render refuses after
    decoding (a tester's cut ARW passed both). A file tifffile cannot read is left to LibRaw."""
    if Path(path).suffix.lower() in UNRELIABLE_COUNTS:
        return
    with quiet_tifffile():
        try:
            tif = tifffile.TiffFile(file or path)
        except _NOT_READABLE:
            return
        with tif:
            size = tif.filehandle.size
            try:
                largest = max(_directories(tif), key=lambda page: sum(page.databytecounts), default=None)
                if largest is None or not largest.dataoffsets:
                    return
                start, data = min(largest.dataoffsets), sum(largest.databytecounts)
                end = max(o + c for o, c in zip(largest.dataoffsets, largest.databytecounts, strict=False))
                compressed = int(largest.compression) != 1
            except _NOT_READABLE:
                return
    allowed = data // 2 if compressed else max(TRUNCATION_SLACK, data // 100)
    if end - size > allowed:
        raise CorruptInputError(f"{path}: the file is truncated: its raw data runs to byte {end}, but the file ends "
                                f"at byte {size} (a copy cut short?)")
    if start >= size:
        raise CorruptInputError(f"{path}: the file is truncated: its raw data starts at byte {start}, past its end")


def _directories(tif: tifffile.TiffFile, limit: int = 64) -> Iterator[tifffile.TiffPage]:
    """The file's image directories and their SubIFDs (at most ``limit``: a raw has a handful)."""
    seen = 0
    for frame in tif.pages:
        page = frame.aspage()
        for each in [page, *(page.pages or [])]:
            seen += 1
            if seen > limit:
                return
            yield each.aspage()


def read_dng_tags(path: Path, file: Path | None = None) -> DngTags | None:
    """The DNG tags of ``path`` (read from ``file`` when given: the open file, see
    :func:`engine.io.bounded.pinned`), checked, or ``None`` when it is not a DNG (or not a TIFF tifffile reads).

    A DNG whose tags are damaged or implausible (not finite, out of range, a malformed opcode list, image data
    past the end of the file, more pixels than :func:`engine.io.limits.max_pixels`) is refused with one line:
    this runs before LibRaw sees the file.
    """
    with quiet_tifffile():
        try:
            tif = tifffile.TiffFile(file or path)
        except _NOT_READABLE as e:
            _refuse_if_named_dng(path, e)
            return None
        with tif:
            try:
                ifd0 = tif.pages[0].aspage()
                if 50706 not in ifd0.tags:  # DNGVersion
                    return None
            except _NOT_READABLE as e:
                _refuse_if_named_dng(path, e)
                return None
            try:
                raw = _raw_page(ifd0)
            except Exception as e:  # noqa: BLE001 - a DNG whose raw IFD tifffile cannot read is damaged
                raise CorruptInputError(f"{path}: damaged DNG: its raw image directory cannot be read "
                                        f"({_why(e)})") from e
            try:
                _check_structure(path, _Tags(path, raw), tif.filehandle.size)
                _check_other_opcode_lists(path, ifd0, raw)
                _check_unread_tags(path, tif, ifd0, raw)
                return _parse(path, ifd0, raw)
            except HostplugError:
                raise
            except Exception as e:  # noqa: BLE001 - any other failure reading the tags of a DNG is damage
                raise CorruptInputError(f"{path}: damaged DNG: its tags cannot be read ({_why(e)}); the file "
                                        "may be truncated or damaged") from e


def _refuse_if_named_dng(path: Path, error: Exception) -> None:
    """For a file whose TIFF structure tifffile cannot read: nothing (another format), unless it is named a DNG;
    then it is a damaged one (CorruptInputError). A tester's DNG with its first directory's offset past the end went
    to LibRaw unchecked and rendered with the wrong colours, exit 0; a damaged tag in it then passed too."""
    if Path(path).suffix.lower() == ".dng":
        raise CorruptInputError(f"{path}: damaged DNG: its TIFF structure cannot be read ({_why(error)}); the file "
                                "may be truncated or damaged") from error


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:200]


def _why(e: Exception) -> str:
    """What went wrong reading a damaged file, in a reader's words rather than Python's ("IndexError: index 0 out
    of range(0)", "unpack requires a buffer of 4 bytes"): an index or a short read is data cut short."""
    if isinstance(e, (IndexError, struct.error, EOFError)) or (isinstance(e, OSError) and e.errno == errno.EINVAL):
        return "its data ends too soon or points outside the file"
    if isinstance(e, tifffile.TiffFileError):  # (a ValueError: "not a TIFF file" is tifffile's own words)
        return _one_line(e)
    if isinstance(e, (TypeError, ValueError, OverflowError)):  # a fuzzer's "'>' not supported between instances
        # of 'tuple' and 'int'", "invalid literal for int()", "cannot convert float NaN to integer"
        return "a tag holds a value of the wrong type or out of range"
    return _one_line(e) or type(e).__name__


def _check_structure(path: Path, tags: _Tags, file_size: int) -> None:
    """Refuse a raw IFD whose header no decoder should trust: sizes, sample format, CFA layout, where the image
    data lies, opcode lists."""
    width = tags.integer(256, 1, 2**31, default=0)
    height = tags.integer(257, 1, 2**31, default=0)
    if not width or not height:
        raise CorruptInputError(f"{path}: damaged DNG: the raw image has no ImageWidth or ImageLength")
    check_pixels(path, width, height, "raw image")
    photometric = tags.integer(262, 0, 65535, default=0)
    compression = tags.integer(259, 0, 65535, default=1)
    samples = tags.integer(277, 1, 65535, default=1) or 1
    if samples > 4:
        raise tags.bad(277, samples, "more than the 4 samples per pixel a raw can have", UnsupportedInputError)
    bits = tags.integers(258, 0, 65535) or [1]
    if photometric in RAW_PHOTOMETRIC and not all(8 <= b <= 32 for b in bits):
        raise tags.bad(258, bits, "not 8 to 32 bits per sample (what DNG allows for raw data)",
                       UnsupportedInputError)
    if photometric == 32803:
        _check_cfa(tags)
        layout = tags.integer(50711, 1, 9, default=1)  # CFALayout: NaN, 0 and 99 passed (a fuzzer's)
        if layout != 1:
            raise tags.bad(50711, layout, "a staggered sensor layout, which hostplug does not demosaic (only 1, "
                                          "a rectangular one)", UnsupportedInputError)
    for offsets_code, counts_code in ((273, 279), (324, 325)):
        if offsets_code in tags:
            offsets = tags.integers(offsets_code, 0, 2**64) or []
            counts = tags.integers(counts_code, 0, 2**64) if counts_code in tags else None
            if counts is None or len(counts) != len(offsets):
                raise CorruptInputError(f"{path}: damaged DNG: {tags.name(offsets_code)} and "
                                        f"{tags.name(counts_code)} do not match; the file is damaged")
            end = max((o + c for o, c in zip(offsets, counts, strict=True)), default=0)
            if end > file_size:
                raise CorruptInputError(f"{path}: the file is truncated or damaged: its raw image data runs to byte "
                                        f"{end}, but the file ends at byte {file_size}")
            if compression == 1 and photometric in RAW_PHOTOMETRIC:
                needed = width * height * samples * max(bits) // 8
                if sum(counts) < needed:
                    raise CorruptInputError(f"{path}: the file is truncated or damaged: {sum(counts)} bytes of "
                                            f"uncompressed raw data for a {width} x {height} image that needs "
                                            f"{needed}")
    if 50712 in tags:
        tags.integers(50712, 0, 65535)  # LinearizationTable: LibRaw applies it to every sample
    if 50829 in tags:  # ActiveArea: top, left, bottom, right
        area = tags.integers(50829, 0, 2**32) or []
        if len(area) != 4 or not (area[0] < area[2] <= height and area[1] < area[3] <= width):
            raise tags.bad(50829, area, f"not an area (top, left, bottom, right) inside the {width} x {height} image")
    for code in (51008, 51009, 51022):
        if code in tags:
            _opcode_list(tags, code)


def _check_other_opcode_lists(path: Path, ifd0: tifffile.TiffPage, raw: tifffile.TiffPage) -> None:
    """The opcode lists of IFD0 and of the SubIFDs besides the raw one: LibRaw parses those too (a list there
    made a DOUBLE NaN read as a count of 0x7FF80000 opcodes, and LibRaw was busy for over a minute)."""
    for page in (ifd0, *(sub.aspage() for sub in ifd0.pages or [])):
        if page is not raw:
            for code in (51008, 51009, 51022):
                if code in page.tags:
                    _opcode_list(_Tags(path, page), code)


def _check_unread_tags(path: Path, tif: tifffile.TiffFile, *pages: tifffile.TiffPage) -> None:
    """Refuse a tag the engine checks that is in an IFD but that tifffile could not read (a value offset past the
    end of the file): tifffile leaves it out, so it would escape the checks, but LibRaw reads it all the same."""
    if tif.is_bigtiff:
        return
    handle = tif.filehandle
    for page in {id(page): page for page in pages}.values():
        handle.seek(page.offset)
        (count,) = struct.unpack(tif.byteorder + "H", handle.read(2))
        entries = handle.read(12 * count)
        codes = {struct.unpack_from(tif.byteorder + "H", entries, 12 * i)[0] for i in range(len(entries) // 12)}
        unread = sorted((codes & TAG_NAMES.keys()) - set(page.tags.keys()))
        if unread:
            raise CorruptInputError(f"{path}: damaged DNG: its {TAG_NAMES[unread[0]]} entry cannot be read (its value "
                                    "lies outside the file); the file was damaged or written by a faulty tool")


def _check_cfa(tags: _Tags) -> None:
    """A CFA layout LibRaw and the demosaic can follow: a repeat of 1..16 each way, and every colour in it."""
    dims = tags.integers(33421, 1, 16) or [2, 2]
    if len(dims) != 2:
        raise tags.bad(33421, dims, "not two numbers (rows, columns)")
    if 33422 not in tags:
        return
    if tags.page.tags[33422].dtype not in (1, 7):  # LibRaw reads its bytes whatever the type: a fuzzer's doubles
        # were "a sensor of 1 colour(s) (GMCY)", unsupported, where the file is damaged
        raise tags.bad(33422, tags.page.tags[33422].value, "not stored as bytes, as DNG stores a colour pattern")
    planes = tags.integers(50710, 0, 255) if 50710 in tags else [0, 1, 2]
    pattern = tags.integers(33422, 0, 255) or []
    if len(pattern) != dims[0] * dims[1]:
        raise tags.bad(33422, pattern, f"{len(pattern)} colours for a {dims[0]} x {dims[1]} pattern")
    # The pattern holds colour codes (0 red, 1 green, 2 blue, 3 cyan, ...); CFAPlaneColor lists the planes' codes.
    if not planes or len(planes) > 4 or set(pattern) != set(planes):
        raise tags.bad(33422, bytes(pattern), f"a pattern whose colours are not those of the planes "
                       f"({_show(planes)}) once or more each")


def _parse(path: Path, ifd0: tifffile.TiffPage, raw: tifffile.TiffPage) -> DngTags:
    tags = DngTags()
    main, image = _Tags(path, ifd0), _Tags(path, raw)
    for cm_code, fm_code, cc_code, ill_code in ((50721, 50964, 50723, 50778), (50722, 50965, 50724, 50779)):
        cm = main.matrix(cm_code)
        if cm is None:
            continue
        tags.color_matrix.append(cm)
        fm = main.matrix(fm_code)
        cc = main.matrix(cc_code)
        if fm is not None:
            tags.forward_matrix.append(fm)
        tags.camera_calibration.append(cc if cc is not None else np.eye(3))
        tags.illuminants.append(main.integer(ill_code, 0, 65535, default=21 if cm_code == 50721 else 17) or 0)
    if len(tags.forward_matrix) != len(tags.color_matrix):
        tags.forward_matrix = []  # the specification uses forward matrices only when every illuminant has one
    for code, matrices in ((50722, tags.color_matrix), (50965, tags.forward_matrix),
                           (50724, tags.camera_calibration)):
        _check_blends(main, code, matrices)
    tags.analog_balance = main.balance(50727, BALANCE_MIN, BALANCE_MAX)
    neutral = main.floats(50728, 3)
    if neutral is not None:
        if np.any(neutral < 0):
            raise main.bad(50728, neutral, "negative")
        ratio = neutral / neutral[1] if neutral[1] > 0 else neutral
        if np.all(neutral > 0) and not np.all((ratio >= BALANCE_MIN) & (ratio <= BALANCE_MAX)):
            raise main.bad(50728, neutral, "implausible (each channel must be "
                           f"{_number_text(BALANCE_MIN)}..{_number_text(BALANCE_MAX)} "
                           "times green)")
        tags.as_shot_neutral = neutral  # zeros: no as-shot white balance (see engine.io.source)
    tags.as_shot_white_xy = _white_xy(main)
    tags.baseline_exposure = main.number(50730, -BASELINE_EXPOSURE_MAX, BASELINE_EXPOSURE_MAX, default=0.0) or 0.0
    orientation = ifd0.tags.valueof(274, None)
    if orientation is not None:  # LibRaw turned an out-of-range value (0, 9, 65535) into some rotation
        tags.orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    unique = ifd0.tags.valueof(50708, "")
    tags.unique_camera_model = unique.decode(errors="replace") if isinstance(unique, bytes) else str(unique)
    tags.photometric = image.integer(262, 0, 65535, default=0) or 0
    tags.compression = image.integer(259, 0, 65535, default=1) or 0
    if 50714 in image:
        black = image.floats(50714)
        if black is not None and (np.any(black < 0) or np.any(black >= LEVEL_MAX)):
            raise image.bad(50714, black, f"outside 0..{_number_text(LEVEL_MAX)}")
        tags.black_level = black
    if 50717 in image:
        white = image.floats(50717)
        if white is not None and (np.any(white <= 0) or np.any(white > LEVEL_MAX)):
            raise image.bad(50717, white, f"outside 1..{_number_text(LEVEL_MAX)}")
        tags.white_level = white
    if (tags.black_level is not None and tags.white_level is not None and tags.black_level.size
            and float(tags.black_level.max()) >= float(tags.white_level.min())):
        raise image.bad(50717, tags.white_level, f"not above BlackLevel {_show(tags.black_level)}")
    for page in (image, main):
        if 51041 in page:
            profile = page.floats(51041)
            if profile is not None and (profile.size % 2 or np.any(profile < 0) or np.any(profile > 1)):
                raise page.bad(51041, profile, "not pairs of numbers in 0..1")
            tags.noise_profile = profile
            break
    tags.default_crop, tags.user_crop = _default_crop(image), _user_crop(image)
    if 51008 in image:  # the raw data's own fixes (bad pixels), before anything else
        tags.bad_pixels = _parsed_opcodes(image, 51008, bad_pixels.PARSERS, tags.skipped_opcodes)
    if 51009 in image:
        opcodes = _parsed_opcodes(image, 51009, {MAP_POLYNOMIAL: _polynomial, **SHADING_PARSERS},
                                  tags.skipped_opcodes)
        tags.polynomial_maps = [op for op in opcodes if isinstance(op, PolynomialMap)]
        tags.gain_maps = [op for op in opcodes if isinstance(op, ShadingMap)]
    if 51022 in image:
        tags.rgb_opcodes = _parsed_opcodes(image, 51022, {**SHADING_PARSERS, **lens_warp.PARSERS},
                                           tags.skipped_opcodes)
    return tags


def _default_crop(tags: _Tags) -> tuple[float, float, float, float] | None:
    """DefaultCropOrigin and DefaultCropSize (the picture's area within the active area, horizontal first in the
    tags) as (top, left, height, width); None when the file has none."""
    origin, size = tags.floats(50719, 2), tags.floats(50720, 2)
    if origin is None and size is None:
        return None
    if size is None or np.any(size <= 0) or np.any(size > LEVEL_MAX):
        raise tags.bad(50720, size, f"not two sizes in 1..{_number_text(LEVEL_MAX)}")
    if origin is None:
        origin = np.zeros(2)
    if np.any(origin < 0) or np.any(origin > LEVEL_MAX):
        raise tags.bad(50719, origin, f"outside 0..{_number_text(LEVEL_MAX)}")
    return float(origin[1]), float(origin[0]), float(size[1]), float(size[0])


def _user_crop(tags: _Tags) -> tuple[float, float, float, float] | None:
    """DefaultUserCrop (DNG 1.4: the crop the camera suggests within the DefaultCrop, such as an aspect ratio chosen
    in the camera) as fractions (top, left, bottom, right); None when absent or the whole DefaultCrop."""
    crop = tags.floats(51125, 4)
    if crop is None:
        return None
    top, left, bottom, right = (float(v) for v in crop)
    if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
        raise tags.bad(51125, crop, "not top < bottom and left < right within 0..1")
    return None if (top, left, bottom, right) == (0, 0, 1, 1) else (top, left, bottom, right)


def _check_blends(tags: _Tags, code: int, matrices: list[np.ndarray]) -> None:
    """The colour stage interpolates the two illuminants' matrices (DNG 1.6 chapter 6) and inverts the result:
    two matrices that are each invertible can still blend into one that is not (the second the negative of the
    first, say)."""
    if len(matrices) < 2:
        return
    for g in np.linspace(0.0, 1.0, 21):
        if np.linalg.cond(g * matrices[0] + (1.0 - g) * matrices[1]) > MATRIX_CONDITION:
            raise tags.bad(code, matrices[1], f"a matrix that blends with {tags.name(code - 1)} into a singular one")


def _white_xy(tags: _Tags) -> np.ndarray | None:
    """AsShotWhiteXY, which the engine keeps but does not use: an impossible chromaticity is dropped."""
    try:
        xy = tags.floats(50729, 2)
    except CorruptInputError:
        return None
    if xy is None or not (0 < xy[0] < 1 and 0 < xy[1] < 1 and xy.sum() <= 1):
        return None
    return xy


def read_linear_raw(path: Path) -> np.ndarray:
    """The pixel data of a LinearRaw DNG's main image, as stored (H x W x samples)."""
    with quiet_tifffile(), tifffile.TiffFile(path) as tif:
        return _raw_page(tif.pages[0]).asarray()
