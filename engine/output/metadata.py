"""EXIF and XMP for rendered outputs: what to carry over from a raw file, and the project's XMP namespace.

pyexiv2 (a binding of exiv2) does the reading and writing. A raw file's EXIF describes the raw data as much as
the photograph, so :func:`read_exif` keeps only the tags that still hold for a rendered RGB image.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import pyexiv2
from PIL import Image

from engine.xmp.namespaces import HOSTPLUG_NS as XMP_NS_URI
from engine.xmp.namespaces import HOSTPLUG_PREFIX as XMP_PREFIX

# The EXIF groups that describe the photograph; SubImage*, Thumbnail, MakerNote and vendor groups do not.
_KEPT_GROUPS = ("Image", "Photo", "GPSInfo")

# Tags (by number) that describe the source's image data or point into its file structure.
_STRUCTURE_TAGS = frozenset(
    # NewSubfileType, SubfileType, ImageWidth, ImageLength, BitsPerSample, Compression, PhotometricInterpretation
    (254, 255, 256, 257, 258, 259, 262)
    # StripOffsets, SamplesPerPixel, RowsPerStrip, StripByteCounts, PlanarConfiguration, WhitePoint,
    # PrimaryChromaticities, TileWidth, TileLength, TileOffsets, TileByteCounts
    + (273, 277, 278, 279, 284, 318, 319, 322, 323, 324, 325)
    # SubIFDs, ExtraSamples, SampleFormat, SMinSampleValue, SMaxSampleValue, JPEGInterchangeFormat(Length)
    + (330, 338, 339, 340, 341, 513, 514)
    # YCbCrCoefficients, YCbCrSubSampling, YCbCrPositioning, ReferenceBlackWhite, XMLPacket (XMP travels apart)
    + (529, 530, 531, 532, 700)
    # CFARepeatPatternDim, CFAPattern, Exif IFD, InterColorProfile (the writer embeds its own), GPS IFD,
    # TIFF/EP StandardID, MakerNote, ComponentsConfiguration, CompressedBitsPerPixel
    + (33421, 33422, 34665, 34675, 34853, 37398, 37500, 37121, 37122)
    # ColorSpace, PixelXDimension, PixelYDimension (the writer sets these three), Interoperability IFD,
    # CFAPattern (Exif), Gamma, PrintImageMatching
    + (40961, 40962, 40963, 40965, 41730, 42240, 50341)
)
_DNG_TAGS = range(50706, 52601)  # DNGVersion ... the DNG 1.7 tags: all describe the raw data


@functools.cache
def register_namespace() -> None:
    """Register the hostplug XMP namespace with exiv2 and keep exiv2's warnings off stdout (idempotent)."""
    pyexiv2.set_log_level(3)  # pyexiv2 prints warnings to stdout; errors still raise
    pyexiv2.registerNs(XMP_NS_URI, XMP_PREFIX)


def _is_carried(key: str, number: int, value: str) -> bool:
    """Whether one EXIF entry of a source still describes a rendered output."""
    group = key.split(".")[1]
    return (
        group in _KEPT_GROUPS
        and number not in _STRUCTURE_TAGS
        and number not in _DNG_TAGS
        and not key.rsplit(".", 1)[-1].startswith("0x")  # a tag exiv2 has no name for
        and bool(value.strip())
    )


@functools.cache
def _probe_jpeg() -> bytes:
    """A tiny JPEG to try EXIF writes on."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _writes(exif: dict[str, str]) -> bool:
    """Whether exiv2 accepts these EXIF entries in a JPEG."""
    image = pyexiv2.ImageData(_probe_jpeg())
    try:
        image.modify_exif(exif)
        return True
    except Exception:  # noqa: BLE001 - exiv2 raises RuntimeError or its own error types
        return False
    finally:
        image.close()


def read_exif(path: str | Path) -> dict[str, str]:
    """A source's EXIF that can be carried over to a rendered output; {} when it has none or is unreadable.

    Structure, thumbnail, maker-note and DNG tags are dropped, as are empty values and any entry exiv2 refuses
    to write back.
    """
    register_namespace()
    try:
        with pyexiv2.Image(str(path)) as image:
            detail = image.read_exif_detail()
    except Exception:  # noqa: BLE001 - no EXIF is not an error for rendering
        return {}
    exif = {
        key: entry["value"]
        for key, entry in detail.items()
        if isinstance(entry["value"], str) and _is_carried(key, int(entry["tagNumber"]), entry["value"])
    }
    if _writes(exif):
        return exif
    return {key: value for key, value in exif.items() if _writes({key: value})}
