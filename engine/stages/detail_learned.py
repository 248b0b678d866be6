"""Stage 6, learned: a tiny network restores detail, blended by the sharpening strength.

The sharpening amount (0..100; ``None``: the style's default, as for the classical unsharp mask) sets the
strength as ``amount / 25``: the default amount of 25 applies the residual the network was trained to restore,
0 switches it off, 100 applies it four times over. ``model`` picks the network (:data:`DETAIL_MODELS`): "fast"
(the default since params version 2) runs on 2 x 2 packed luminance; "lite", the version 1 network at full
resolution, stays for recipes that used it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from engine import kernels
from engine.models import build_network
from engine.recipe import RANGES, Recipe
from engine.stages.base import Context, Pixels, Stage
from engine.stages.detail import default_sharpening

if TYPE_CHECKING:  # the network (torch) loads when the stage runs: the pipeline imports this module for every render
    from engine.models.detail_net import DetailNet

DETAIL_MODELS = {"fast": "detail-fast", "lite": "detail-lite"}
DETAIL_MODEL = DETAIL_MODELS["fast"]  # the default network
AMOUNT_PER_STRENGTH = 25.0


@dataclass(frozen=True)
class LearnedDetailParams:
    """Sharpening amount 0..100 (``None``: the style's default), the unsharp radius the classical stage would use
    (kept so ``--set detail.radius`` reads the same for both), and the network."""

    VERSION: ClassVar[int] = 2
    amount: float | None = field(default=None, metadata={"range": RANGES["sharpening"]})
    radius: float = field(default=1.0, metadata={"range": (0.1, 100.0)})
    model: Literal["fast", "lite"] = "fast"


def load_detail_network(size: str = "fast") -> DetailNet:
    """The verified detail network of a size (loaded once; :class:`~engine.errors.ModelError` if its weights are
    missing)."""
    from engine.models.detail_net import DetailNet

    return build_network(DETAIL_MODELS[size], DetailNet)


class LearnedDetail(Stage):
    """``out = x + (amount / 25) * net(luminance(x))``."""

    name = "detail"
    implementation = "learned"
    Params = LearnedDetailParams
    encoding = "display"

    def params_from(self, recipe: Recipe) -> LearnedDetailParams:
        amount = recipe.sharpening if recipe.sharpening is not None else default_sharpening(recipe.style)
        return LearnedDetailParams(amount=amount)

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 had no ``model``: it always ran the full-resolution "lite" network."""
        return {"model": "lite", **params} if version < 2 else params

    def prepare(self, params: LearnedDetailParams, ctx: Context) -> dict[str, Any]:
        amount = params.amount if params.amount is not None else default_sharpening("natural")
        strength = amount / AMOUNT_PER_STRENGTH
        name = DETAIL_MODELS[params.model]
        ctx.notes["detail"] = {"amount": amount, "radius": params.radius, "strength": strength, "model": name}
        net = load_detail_network(params.model) if strength > 0.0 else None  # missing weights fail up front
        return {"strength": strength, "model": params.model, "halo": net.halo if net is not None else 0}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        if data["strength"] <= 0.0:
            return image
        from engine.models.detail_net import enhance_image, enhance_on_device

        net = load_detail_network(data["model"])
        if kernels.on_torch(ctx.device):
            return enhance_on_device(net, image, data["strength"])
        # in place, as the unsharp mask works: a fresh full-resolution buffer costs more than the network
        return enhance_image(net, image, data["strength"], ctx.device, out=image)
