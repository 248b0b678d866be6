"""What a render hands back: :class:`Rendered` (the pixels, in memory), :class:`RenderResult` (the files it
wrote) and the type of the progress callback both take.

A module of its own, without the pipeline's libraries (numba, the stages), so that the functions that return or
take these can name them at run time (``typing.get_type_hints`` resolves them) at no cost to start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.io.source import Source
from engine.orientation import Orientation
from engine.recipe import Recipe

ProgressCallback = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Rendered:
    """A finished render: display-referred, sRGB-encoded float32 pixels (H x W x 3), oriented for viewing."""

    pixels: np.ndarray
    recipe: Recipe
    source: Source
    notes: dict[str, Any] = field(default_factory=dict)  # what each stage decided (pinnable parameters)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    orientation: Orientation | None = None  # what turned the pixels upright, and where it came from


@dataclass(frozen=True)
class RenderResult:
    """What a render to files did: its input, the files written, the recipe used and how long it took."""

    input: Path
    outputs: tuple[Path, ...]
    recipe: Recipe
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    source: Path | None = None  # the raw rendered, where it differs from ``input`` (a re-render)
    notice: str | None = None  # what the render did not do as asked: a sidecar's crop, a re-render's new look
    orientation: Orientation | None = None  # the one the pixels were turned upright by, and where it came from
    source_sha256: str | None = None  # of the bytes rendered, as the outputs record it (re-renders check it)
    white_balance: dict[str, float] | None = None  # the temperature (K) and tint the render's white balance came to

    @property
    def output(self) -> Path:
        """The (first) file written."""
        return self.outputs[0]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: input, output, seconds, recipe, per-stage timings, the orientation applied, the
        source's SHA-256, the white balance's temperature and tint and any notice (what ``--json`` prints)."""
        return {
            "input": str(self.input),
            "output": str(self.output),
            "seconds": round(self.seconds, 3),
            "recipe": self.recipe.to_dict(),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        } | ({"orientation": self.orientation.note()} if self.orientation else {}) | (
            {"source_sha256": self.source_sha256} if self.source_sha256 else {}) | (
            {"white_balance": self.white_balance} if self.white_balance else {}) | (
            {"notice": self.notice} if self.notice else {})
