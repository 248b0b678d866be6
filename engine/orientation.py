"""Which way up a picture is shown: the EXIF orientations (1-8), and where the one a render applies came from.

A raw's EXIF says how the camera was held. A photographer who rotates the photo in Lightroom, Camera Raw or
darktable records that later decision in the raw's XMP sidecar (read by :func:`engine.xmp.hints.orientation`),
and the sidecar's wins: it is the photographer's word, the EXIF only the camera's. hostplug's recipe has no
orientation setting of its own. A render turns the pixels upright (:func:`engine.pipeline.apply_orientation`),
records which orientation it applied and where it came from (its ``hostplug:decided``), and writes EXIF
Orientation 1, so no viewer turns the pixels a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import RecipeError

ORIENTATION_NAMES = {1: "normal", 2: "mirrored", 3: "rotated 180", 4: "flipped", 5: "transposed",
                     6: "rotated 90 CW", 7: "transversed", 8: "rotated 90 CCW"}
FROM_FILE = "the file's EXIF"


@dataclass(frozen=True)
class Orientation:
    """An EXIF orientation (1-8) and where it came from: ``FROM_FILE``, or a sidecar such as
    ``"IMG_0001.xmp (tiff:Orientation)"``."""

    value: int
    origin: str = FROM_FILE

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value not in ORIENTATION_NAMES:
            raise RecipeError(f"orientation {self.value!r} is not an EXIF orientation (a whole number from 1 to 8)")
        if not isinstance(self.origin, str):
            raise RecipeError(f"an orientation's origin must be text, not {self.origin!r}")

    @property
    def meaning(self) -> str:
        """What the orientation does to the stored pixels, in words ("rotated 90 CW")."""
        return ORIENTATION_NAMES[self.value]

    def describe(self) -> str:
        """One line: ``6 (rotated 90 CW), from IMG_0001.xmp (tiff:Orientation)``."""
        return f"{self.value} ({self.meaning}), from {self.origin}"

    def note(self) -> dict[str, Any]:
        """The orientation as an output records it (in its ``hostplug:decided``, under ``"orientation"``)."""
        return {"value": self.value, "meaning": self.meaning, "from": self.origin}

    @classmethod
    def from_note(cls, note: Any, where: str) -> Orientation:
        """The orientation an output recorded (:meth:`note`); RecipeError naming ``where`` for a damaged one."""
        if not isinstance(note, dict) or "value" not in note or not isinstance(note.get("from"), str):
            raise RecipeError(f"{where}: its recorded orientation {note!r} is not one hostplug wrote")
        try:
            return cls(note["value"], note["from"])  # the value is checked by __post_init__
        except RecipeError as e:
            raise RecipeError(f"{where}: its recorded {e}") from None


def applied(file_orientation: int, sidecar: Orientation | None) -> Orientation:
    """The orientation a render applies: the sidecar's when it sets one (the photographer's later decision),
    else the file's own EXIF orientation (1, as stored, for a value outside 1-8)."""
    if sidecar is not None:
        return sidecar
    return Orientation(file_orientation if file_orientation in ORIENTATION_NAMES else 1)
