"""Stage 6: detail enhancement at full resolution, on the display-encoded image.

The classical implementation is an unsharp mask whose amount follows the recipe's sharpening (0..100) or the
style's default (decided in ``params_from``, so the stage never reads the recipe while rendering); the learned
implementation is a tiny full-resolution network blended by the same strength.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2

from engine import kernels
from engine.recipe import RANGES, Recipe
from engine.stages.base import Context, Pixels, Stage
from engine.stages.photofinish import CLASSICAL_LOOKS


@dataclass(frozen=True)
class DetailParams:
    """Sharpening amount 0..100 (``None``: the natural style's default) and the blur radius in pixels."""

    VERSION: ClassVar[int] = 1
    amount: float | None = field(default=None, metadata={"range": RANGES["sharpening"]})
    radius: float = field(default=1.0, metadata={"range": (0.1, 100.0)})  # a Gaussian sigma: 0 would be no blur


def default_sharpening(style: str) -> float:
    """The sharpening amount a style asks for when the recipe sets none (styles without a look: natural's)."""
    return CLASSICAL_LOOKS.get(style, CLASSICAL_LOOKS["natural"]).sharpening


class UnsharpMask(Stage):
    """``out = x + amount * (x - blur(x))``."""

    name = "detail"
    implementation = "classical"
    Params = DetailParams
    encoding = "display"

    def params_from(self, recipe: Recipe) -> DetailParams:
        amount = recipe.sharpening if recipe.sharpening is not None else default_sharpening(recipe.style)
        return DetailParams(amount=amount)

    def prepare(self, params: DetailParams, ctx: Context) -> dict[str, Any]:
        amount = params.amount if params.amount is not None else default_sharpening("natural")
        ctx.notes["detail"] = {"amount": amount, "radius": params.radius}
        return {"amount": amount / 100.0, "radius": params.radius}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        amount = data["amount"]
        if amount <= 0.0:
            return image
        if kernels.on_torch(ctx.device):
            return kernels.unsharp_torch(image, amount, data["radius"])
        blurred = cv2.GaussianBlur(image, (0, 0), data["radius"])
        # In place: a fresh full-resolution buffer costs more in page faults than the arithmetic itself.
        return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0, dst=image)
