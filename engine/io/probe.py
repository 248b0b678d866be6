"""Whether a file is one hostplug can render, from its header alone: what ``hostplug edit`` checks before it
writes a sidecar, so that an edit of a text file or a damaged download is one clear line, not a sidecar for a
file that never renders. Nothing is decoded (a few milliseconds); a file that passes may still fail to render
if its data is damaged further in, which :func:`engine.io.source.open_source` reports. Also from the header: the
EXIF orientation a render starts from (:func:`exif_orientation`)."""

from __future__ import annotations

from pathlib import Path

from engine.errors import CorruptInputError, InputNotFoundError, UnsupportedInputError
from engine.io.bounded import pinned
from engine.io.formats import RGB_SUFFIXES
from engine.io.limits import quiet_stderr
from engine.xmp.sidecar_files import is_sidecar_name

# LibRaw's "flip" code to the EXIF orientation it stands for.
LIBRAW_FLIP = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


def check_renderable_file(path: Path) -> None:
    """Raise :class:`InputNotFoundError` for a missing or unreadable file, :class:`CorruptInputError` for an empty
    one (as a render does, :func:`engine.io.source.open_source`) and :class:`UnsupportedInputError` for one that
    neither LibRaw nor the image reader recognises."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except IsADirectoryError:
        raise InputNotFoundError(f"{path}: not a file") from None
    except OSError as e:
        raise InputNotFoundError(f"{path}: cannot read ({e.strerror or e})") from e
    if not head:
        raise CorruptInputError(f"{path}: the file is empty")
    if path.suffix.lower() in DNG_SUFFIXES:
        _check_dng(path)
    elif path.suffix.lower() not in RGB_SUFFIXES:
        from engine.io.dng import check_tiff_raw_complete

        with pinned(path, "input", InputNotFoundError) as file:
            check_tiff_raw_complete(path, file)
    if _libraw_reads(path) or (path.suffix.lower() in RGB_SUFFIXES and _image_kind(path) is not None):
        return
    raise unrecognised(path)


DNG_SUFFIXES = (".dng", ".gpr")  # GoPro's GPR is a DNG


def _check_dng(path: Path) -> None:
    """What a render checks of a DNG before LibRaw sees it (:func:`engine.io.dng.read_dng_tags`: data past the end of
    a truncated file, damaged tags), and a compression LibRaw cannot decode (GoPro's VC-5): from the header alone, so
    ``show`` and ``edit`` refuse what ``render`` refuses, with the same line."""
    from engine.io.dng import NEVER_DECODED, read_dng_tags, undecodable

    with pinned(path, "input", InputNotFoundError) as file:
        dng = read_dng_tags(path, file)
    if dng is not None and dng.compression in NEVER_DECODED:
        raise undecodable(path, dng.compression)


# Pillow's name of an image format hostplug reads -> the suffix that makes hostplug read a file as one.
_IMAGE_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "MPO": ".jpg"}


def unrecognised(path: Path, file: Path | None = None) -> UnsupportedInputError:
    """The error for a file LibRaw does not read and that, by its suffix, is no image either: a JPEG, PNG or TIFF
    in a raw's name (a camera's JPEG renamed .ARW) is named for what it is, with the name that renders it.
    ``file`` is what to read (an open file's ``/proc/self/fd/N``), ``path`` what messages name."""
    if is_sidecar_name(path):
        raw = path.stem if Path(path.stem).suffix else f"{path.stem}.*"  # A.NEF.xmp (darktable's), A.xmp (Adobe's)
        return UnsupportedInputError(f"{path}: an XMP sidecar, which is read with its raw; name the raw ({raw}) "
                                     "instead")
    kind = _image_kind(file or path, path)
    if kind in _IMAGE_SUFFIX and path.suffix.lower() not in RGB_SUFFIXES:
        return UnsupportedInputError(f"{path}: a {'JPEG' if kind == 'MPO' else kind} image named like a raw "
                                     f"({path.suffix or 'no suffix'}); hostplug reads an image by its suffix: "
                                     f"rename it {path.stem}{_IMAGE_SUFFIX[kind]} to render it")
    return UnsupportedInputError(f"{path}: not a raw format LibRaw reads, nor a JPEG, PNG or TIFF image")


def _image_kind(file: Path, name: Path | None = None) -> str | None:
    """The image format Pillow finds in ``file`` by its content ("JPEG", "PNG", "TIFF"...), None for none;
    UnsupportedInputError for an image that claims more pixels than a render decodes (engine.io.rgb_input refuses
    it too). ``name`` is what the message calls the file (default ``file``)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a bomb's size, "Corrupt EXIF data": only the kind matters
            with Image.open(file) as image:
                return image.format
    except Image.DecompressionBombError:
        raise UnsupportedInputError(f"{name or file}: the image claims more pixels than hostplug decodes") from None
    except Exception:  # noqa: BLE001 - whatever Pillow raises, the file is no image it reads
        return None


def _libraw_reads(path: Path) -> bool:
    import rawpy

    try:  # pinned: LibRaw opens /proc/self/fd/N, so a name that is no UTF-8 is read too
        with pinned(path, "input", InputNotFoundError) as file, quiet_stderr(), rawpy.imread(str(file)):
            return True
    except (InputNotFoundError, rawpy.LibRawError, OSError, ValueError):
        return False


def exif_orientation(path: Path) -> int:
    """The EXIF orientation (1-8) a render of ``path`` starts from, read from the header as the render reads it:
    LibRaw's for a raw, the image's own for a JPEG, PNG or TIFF. 1 for a file that has none, or that neither reads
    (its render is refused anyway, with the reason)."""
    if path.suffix.lower() in RGB_SUFFIXES:
        from PIL import Image

        from engine.io.rgb_input import orientation_of

        try:
            with pinned(path, "input", InputNotFoundError) as file, Image.open(file) as image:
                return orientation_of(image)
        except Exception:  # noqa: BLE001 - not a regular file, or whatever Pillow raises: no image it reads
            return 1
    import rawpy

    try:
        with pinned(path, "input", InputNotFoundError) as file, quiet_stderr(), rawpy.imread(str(file)) as raw:
            return LIBRAW_FLIP.get(raw.sizes.flip, 1)  # pinned: a FIFO is refused, not waited on
    except (InputNotFoundError, rawpy.LibRawError, OSError, ValueError):
        return 1
