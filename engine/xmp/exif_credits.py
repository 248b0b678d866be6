"""An output's EXIF credits from its sidecar's: the photographer's creator, rights and caption win over the camera's.

A camera writes its owner's name and copyright into every raw (EXIF Artist, Copyright) and often a caption of its
own ("OLYMPUS DIGITAL CAMERA" in ImageDescription). A sidecar's ``dc:creator``, ``dc:rights`` and
``dc:description`` are carried to the output's XMP (:func:`engine.xmp.hints.credits`); left beside them, the
camera's EXIF named another owner in the same file, and Windows, Pillow and most web tools read the EXIF. So the
sidecar's replace them, as its geotag replaces the camera's GPS (:mod:`engine.xmp.location`).
"""

from __future__ import annotations

from typing import Any

# output XMP key (as credits() gives it) -> the EXIF tag that says the same
_EXIF_OF = {"Xmp.dc.creator": "Exif.Image.Artist", "Xmp.dc.rights": "Exif.Image.Copyright",
            "Xmp.dc.description": "Exif.Image.ImageDescription"}


def with_credits(exif: dict[str, str] | None, xmp: dict[str, Any]) -> dict[str, str] | None:
    """``exif`` with Artist, Copyright and ImageDescription taken from ``xmp``'s creator, rights and description
    where it has them (several creators joined by "; ", as Lightroom writes them into Artist; a language
    alternative's default text); None stays None (no EXIF is written)."""
    if exif is None:
        return None
    credited = dict(exif)
    for key, tag in _EXIF_OF.items():
        text = _text(xmp.get(key))
        if text:
            credited[tag] = text
    return credited


def _text(value: Any) -> str:
    """A list's items joined, a language alternative's first (x-default) text, or the text itself."""
    if isinstance(value, list):
        return "; ".join(str(item) for item in value if str(item).strip())
    if isinstance(value, dict):
        return next((str(text) for text in value.values() if str(text).strip()), "")
    return str(value or "").strip()
