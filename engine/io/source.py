"""Opening an input: a camera raw through rawpy/LibRaw (plus the DNG tags it misses), or an sRGB image.

:func:`open_source` reads everything the pipeline needs up front: sensor data and levels, white balance,
colour calibration and where each came from, orientation and shooting information. Nothing is rendered here.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rawpy

from engine.errors import CorruptInputError, InputNotFoundError, UnsupportedInputError
from engine.filehash import file_sha256
from engine.io.bad_pixels import BadPixels, BadPixelsList, repairable
from engine.io.bounded import pinned
from engine.io.dng import DngTags, is_tiff_picture, read_dng_tags, read_linear_raw, undecodable
from engine.io.formats import JPEG_END, JPEG_START, PNG_START, RGB_SUFFIXES, TIFF_STARTS
from engine.io.gain_map import ShadingMap
from engine.io.lens_warp import LensWarp
from engine.io.limits import check_pixels, decode_seconds, quiet_stderr
from engine.io.picture_area import CROP_MIN, camera_crop
from engine.io.probe import LIBRAW_FLIP, unrecognised

# What ``neutral_origin`` says of a file without a usable as-shot white balance (``hostplug info`` prints it).
NO_AS_SHOT = "none in the file; learned estimate"


@dataclass
class CameraInfo:
    """What the camera recorded about the shot."""

    make: str = ""
    model: str = ""
    lens: str = ""
    iso: float = 0.0
    exposure_time: float = 0.0
    f_number: float = 0.0
    focal_length: float = 0.0
    timestamp: _dt.datetime | None = None


@dataclass
class Calibration:
    """Colour calibration of the sensor, as the DNG specification describes it.

    ``color_matrices`` map XYZ to camera RGB, one per calibration illuminant (``illuminants`` gives their
    EXIF LightSource codes); ``forward_matrices`` map white-balanced camera RGB to D50 XYZ.
    """

    color_matrices: list[np.ndarray]
    illuminants: list[int]
    forward_matrices: list[np.ndarray] = field(default_factory=list)
    camera_calibrations: list[np.ndarray] = field(default_factory=list)
    analog_balance: np.ndarray = field(default_factory=lambda: np.ones(3))
    origin: str = ""


@dataclass
class Source:
    """An opened input, ready for the pipeline.

    For a raw, ``sensor`` holds the visible sensor data as stored (unsigned integers, uint16 for most cameras and
    uint8 for some LinearRaw DNGs; H x W for a mosaic or H x W x 3 for LinearRaw) and ``black``/``white`` its
    levels per colour channel; for an sRGB image it holds encoded float32 RGB in [0, 1] and ``kind`` is ``"rgb"``.
    A render checks a Source made in code against this (:func:`check_sensor`). Its arrays are not to be
    changed in place once it has been rendered: a :class:`engine.StageCache` knows them by identity; change a copy
    (``dataclasses.replace(source, sensor=changed)``).
    """

    path: Path
    kind: str  # "raw" or "rgb"
    sensor: np.ndarray
    black: np.ndarray  # per channel R, G, B (G averaged over G1/G2 is not done: see ``cfa``)
    white: np.ndarray
    cfa: np.ndarray | None  # Bayer: 2x2 channel indices (0=R, 1=G, 2=B); None: not a Bayer mosaic
    as_shot_neutral: np.ndarray  # camera response to the shot's white, green = 1
    neutral_origin: str
    calibration: Calibration | None
    orientation: int = 1
    baseline_exposure: float = 0.0
    noise_profile: np.ndarray | None = None
    camera: CameraInfo = field(default_factory=CameraInfo)
    format: str = ""
    polynomial_maps: list = field(default_factory=list)
    # DNG opcodes LibRaw ignores: bad pixels (:mod:`engine.io.bad_pixels`, in the coordinates of ``sensor``),
    # lens-shading maps (:mod:`engine.io.gain_map`) on the raw data, and
    # OpcodeList3's shading maps and lens warps (:mod:`engine.io.lens_warp`), in order, after demosaicing
    bad_pixels: list = field(default_factory=list)
    gain_maps: list = field(default_factory=list)
    rgb_opcodes: list = field(default_factory=list)
    # the DNG opcodes hostplug does not apply, as "Name (OpcodeListN)", named by ``hostplug info`` and the notes
    skipped_opcodes: list[str] = field(default_factory=list)
    # The picture's area within ``sensor`` (DNG DefaultCrop: top, left, height, width); None: all of it
    crop: tuple[int, int, int, int] | None = None
    # The same for a raw that is no DNG, as LibRaw reads it from the maker's tags (:func:`camera_crop`)
    camera_crop: tuple[int, int, int, int] | None = None
    needs_libraw_demosaic: bool = False  # X-Trans and 4-colour sensors
    exif: dict[str, str] = field(default_factory=dict)  # carried over to outputs
    # True when the file holds no usable as-shot white balance: ``as_shot_neutral`` is then only LibRaw's daylight
    # balance (good enough to pre-scale colour planes for demosaicing); the white balance stage and ``info`` use
    # the learned estimate instead (:func:`engine.models.illuminant.source_neutral`).
    as_shot_missing: bool = False
    # SHA-256 of the file's bytes as they were opened: what an output records as its source (a file changed or
    # deleted after opening is not what was rendered); "" for a Source made in code
    sha256: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """Visible (height, width) before orientation is applied."""
        return self.sensor.shape[0], self.sensor.shape[1]

    @property
    def rgb_gain_maps(self) -> list[ShadingMap]:
        """The lens-shading maps (GainMap, FixVignetteRadial) among OpcodeList3's opcodes."""
        return [op for op in self.rgb_opcodes if isinstance(op, ShadingMap)]

    @property
    def lens_warps(self) -> list[LensWarp]:
        """The lens warps (WarpRectilinear, WarpRectilinear2, WarpFisheye) among OpcodeList3's opcodes."""
        return [op for op in self.rgb_opcodes if isinstance(op, LensWarp)]


def _bad_pixels(dng: DngTags | None, raw: rawpy.RawPy, sensor: np.ndarray) -> tuple[list[BadPixels], list[str]]:
    """OpcodeList1's bad pixels that the demosaic stage repairs on a Bayer ``sensor``, in its coordinates (LibRaw's
    margins are the DNG's ActiveArea); and, named for the notes, those left as they are because they mark more of
    the sensor than bad pixels do (:func:`engine.io.bad_pixels.repairable`)."""
    if dng is None:
        return [], []
    top, left = int(raw.sizes.top_margin), int(raw.sizes.left_margin)
    fixes = [fix.shifted(top, left) if isinstance(fix, BadPixelsList) else fix for fix in dng.bad_pixels]
    kept, unrepaired = repairable(sensor, fixes)
    return kept, [f"{fix.name} (OpcodeList1; marks {share:.1%} of the sensor: left as it is)"
                  for fix, share in unrepaired]


def _skipped_opcodes(dng: DngTags | None, mosaic: bool, bayer: bool, unrepaired: list[str]) -> list[str]:
    """The DNG opcodes left unapplied (:func:`_collapsed`): those no reader here knows, MapPolynomial on a mosaic
    (applied to LinearRaw only), bad pixels on a sensor that is no Bayer mosaic (the repair reads a 2 x 2
    pattern) and ``unrepaired``, the bad pixels of a Bayer mosaic that are left."""
    if dng is None:
        return []
    mosaic_maps = ["MapPolynomial (OpcodeList2)"] * len(dng.polynomial_maps)
    fixes = [f"{fix.name} (OpcodeList1)" for fix in dng.bad_pixels]
    return _collapsed(dng.skipped_opcodes + (unrepaired if bayer else fixes) + (mosaic_maps if mosaic else []))


SKIPPED_MAX = 16  # entries in skipped_opcodes: the notes go into each output's XMP, which exiv2 keeps within 64 KB


def _collapsed(entries: list[str]) -> list[str]:
    """``entries`` ("Name (OpcodeListN)") with repeats counted once ("Name xN (OpcodeListN)"), in the order of
    their first, and at most :data:`SKIPPED_MAX` of them: the rest counted in the last."""
    counts = Counter(entries)
    named = [entry if n == 1 else entry.replace(" (", f" x{n} (", 1) for entry, n in counts.items()]
    if len(named) <= SKIPPED_MAX:
        return named
    rest = list(counts.values())[SKIPPED_MAX - 1 :]
    return named[: SKIPPED_MAX - 1] + [f"{sum(rest)} more opcodes of {len(rest)} other kinds"]


# smaller than any raw's headers: LibRaw's I/O error on such a file, unless it begins as a raw does (a TIFF, an
# ORF, RW2, RAF, CRW, CR3, X3F: a cut-short one is damaged), means it is no raw at all
SMALLEST_RAW_BYTES = 4096
RAW_MAGIC = (*TIFF_STARTS, b"IIRO", b"IIRS", b"IIU\0", b"FUJIFILM", b"II\x1a\0\0\0HEAPCCDR", b"FOVb")


def open_source(path: str | Path, *, follow_links: bool = True) -> Source:
    """Open a camera raw or an sRGB image. Raises one of the :mod:`engine.errors` exceptions.

    The file is opened once (:func:`engine.io.bounded.pinned`), and every library reads that open file: a file
    replaced, or a link put, at ``path`` while it is being read is never read instead. A FIFO, a device or a
    folder is refused. ``follow_links=False`` also refuses a symbolic link at ``path`` itself (for a caller that
    checked where the file lies, such as the watch daemon).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputNotFoundError(f"the input must be a path (str or pathlib.Path), not {type(path).__name__}")
    if not os.fspath(path):  # Path("") would be ".", the current folder
        raise InputNotFoundError("the input's path is empty; give the path of a raw or an image")
    if "\0" in os.fsdecode(path):
        raise InputNotFoundError(f"{os.fsdecode(path)!r}: a path cannot hold a NUL character")
    path = Path(path)
    with pinned(path, "input", InputNotFoundError, follow=follow_links, missing=InputNotFoundError) as file:
        source = _open_pinned(path, file)
    source.path = path.absolute()  # recorded by outputs wherever the process goes next (".." left for the kernel)
    return source


def check_source_argument(source: object) -> None:
    """InputNotFoundError for what a script passes as a source that is neither a path nor an opened Source."""
    if not isinstance(source, (Source, str, os.PathLike)):
        raise InputNotFoundError(f"the source must be a path or what engine.open returns, not {type(source).__name__}")


def check_sensor(source: Source) -> None:
    """CorruptInputError for a Source (one made in code) whose sensor array is not of a kind the stages read: a
    tester's uint8 RGB, NaN pixels and empty arrays failed deep inside the stages with numpy's own errors."""
    problem = _sensor_problem(source)
    if problem:
        raise CorruptInputError(f"{source.path}: the Source's sensor {problem}")


def _sensor_problem(source: Source) -> str:
    """What is wrong with a Source's ``sensor`` for its ``kind`` (see :class:`Source`), or ""."""
    sensor = source.sensor
    if source.kind not in ("raw", "rgb"):
        return f"belongs to a Source of kind {source.kind!r}; a Source's kind is 'raw' or 'rgb'"
    if not isinstance(sensor, np.ndarray):
        return f"must be a numpy array, not {type(sensor).__name__}"
    shapes = ("H x W (a mosaic)" if source.cfa is not None else "H x W (a mosaic) or H x W x 3" if source.kind == "raw"
              else "H x W x 3")
    planes = sensor.ndim == 3 and sensor.shape[2] == 3
    mosaic = sensor.ndim == 2 and source.kind == "raw"
    if not (mosaic or planes and source.cfa is None) or 0 in sensor.shape:
        return f"has shape {sensor.shape}; it must be {shapes}"
    # a raw as stored: integers, or the floats of a floating-point LinearRaw DNG (Lightroom's HDR merges)
    wanted = ("uint8", "uint16", "float16", "float32") if source.kind == "raw" else ("float32",)
    if sensor.dtype.name not in wanted:
        return f"is {sensor.dtype}; a {source.kind} Source's sensor is {' or '.join(wanted)}"
    if sensor.dtype.kind == "f" and not (np.isfinite(sensor.min()) and np.isfinite(sensor.max())):
        return "holds values that are not numbers (NaN) or infinite"
    return ""


def _only_an_image(head: bytes, file: Path) -> bool:
    """Whether the file is a PNG, or a JPEG that ends where its picture ends (zero padding allowed): no raw data
    can follow. A Raspberry Pi camera's ``raspistill --raw`` file is a JPEG with the Bayer data after it."""
    if head.startswith(PNG_START):
        return True
    if not head.startswith(JPEG_START):
        return False
    with file.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
        return f.read().rstrip(b"\0").endswith(JPEG_END)


def _open_pinned(path: Path, file: Path) -> Source:
    """:func:`open_source` on the open file ``file``; messages name ``path``."""
    try:
        with file.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise InputNotFoundError(f"{path}: cannot read ({e.strerror})") from e
    if not head:
        raise CorruptInputError(f"{path}: the file is empty")
    if _only_an_image(head, file):
        # LibRaw takes a JPEG whose EXIF names a Nikon, Panasonic, Minolta or Kodak camera for a raw of that
        # camera: it then fails to decode, or decodes the compressed bytes as pixels
        if path.suffix.lower() in RGB_SUFFIXES:
            return _open_rgb_or_refuse(path, None, file)
        raise unrecognised(path, file)  # "a JPEG image named like a raw": what to rename it
    dng = read_dng_tags(path, file)  # checks a DNG's tags and structure before LibRaw parses them itself
    if dng is None and path.suffix.lower() in (".tif", ".tiff") and is_tiff_picture(file):
        return _open_rgb_or_refuse(path, None, file)
    try:
        with quiet_stderr():
            raw = rawpy.imread(str(file))
    except rawpy.LibRawFileUnsupportedError:
        return _open_rgb_or_refuse(path, dng, file)
    except (rawpy.LibRawIOError, rawpy.LibRawDataError, rawpy.LibRawError) as e:
        if dng is None and path.suffix.lower() in RGB_SUFFIXES:  # LibRaw's I/O error for a file it cannot place
            return _open_rgb_or_refuse(path, dng, file)
        if dng is None and isinstance(e, rawpy.LibRawIOError) and file.stat().st_size < SMALLEST_RAW_BYTES \
                and not head.startswith(RAW_MAGIC) and head[4:8] != b"ftyp":  # (CR3 is an ISO box file)
            raise unrecognised(path, file) from e  # a few bytes of text: LibRaw read past its end, no raw at all
        raise CorruptInputError(f"{path}: the raw data cannot be read ({_libraw_message(e)}); the file may "
                                "be truncated or damaged") from e
    try:
        with quiet_stderr():  # LibRaw decodes lazily, on first access to the data
            return _open_raw(path, raw, dng, file)
    finally:
        if raw not in _STILL_DECODING:
            raw.close()


_T = TypeVar("_T")

# LibRaw objects whose decoding ran past the time limit: still in use by their thread, so never closed.
_STILL_DECODING: list[rawpy.RawPy] = []


def _unpack(path: Path, raw: rawpy.RawPy, meanwhile: Callable[[], _T]) -> _T:
    """LibRaw's decoding of the raw data, under a time limit of its own (:func:`engine.io.limits.decode_seconds`);
    ``meanwhile`` runs in this thread during the decode (LibRaw releases the GIL while it decodes, so the two
    share the time on two cores) and its result is returned.

    The header checks of :mod:`engine.io.dng` refuse what is known to make LibRaw loop; this is the last resort
    for what they miss. LibRaw cannot be interrupted, so a decode past the limit is left running in its thread
    and the file is refused.
    """
    outcome: list[BaseException] = []

    def work() -> None:
        try:
            raw.unpack()
        except BaseException as e:  # noqa: BLE001 - handed over to the waiting thread
            outcome.append(e)

    thread = threading.Thread(target=work, name=f"libraw-decode {path.name}", daemon=True)
    deadline = time.monotonic() + decode_seconds()
    thread.start()
    try:
        result = meanwhile()
    finally:
        thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        _STILL_DECODING.append(raw)
        raise CorruptInputError(f"{path}: decoding the raw data took more than {decode_seconds():g} s; the file is "
                                "probably damaged (set HOSTPLUG_DECODE_SECONDS to allow longer)")
    if outcome:
        raise outcome[0]
    return result


def _libraw_message(e: Exception) -> str:
    text = e.args[0] if e.args else str(e)
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)


def _raw_format(path: Path, dng: DngTags | None) -> str:
    """The raw's format: DNG by its tags whatever its name (a DNG renamed .CR2), else its suffix (LibRaw does not
    say which maker's format it read), but never DNG or TIFF for a raw without DNG tags (an ARW renamed .dng)."""
    suffix = path.suffix.lstrip(".").upper()
    if dng is not None:
        return suffix if suffix == "GPR" else "DNG"
    return "RAW" if suffix in ("DNG", "TIF", "TIFF") else suffix


def _open_raw(path: Path, raw: rawpy.RawPy, dng: DngTags | None, file: Path) -> Source:
    from engine.output.metadata import read_exif

    sizes = raw.sizes
    check_pixels(path, int(sizes.raw_width), int(sizes.raw_height), "raw image")
    try:
        # the EXIF is read and the file hashed while LibRaw decodes (both release the GIL for their reads)
        exif, sha256 = _unpack(path, raw, meanwhile=lambda: (read_exif(file), file_sha256(file)))
        if raw.raw_type == rawpy.RawType.Stack:
            sensor = _linear_raw_data(file, raw, dng)
        else:
            sensor = raw.raw_image_visible.copy()
    except rawpy.LibRawFileUnsupportedError as e:
        raise _unsupported(path, dng) from e
    except (rawpy.LibRawError, ValueError, OSError) as e:
        raise CorruptInputError(f"{path}: the raw data cannot be decoded ({_libraw_message(e)}); the file "
                                "may be truncated or damaged") from e
    cfa = _bayer_pattern(raw)
    if sensor.ndim == 2 and cfa is None and raw.num_colors not in (3, 4):
        # LibRaw's own demosaic (the fallback for non-Bayer mosaics) gives one channel for these
        raise UnsupportedInputError(f"{path}: unsupported raw: LibRaw sees a sensor of {raw.num_colors} colour(s) "
                                    f"({_libraw_message(ValueError(raw.color_desc))}); hostplug renders 3- and "
                                    "4-colour sensors")
    black, white = _levels(raw, dng, stacked=sensor.ndim == 3)
    if not (np.all(np.isfinite(black)) and np.all(np.isfinite(white)) and np.all(black >= 0)
            and np.all(white > black)):
        raise CorruptInputError(f"{path}: the black level ({_levels_text(black)}) and white level "
                                f"({_levels_text(white)}) leave no range for the data; the file is damaged")
    neutral, neutral_origin, missing = _as_shot_neutral(raw, dng)
    bad_pixels, unrepaired = _bad_pixels(dng, raw, sensor) if cfa is not None else ([], [])
    other = _shooting_info(raw)
    lens = raw.lens
    source = Source(
        path=path,
        kind="raw",
        sensor=sensor,
        black=black,
        white=white,
        cfa=cfa,
        as_shot_neutral=neutral,
        neutral_origin=neutral_origin,
        calibration=_calibration(raw, dng),
        orientation=dng.orientation if dng and dng.orientation else LIBRAW_FLIP.get(raw.sizes.flip, 1),
        baseline_exposure=dng.baseline_exposure if dng else 0.0,
        noise_profile=dng.noise_profile if dng else None,
        camera=CameraInfo(
            lens=lens.model.strip(),
            iso=_finite(other.iso_speed),
            exposure_time=_stated(exif, "Exif.Photo.ExposureTime", other.shutter_speed),
            f_number=_stated(exif, "Exif.Photo.FNumber", other.aperture),
            focal_length=_finite(other.focal_length),
            timestamp=other.timestamp if other.timestamp is not None and other.timestamp.year > 1970 else None,
        ),
        format=_raw_format(path, dng),
        polynomial_maps=dng.polynomial_maps if dng and sensor.ndim == 3 else [],
        gain_maps=dng.gain_maps if dng else [],
        rgb_opcodes=dng.rgb_opcodes if dng else [],
        bad_pixels=bad_pixels,
        skipped_opcodes=_skipped_opcodes(dng, mosaic=sensor.ndim == 2, bayer=cfa is not None, unrepaired=unrepaired),
        crop=picture_crop(path, dng, sensor.shape[:2]),
        camera_crop=camera_crop(sizes, sensor.shape[:2]) if dng is None else None,
        needs_libraw_demosaic=sensor.ndim == 2 and cfa is None,
        as_shot_missing=missing,
        sha256=sha256,
    )
    _fill_from_exif(source, exif)
    _check_plausible(source)
    return source


def picture_crop(path: Path, dng: DngTags | None, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The picture's area (top, left, height, width) within a sensor of ``size``: the DNG's DefaultCrop, narrowed
    by its DefaultUserCrop, in whole pixels and kept within the image (writers round it differently); None when
    it keeps the whole image or the file has none. Raises CorruptInputError for a crop of almost nothing."""
    if dng is None or (dng.default_crop is None and dng.user_crop is None):
        return None
    top, left, height, width = dng.default_crop or (0.0, 0.0, float(size[0]), float(size[1]))
    if dng.user_crop is not None:
        u_top, u_left, u_bottom, u_right = dng.user_crop
        top, left, height, width = (top + u_top * height, left + u_left * width, (u_bottom - u_top) * height,
                                    (u_right - u_left) * width)
    top, left, height, width = (int(round(v)) for v in (top, left, height, width))
    top, left = min(top, size[0]), min(left, size[1])
    height, width = min(height, size[0] - top), min(width, size[1] - left)
    if min(height, width) < CROP_MIN:
        raise CorruptInputError(f"{path}: damaged DNG: its DefaultCrop keeps {max(width, 0)} x {max(height, 0)} "
                                f"of the {size[1]} x {size[0]} pixels; the file was damaged or written by a faulty "
                                "tool")
    return None if (height, width) == size else (top, left, height, width)


class _NoShootingInfo:
    iso_speed = shutter_speed = aperture = focal_length = 0.0
    timestamp: _dt.datetime | None = None


def _shooting_info(raw: rawpy.RawPy) -> Any:
    """LibRaw's shooting information; none when rawpy cannot convert it (a date in the year 99999 raises)."""
    try:
        return raw.other
    except (ValueError, OverflowError, OSError):
        return _NoShootingInfo()


def _stated(exif: dict[str, str], key: str, libraw: float) -> float:
    """A shooting value as the file's EXIF states it, LibRaw's where the EXIF has none. An EXIF value of 0/N
    means unknown, which LibRaw reads through its APEX fields as 1 (a file of 0/1000000 s at f/0 showed "1 s,
    f/1")."""
    text = exif.get(key, "").strip()
    numerator, _, denominator = text.partition("/")
    try:
        value = float(numerator) / float(denominator or 1)
    except (ValueError, ZeroDivisionError):
        return _finite(libraw)
    return _finite(value)


def _finite(value: float) -> float:
    """A shooting value LibRaw read from the file; 0 (unknown) when it is not a finite, non-negative number."""
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else 0.0


def _linear_raw_data(file: Path, raw: rawpy.RawPy, dng: DngTags | None) -> np.ndarray:
    """LinearRaw pixels: read by tifffile where possible, since LibRaw pre-subtracts black on some files."""
    if dng is not None:
        try:
            data = read_linear_raw(file)
            if data.ndim == 3 and data.shape[2] >= 3:
                return data[..., :3]
        except Exception:  # noqa: BLE001 - any codec failure falls back to LibRaw's own decoding
            pass
    return raw.raw_image_visible[..., :3].copy()


def _bayer_pattern(raw: rawpy.RawPy) -> np.ndarray | None:
    """The 2x2 Bayer pattern as channel indices R=0, G=1, B=2, or None for X-Trans, 4-colour or LinearRaw."""
    pattern = raw.raw_pattern
    if pattern is None or pattern.shape != (2, 2) or raw.num_colors != 3:
        return None
    desc = raw.color_desc.decode()
    channels = np.array([[ "RGB".index(desc[i]) for i in row] for row in pattern])
    if sorted(channels.ravel().tolist()) != [0, 1, 1, 2]:
        return None
    return channels


def _levels(raw: rawpy.RawPy, dng: DngTags | None, stacked: bool) -> tuple[np.ndarray, np.ndarray]:
    """Black and white level per R, G, B. DNG tags win over LibRaw, whose white level is wrong on some DNGs."""
    libraw_black = np.array(raw.black_level_per_channel, dtype=np.float64)
    if stacked:
        black = libraw_black[:3]
    else:
        # LibRaw indexes blacks by colour (R, G, B, G2); average the two greens.
        black = np.array([libraw_black[0], (libraw_black[1] + libraw_black[3]) / 2 if raw.num_colors == 3
                          and libraw_black[3] else libraw_black[1], libraw_black[2]])
    white = np.full(3, float(raw.white_level))
    if dng is not None:
        if dng.black_level is not None and dng.black_level.size:
            b = dng.black_level
            black = np.full(3, float(b.mean())) if b.size not in (3,) else b.astype(np.float64)
        if dng.white_level is not None and dng.white_level.size:
            w = dng.white_level
            white = np.full(3, float(w[0])) if w.size < 3 else w[:3].astype(np.float64)
    return black, white


def _levels_text(levels: np.ndarray) -> str:
    return "/".join(f"{v:g}" for v in levels)


def _as_shot_neutral(raw: rawpy.RawPy, dng: DngTags | None) -> tuple[np.ndarray, str, bool]:
    """Camera response to the as-shot white, normalised to green = 1; where it came from; whether it is missing.

    LibRaw reports a missing as-shot white balance as -1 or zeros (early Canon CRW, a DNG without AsShotNeutral:
    LibRaw has no AsShotWhiteXY support either, so such a DNG counts as missing too). The neutral returned then
    is LibRaw's daylight balance (or ones), a placeholder the demosaic pre-scaling may use; the render balances
    with the learned estimate.
    """
    if dng is not None and dng.as_shot_neutral is not None and np.all(dng.as_shot_neutral > 0):
        n = dng.as_shot_neutral
        return n / n[1], "DNG AsShotNeutral", False
    wb = np.array(raw.camera_whitebalance[:3], dtype=np.float64)
    if _usable_multipliers(wb):
        neutral = 1.0 / wb
        return neutral / neutral[1], "camera white balance (LibRaw)", False
    wb = np.array(raw.daylight_whitebalance[:3], dtype=np.float64)
    if _usable_multipliers(wb):
        neutral = 1.0 / wb
        return neutral / neutral[1], NO_AS_SHOT, True
    return np.ones(3), NO_AS_SHOT, True


def _usable_multipliers(wb: np.ndarray) -> bool:
    """Whether LibRaw's white balance multipliers (read from the file) can balance: finite, positive and within a
    factor of 1000 of green (else they are treated as missing)."""
    if not (np.all(np.isfinite(wb)) and np.all(wb > 0)):
        return False
    ratio = wb / wb[1]
    return bool(np.all((ratio >= 1e-3) & (ratio <= 1e3)))


def _calibration(raw: rawpy.RawPy, dng: DngTags | None) -> Calibration | None:
    if dng is not None and dng.color_matrix:
        return Calibration(
            color_matrices=dng.color_matrix,
            illuminants=dng.illuminants,
            forward_matrices=dng.forward_matrix,
            camera_calibrations=dng.camera_calibration,
            analog_balance=dng.analog_balance if dng.analog_balance is not None else np.ones(3),
            origin="DNG tags (ColorMatrix" + ("/ForwardMatrix" if dng.forward_matrix else "") + ")",
        )
    matrix = np.array(raw.rgb_xyz_matrix[:3], dtype=np.float64)
    if np.any(matrix) and np.all(np.isfinite(matrix)) and np.linalg.cond(matrix) < 1e8:
        # LibRaw's table (from Adobe's DNG converter) is a D65 ColorMatrix2.
        return Calibration(color_matrices=[matrix], illuminants=[21], origin="LibRaw camera table (D65)")
    return None


def _fill_from_exif(source: Source, exif: dict[str, str]) -> None:
    """The source's EXIF (:func:`engine.output.metadata.read_exif`); make and model from it (rawpy does not expose
    them), and the ISO where LibRaw found none (it reads a DNG's ISOSpeedRatings from the EXIF IFD, not from IFD0,
    where TIFF/EP puts it and the project's own DNG writer does)."""
    source.exif = exif
    source.camera.make = exif.get("Exif.Image.Make", "").strip()
    model = exif.get("Exif.Image.Model", "").strip()
    # Canon and others repeat the make in the model ("Canon" + "Canon EOS 550D"; not "HTC" + "HTC_TyTN_II")
    make = source.camera.make
    source.camera.model = model[len(make):].strip() if make and model.startswith(make + " ") else model
    if not source.camera.lens:
        source.camera.lens = exif.get("Exif.Photo.LensModel", "").strip()
    if not source.camera.iso:
        source.camera.iso = _exif_iso(exif)
    # an image without LibRaw's reading (a rendered JPEG or TIFF) has only its EXIF for the rest
    camera = source.camera
    camera.exposure_time = camera.exposure_time or _stated(exif, "Exif.Photo.ExposureTime", 0.0)
    camera.f_number = camera.f_number or _stated(exif, "Exif.Photo.FNumber", 0.0)
    # older cameras state them only as APEX values: time 2**-Tv seconds, f-number sqrt(2)**Av (where the file
    # states a time or f-number, even 0, unknown, the APEX values say no more)
    if "Exif.Photo.ExposureTime" not in exif:
        camera.exposure_time = camera.exposure_time or _apex(exif, "Exif.Photo.ShutterSpeedValue", lambda tv: 2.0**-tv)
    if "Exif.Photo.FNumber" not in exif:
        camera.f_number = camera.f_number or _apex(exif, "Exif.Photo.ApertureValue", lambda av: round(2 ** (av / 2), 1))
    camera.focal_length = camera.focal_length or _stated(exif, "Exif.Photo.FocalLength", 0.0)
    camera.timestamp = camera.timestamp or _exif_time(exif)


def _apex(exif: dict[str, str], key: str, value: Callable[[float], float]) -> float:
    """A shooting value from its APEX EXIF entry (a SRATIONAL or RATIONAL); 0 (unknown) when there is none."""
    numerator, _, denominator = exif.get(key, "").strip().partition("/")
    try:
        apex = float(numerator) / float(denominator or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0
    if not math.isfinite(apex) or abs(apex) > 64:  # a broken entry, not 2**64 seconds
        return 0.0
    return value(apex)


def datetime_is_capture(exif: dict[str, str]) -> bool:
    """Whether a file's DateTime (when it was changed) tells when the picture was taken: where DateTimeOriginal
    is missing, or states the same moment (a camera's file, whose OffsetTime is then the capture's zone); never
    in hostplug's own outputs, whose DateTime is when they were rendered."""
    if re.match(r"hostplug \d", exif.get("Exif.Image.Software", "")) or "Exif.Image.DateTime" not in exif:
        return False
    original = exif.get("Exif.Photo.DateTimeOriginal")
    return original is None or original.strip() == exif["Exif.Image.DateTime"].strip()


def _exif_time(exif: dict[str, str]) -> _dt.datetime | None:
    """When the picture was taken, as its EXIF states it (``YYYY:MM:DD HH:MM:SS``); None when it does not
    (DateTime stands in as :func:`datetime_is_capture` says)."""
    for key in ("Exif.Photo.DateTimeOriginal", *(("Exif.Image.DateTime",) if datetime_is_capture(exif) else ())):
        try:
            taken = _dt.datetime.strptime(exif.get(key, "").strip(), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            continue
        if taken.year > 1970:
            return taken
    return None


def _exif_iso(exif: dict[str, str]) -> float:
    """The ISO in the EXIF (its first value where there are several); 0 (unknown) when none is usable."""
    for key in ("Exif.Photo.ISOSpeedRatings", "Exif.Image.ISOSpeedRatings"):
        words = exif.get(key, "").split()
        if words and words[0].isdigit() and 0 < int(words[0]) <= 10_000_000:
            return float(words[0])
    return 0.0


def _check_plausible(source: Source) -> None:
    """Refuse data that decoded but cannot be an image (LibRaw fills truncated files with zeros)."""
    if source.sensor.size == 0:
        raise CorruptInputError(f"{source.path}: the raw holds no pixels")
    if not np.any(source.sensor):  # a real exposure, even a lens-cap frame, holds black level and read noise
        raise CorruptInputError(f"{source.path}: the raw holds no picture data (every value is 0); the file is "
                                "probably truncated or damaged")
    rows = source.sensor[-max(1, source.sensor.shape[0] // 8) :]
    if not np.any(rows):
        raise CorruptInputError(f"{source.path}: the raw data ends early (the last rows are empty); the file is "
                                "probably truncated")
    # LibRaw repeats the last row it could decode of some compressed raws (Sony ARW) down to the bottom.
    if rows.shape[0] >= 16 and np.ptp(rows[-1]) > 0 and np.array_equal(rows, np.broadcast_to(rows[-1], rows.shape)):
        raise CorruptInputError(f"{source.path}: the raw data ends early (the last rows repeat one row); the file "
                                "is probably truncated")


_DECODABLE = {1, 7, 8}  # uncompressed, lossless JPEG, deflate: a DNG that uses one and fails is damaged


def _lossy_dng_decoded() -> bool:
    """Whether this LibRaw decodes lossy-JPEG DNGs (rawpy's wheels do): one that fails is then damaged (a fuzzer's
    Nikon D500 DNG with a wrong ImageLength was told to be converted, though its undamaged self renders)."""
    import rawpy

    flags = getattr(rawpy, "flags", None) or {}
    return bool(flags.get("DNGLOSSYCODEC"))


def _unsupported(path: Path, dng: DngTags | None) -> UnsupportedInputError | CorruptInputError:
    """The error for a raw LibRaw recognises but cannot decode."""
    if dng is not None and (dng.compression in _DECODABLE or (dng.compression == 34892 and _lossy_dng_decoded())):
        return CorruptInputError(f"{path}: the file is truncated or damaged: LibRaw cannot decode its raw data "
                                 f"(compression code {dng.compression}, which it reads in undamaged files)")
    if dng is not None:
        return undecodable(path, dng.compression)
    return UnsupportedInputError(f"{path}: unsupported raw: LibRaw cannot decode this file's format")


def _image_format_name(file: Path, path: Path) -> str:
    """"JPEG", "PNG" or "TIFF" by the file's content (a PNG named .jpg is read as a PNG, and said to be one); the
    suffix where the content names none."""
    from engine.io.formats import image_format_of

    with open(file, "rb") as f:
        found = image_format_of(f.read(4))
    return found.upper() if found else path.suffix.lstrip(".").upper()


def _open_rgb_or_refuse(path: Path, dng: DngTags | None, file: Path) -> Source:
    """An sRGB image (JPEG, PNG, TIFF), or a clear refusal for a raw LibRaw cannot decode."""
    if dng is not None:
        raise _unsupported(path, dng)
    if path.suffix.lower() not in RGB_SUFFIXES:
        raise unrecognised(path, file)
    from engine.io.rgb_input import read_rgb_image

    pixels, orientation = read_rgb_image(path, file)
    source = Source(
        path=path,
        kind="rgb",
        sensor=pixels,
        black=np.zeros(3),
        white=np.ones(3),
        cfa=None,
        as_shot_neutral=np.ones(3),
        neutral_origin="sRGB image (already white balanced)",
        calibration=None,
        orientation=orientation,
        format=_image_format_name(file, path),
        sha256=file_sha256(file),
    )
    from engine.output.metadata import read_exif

    _fill_from_exif(source, read_exif(file))
    return source
