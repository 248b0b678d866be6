"""Stage 6, learned: a tiny full-resolution network restores detail, blended by the sharpening strength.

The sharpening amount (0..100; ``None``: the style's default, as for the classical unsharp mask) sets the
strength as ``amount / 25``: the default amount of 25 applies the residual the network was trained to restore,
0 switches it off, 100 applies it four times over.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.models import build_network
from engine.models.detail_net import DetailNet, enhance_image
from engine.stages.base import Context
from engine.stages.detail import UnsharpMask

DETAIL_MODEL = "detail-lite"
AMOUNT_PER_STRENGTH = 25.0


def load_detail_network() -> DetailNet:
    """The verified detail network (loaded once; :class:`~engine.errors.ModelError` if its weights are missing)."""
    return build_network(DETAIL_MODEL, DetailNet)


class LearnedDetail(UnsharpMask):
    """``out = x + (amount / 25) * net(luminance(x))``."""

    implementation = "learned"

    def prepare(self, params: Any, ctx: Context) -> dict[str, Any]:
        data = super().prepare(params, ctx)
        strength = data["amount"] * 100.0 / AMOUNT_PER_STRENGTH
        ctx.notes["detail"] = {**ctx.notes["detail"], "strength": strength, "model": DETAIL_MODEL}
        if strength > 0.0:
            load_detail_network()
        return {"strength": strength}

    def process(self, image: np.ndarray, data: dict[str, Any], ctx: Context) -> np.ndarray:
        if data["strength"] <= 0.0:
            return image
        return enhance_image(load_detail_network(), image, data["strength"], ctx.device)
