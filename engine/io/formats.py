"""The camera raw formats LibRaw reads: file name suffixes and the MIME types desktop programs use for them.

Kept free of heavy imports, so host integrations (the GIMP plug-in's installer, ``hostplug open``) can use it
cheaply. The GIMP plug-in, which cannot import the engine, carries a copy that a test keeps equal to this one.
"""

from __future__ import annotations

from pathlib import Path

# Suffix (lower case, no dot) -> MIME type (the freedesktop.org shared-mime-info names where one exists).
RAW_FORMATS: dict[str, str] = {
    "3fr": "image/x-hasselblad-3fr",
    "ari": "image/x-arri-ari",
    "arw": "image/x-sony-arw",
    "bay": "image/x-casio-bay",
    "cap": "image/x-phaseone-cap",
    "cr2": "image/x-canon-cr2",
    "cr3": "image/x-canon-cr3",
    "crw": "image/x-canon-crw",
    "dcr": "image/x-kodak-dcr",
    "dcs": "image/x-kodak-dcs",
    "dng": "image/x-adobe-dng",
    "drf": "image/x-kodak-drf",
    "eip": "image/x-phaseone-eip",
    "erf": "image/x-epson-erf",
    "fff": "image/x-hasselblad-fff",
    "gpr": "image/x-gopro-gpr",
    "iiq": "image/x-phaseone-iiq",
    "k25": "image/x-kodak-k25",
    "kdc": "image/x-kodak-kdc",
    "mdc": "image/x-minolta-mdc",
    "mef": "image/x-mamiya-mef",
    "mos": "image/x-leaf-mos",
    "mrw": "image/x-minolta-mrw",
    "nef": "image/x-nikon-nef",
    "nrw": "image/x-nikon-nrw",
    "orf": "image/x-olympus-orf",
    "ori": "image/x-olympus-ori",
    "pef": "image/x-pentax-pef",
    "ptx": "image/x-pentax-ptx",
    "raf": "image/x-fuji-raf",
    "raw": "image/x-panasonic-raw",
    "rw2": "image/x-panasonic-rw2",
    "rwl": "image/x-leica-rwl",
    "rwz": "image/x-rawzor",
    "sr2": "image/x-sony-sr2",
    "srf": "image/x-sony-srf",
    "srw": "image/x-samsung-srw",
    "sti": "image/x-sinar-sti",
    "x3f": "image/x-sigma-x3f",
}

RAW_SUFFIXES = frozenset("." + suffix for suffix in RAW_FORMATS)
RGB_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})  # display-referred images the engine reads
# How a JPEG and a PNG begin and end: a JPEG's start and end-of-image markers, PNG's signature and IEND chunk.
JPEG_START, JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def is_raw_name(path: str | Path) -> bool:
    """Whether the file name has a camera raw suffix (any letter case)."""
    return Path(path).suffix.lower() in RAW_SUFFIXES


TIFF_STARTS = (b"II*\0", b"MM\0*")  # a TIFF's first four bytes, little- and big-endian


def starts_as_tiff(file: Path) -> bool:
    """Whether ``file`` begins with a TIFF header: a picture, or a raw in a TIFF container, even one damaged past
    its first bytes."""
    with open(file, "rb") as f:
        return f.read(4) in TIFF_STARTS


IMAGE_STARTS = {PNG_START[:4]: "png", TIFF_STARTS[0]: "tiff", TIFF_STARTS[1]: "tiff", JPEG_START: "jpeg"}


def image_format_of(head: bytes) -> str | None:
    """"tiff", "png" or "jpeg" for a file that begins with ``head`` (its first bytes), by content whatever its
    name says; None for anything else."""
    return next((name for start, name in IMAGE_STARTS.items() if head.startswith(start)), None)
