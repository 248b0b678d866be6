"""The output formats and colour spaces, named once: the command line, the watch daemon and the writer all use
these tables (importing nothing heavy, not even numpy, so a command line builds its choices in no time)."""

from __future__ import annotations

import numbers
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import OutputOptionError
from engine.io.formats import is_raw_name

# Format -> the suffix given to a new output of that format.
FORMAT_SUFFIX: dict[str, str] = {"tiff": ".tif", "png": ".png", "jpeg": ".jpg"}
FORMATS: tuple[str, ...] = tuple(FORMAT_SUFFIX)
# Suffix of an output's name -> its format.
SUFFIX_FORMATS: dict[str, str] = {".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
DEFAULT_BITS: dict[str, int] = {"tiff": 16, "png": 16, "jpeg": 8}
# TIFF compressions: none (the default) or deflate (level 1, horizontal predictor). On the 18 MP render deflate
# saved 27% of 108 MB and took 50 times as long to write (docs/rendering.md, "Speed"); LZW saved less, slower.
TIFF_COMPRESSIONS: tuple[str, ...] = ("none", "deflate")
# The output colour spaces, by the key the options use: the keys of :data:`engine.colour.SPACES`, written out so
# that naming them needs no numpy (tests/test_output.py checks that they agree).
SPACE_NAMES: tuple[str, ...] = ("srgb", "display-p3", "adobe-rgb", "prophoto")
# Other names people type for a format or a colour space (case, hyphens and spaces aside).
FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
SPACE_ALIASES = {"p3": "display-p3", "adobe-rgb-1998": "adobe-rgb", "prophoto-rgb": "prophoto", "romm-rgb": "prophoto"}
# Other programs' edits beside a raw: XMP (Lightroom, darktable, ours), RawTherapee, DxO PhotoLab, ON1
SIDECAR_SUFFIXES = (".xmp", ".pp3", ".dop", ".on1")
MIN_LONG_EDGE = 16  # pixels: a smaller output is a mistake, not a picture
MAX_MODIFIED_TIME = 253_402_300_799  # 9999-12-31 23:59:59 UTC: later overflowed the file system's clock (a traceback)


def canonical_name(value: str, names: Iterable[str], aliases: Mapping[str, str] | None = None) -> str | None:
    """The one of ``names`` that ``value`` is, written as people write it: any case, with or without hyphens,
    spaces or underscores ("sRGB", "AdobeRGB", "Display P3", "JPEG"), or one of ``aliases`` ("jpg"); None for
    none of them."""
    folded = _folded(value)
    matches = [name for name in names if _folded(name) == folded]
    matches += [name for alias, name in (aliases or {}).items() if _folded(alias) == folded]
    return matches[0] if matches else None


def _folded(name: str) -> str:
    return "".join(c for c in name if c not in "-_ ").casefold()


@dataclass(frozen=True)
class OutputOptions:
    """How to write an output image.

    ``format`` is "tiff", "png" or "jpeg" (None: from the file suffix); ``bits`` is 8 or 16 (None: 16 for TIFF
    and PNG, 8 for JPEG); ``quality`` is the JPEG quality (1-100); ``space`` is a key of
    :data:`engine.colour.SPACES`; ``long_edge`` shrinks the image so its longer side has that many pixels
    (never enlarges); ``overwrite`` allows replacing an existing file; ``compression`` is a TIFF's, one of
    :data:`TIFF_COMPRESSIONS` (other formats ignore it); ``modified`` (seconds since the epoch) is the modification
    time the file gets before it takes its name, recorded in its XMP as ``hostplug:written``: a host tells a
    retouch saved over the file by a time that no longer matches (``hostplug open``, the watch daemon).
    """

    format: str | None = None
    bits: int | None = None
    quality: int = 92
    space: str = "srgb"
    long_edge: int | None = None
    overwrite: bool = False
    compression: str = "none"
    modified: int | None = None

    def __post_init__(self) -> None:
        """OutputOptionError (a wrong option, exit 2) for a value no output can have (the command line's choices,
        held for scripts too). Whole numbers may be numpy's; they are held as Python ints."""
        for name in ("bits", "quality", "long_edge", "modified"):
            value = getattr(self, name)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                object.__setattr__(self, name, int(value))
            elif isinstance(value, float) and value.is_integer() and name == "bits":
                object.__setattr__(self, name, int(value))  # 16.0 bits is 16 (as accepted before)
        if self.format is not None:
            fmt = canonical_name(self.format, FORMATS, FORMAT_ALIASES) if isinstance(self.format, str) else None
            if fmt is None:
                raise OutputOptionError(f"unknown output format {self.format!r}; choose tiff, png or jpeg")
            object.__setattr__(self, "format", fmt)  # "JPG" is "jpeg"
        if self.bits is not None and (isinstance(self.bits, bool) or self.bits not in (8, 16)):
            raise OutputOptionError(f"cannot write {self.bits!r} bits per channel; choose 8 or 16")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise OutputOptionError(f"JPEG quality {self.quality!r} is not a whole number from 1 to 100")
        space = canonical_name(self.space, SPACE_NAMES, SPACE_ALIASES) if isinstance(self.space, str) else None
        if space is None:
            raise OutputOptionError(f"unknown colour space {self.space!r}; choose {', '.join(SPACE_NAMES)}")
        object.__setattr__(self, "space", space)  # "sRGB" is "srgb"
        if not isinstance(self.overwrite, bool):  # "false" is true
            raise OutputOptionError(f"overwrite must be True or False, not {self.overwrite!r}")
        if self.long_edge is not None and (isinstance(self.long_edge, bool) or not isinstance(self.long_edge, int)
                                           or self.long_edge < MIN_LONG_EDGE):
            raise OutputOptionError(f"long edge {self.long_edge!r} is not a whole number of pixels of at least "
                                    f"{MIN_LONG_EDGE}")
        if self.modified is not None and (isinstance(self.modified, bool) or not isinstance(self.modified, int)
                                          or not 0 <= self.modified <= MAX_MODIFIED_TIME):
            raise OutputOptionError(f"modification time {self.modified!r} is not an int of seconds since the epoch "
                                    f"from 0 to {MAX_MODIFIED_TIME} (the end of the year 9999)")
        if self.compression not in TIFF_COMPRESSIONS:
            raise OutputOptionError(f"unknown TIFF compression {self.compression!r}; choose "
                                    f"{', '.join(TIFF_COMPRESSIONS)}")


def resolve_format(path: Path, options: OutputOptions) -> tuple[str, int]:
    """The format and bit depth to write ``path`` with; OutputOptionError (a wrong option, exit 2) for a
    combination that cannot be written."""
    named = SUFFIX_FORMATS.get(Path(path).suffix.lower())
    asked = options.format.lower() if options.format else None
    if asked is not None and named is not None and asked != named:  # a .tif of JPEG data opens nowhere, or wrongly
        raise OutputOptionError(f"{Path(path).name} names a {named.upper()} file but the format asked for is "
                                f"{asked.upper()}; name it {Path(path).stem}{FORMAT_SUFFIX.get(asked, '')} or leave "
                                "out --format (in Python: OutputOptions(format=None))")
    # TIFF data under a raw's name replaced a raw, and a PNG under a sidecar's the photographer's edits
    sidecar = Path(path).suffix.lower() in SIDECAR_SUFFIXES
    if asked is not None and named is None and (is_raw_name(path) or sidecar):
        stem = Path(path).stem  # "IMG.jpg" of "IMG.jpg.xmp" is the name wanted, not "IMG.jpg.jpg"
        wanted = stem if SUFFIX_FORMATS.get(Path(stem).suffix.lower()) == asked else stem + FORMAT_SUFFIX.get(asked, "")
        raise OutputOptionError(f"{Path(path).name} is named as a {'sidecar' if sidecar else 'raw'}, not a "
                                f"{asked.upper()} file; name it {wanted}")
    fmt = asked or named
    if fmt is None:
        raise OutputOptionError(
            f"cannot tell the output format from {Path(path).name!r}; name it .tif, .png or .jpg, or give the "
            "format (--format) (in Python: OutputOptions(format='tiff'))"
        )
    bits = options.bits or DEFAULT_BITS[fmt]  # each option alone was checked when the options were made
    if fmt == "jpeg" and bits != 8:
        raise OutputOptionError("JPEG holds only 8 bits per channel; choose TIFF or PNG for 16 bits")
    return fmt, bits


def output_name(source: Path, fmt: str | None, folder: Path | None = None) -> Path:
    """A new output's path for ``source``: its stem with ``fmt``'s suffix (TIFF by default), in ``folder`` or
    beside the source."""
    source = Path(source)
    return (folder if folder is not None else source.parent) / (source.stem + FORMAT_SUFFIX[fmt or "tiff"])


def output_names(sources: list[Path], fmt: str | None, folder: Path | None = None) -> list[Path]:
    """:func:`output_name` for each of a batch's ``sources``, never the same file twice: two that share a stem
    in one folder (a camera's RAW + JPEG pair, IMG_0001.ARW and IMG_0001.JPG) keep apart by their suffix,
    IMG_0001_arw.tif and IMG_0001_jpg.tif, and any name still taken (the same name from two folders into one
    ``--out-dir``) gets a number, IMG_0001_jpg-2.tif, instead of one output replacing another. The numbers go by
    the sources' paths, not the order they were given in, so a source gets the same name from any order."""
    names = [output_name(source, fmt, folder) for source in sources]
    shared = Counter(map(_identity, names))
    names = [name.with_name(f"{name.stem}_{Path(source).suffix.lstrip('.').lower()}{name.suffix}")
             if shared[_identity(name)] > 1 else name for source, name in zip(sources, names, strict=True)]
    taken: set[str] = set()
    unique: list[Path] = list(names)
    # (by the path as given, made absolute: resolving a source would follow a link loop, which its render refuses)
    for i in sorted(range(len(sources)), key=lambda i: os.path.abspath(sources[i])):
        candidate, number = names[i], 2
        while _identity(candidate) in taken:
            candidate, number = names[i].with_name(f"{names[i].stem}-{number}{names[i].suffix}"), number + 1
        taken.add(_identity(candidate))
        unique[i] = candidate
    return unique


def _identity(path: Path) -> str:
    """The file a name means, case folded: two names a case-insensitive disk holds as one count as one."""
    return str(Path(path).resolve()).casefold()


def checked_options(options: OutputOptions | None) -> OutputOptions:
    """``options``, or the defaults for None; OutputOptionError for anything else (a dict from a script)."""
    if options is None:
        return OutputOptions()
    if not isinstance(options, OutputOptions):
        raise OutputOptionError(f"the output options must be an engine.OutputOptions, not {type(options).__name__}")
    return options
