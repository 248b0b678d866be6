"""Stage 2, learned: the NAFNet-style denoiser (:mod:`engine.models.denoiser`) on linear camera RGB, and "auto"
(``--use denoise=auto``), which runs it above the ISO where it pays and the classical denoiser below.

Select the network with ``--use denoise=learned`` (recipe ``stages.denoise.implementation``); ``--set
denoise.model=base`` picks the larger network, ``lite`` the full-resolution one of params version 1, ``fast`` the 4
x 4-packed one of version 2, ``mid`` (2 x 2 packed) the default of version 3, ``mid2`` (mid's network trained six
times longer: as good as lite at a tenth of its time) that of version 4; version 5's default is ``mid3``, mid2
trained on the demosaic of recipe version 8, whose median passes take out its false colour (docs/models.md). The
network is conditioned on the file's noise level (:mod:`engine.io.noise_level`: DNG NoiseProfile, else the per-ISO
model, or measured from the image), so at full strength it removes as much as the noise calls for and leaves a clean
image nearly untouched. The recipe's ``denoise`` strength (0..100) blends the network's result with the input;
automatic (unset) is 100 for raws and 0 for sRGB images, which carry no raw noise. The image is processed in
overlapping tiles on the render's device, so memory stays bounded on any size.

"auto" (:class:`AutoDenoise`) picks per file: the learned denoiser from :data:`LEARNED_FROM_ISO` (the gain over
ISO 100 read from the DNG NoiseProfile when there is one, as the classical strength reads it), the classical one
below, where the network's gain over it is small for its time (docs/models.md has the measurement). It is the
default since recipe version 4; older recipes that name no denoiser keep the classical one
(:func:`engine.stages.catalogue.pin_former_defaults`).
"""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np

from engine import kernels
from engine.io.noise_level import NoiseModel, from_profile, noise_model
from engine.models import verified_entry
from engine.recipe import RANGES, Recipe
from engine.stages.base import Context, Pixels, Stage
from engine.stages.denoise import ClassicalDenoise, DenoiseParams, gain_stops

ModelSize = Literal["fast", "mid", "mid2", "mid3", "lite", "base"]  # the sizes of engine.models.denoiser.SIZES

# The ISO from which "auto" runs the learned denoiser (measured: docs/models.md, "Where the learned denoiser pays");
# 1600 for denoise-fast (auto params version 1), 800 for denoise-mid (version 2), 400 for denoise-mid2 (3 and 4),
# 800 for denoise-mid3 (5): the demosaic's median passes took out part of the noise it led the classical one by.
LEARNED_FROM_ISO = 800.0
_FORMER_MODELS = {1: "lite", 2: "fast", 3: "mid", 4: "mid2"}  # LearnedDenoiseParams' default model, by version
_LOADER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hostplug-load-denoiser")


@dataclass(frozen=True)
class LearnedDenoiseParams:
    """Strength 0..100 (None: automatic), model size, where the noise level comes from, or a pinned (S, O)."""

    VERSION: ClassVar[int] = 6
    strength: float | None = field(default=None, metadata={"range": RANGES["denoise"]})
    model: ModelSize = "mid3"
    noise: Literal["auto", "profile", "iso", "estimate"] = "auto"  # engine.io.noise_level.NOISE_SOURCES
    # Pins (S, O): variance = S * signal + O; both are variances, so never negative.
    noise_profile: tuple[float, float] | None = field(default=None, metadata={"range": (0.0, 1.0)})
    # the input's local means given back "per_position" of a packed network's 2 x 2 blocks (version 6), or as
    # a "whole" (version 5 and older), which left a plaid of 1 to 2 levels (denoise_tiles.denoise_image)
    local_means: Literal["per_position", "whole"] = "per_position"


def _load_network(size: ModelSize) -> Any:
    from engine.models import denoiser

    return denoiser.load(size)


def _load_soon(size: ModelSize) -> Future[Any]:
    """The network of ``size``, loading in a thread while torch is not imported yet: importing it takes about a
    second of a cold process, which the demosaic (the stage before, compiled code that releases the GIL) now
    overlaps. The weights file is checked first, so a missing or altered one still stops the render before any
    pixel is touched. In a process that has torch (the service) the network loads here, from its cache once
    loaded (verified on its first load)."""
    if "torch" in sys.modules:
        loaded: Future[Any] = Future()
        loaded.set_result(_load_network(size))
        return loaded
    verified_entry(f"denoise-{size}")
    return _LOADER.submit(_load_network, size)


class LearnedDenoise(Stage):
    """The learned denoiser, blended by strength."""

    name = "denoise"
    implementation = "learned"
    Params = LearnedDenoiseParams

    def params_from(self, recipe: Recipe) -> LearnedDenoiseParams:
        return LearnedDenoiseParams(strength=recipe.denoise)

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1's default model was "lite", version 2's "fast", version 3's "mid", version 4's "mid2";
        versions 1 to 5 gave the input's local means back as a whole."""
        if version < 5:
            params = {"model": _FORMER_MODELS.get(version, "lite"), **params}
        return {"local_means": "whole", **params} if version < 6 else params

    def prepare(self, params: LearnedDenoiseParams, ctx: Context) -> dict[str, Any]:
        strength = params.strength
        if strength is None:
            strength = 0.0 if ctx.source.kind == "rgb" else 100.0
        model = _load_soon(params.model) if strength > 0 else None  # a missing model fails before rendering
        return {"strength": strength / 100.0, "model": model, "params": params}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        from engine.models import denoise_tiles

        params: LearnedDenoiseParams = data["params"]
        s = data["strength"]
        # merged into what "auto" noted before it (a fresh dict, so later updates land in ctx.notes too)
        notes = ctx.notes["denoise"] = {**ctx.notes.get("denoise", {}), "strength": round(s * 100.0, 1),
                                        "model": f"denoise-{params.model}"}
        if s <= 0.0:
            return image
        model = data["model"].result()  # before importing what imports torch: the loading thread may be at it
        noise = self.noise_model(params, image, ctx)
        notes.update(noise_profile=[round(noise.shot[1], 9), round(noise.read[1], 12)], noise_origin=noise.origin)
        if ctx.shading is not None:  # the lens-shading maps raised the noise where they raised the signal
            noise = replace(noise, shading=ctx.shading)
            notes["noise_origin"] += ", raised by the lens-shading maps"
        if kernels.on_torch(ctx.device):
            return denoise_tiles.denoise_on_device(model, image, noise, strength=min(s, 1.0),
                                                   means_per_position=params.local_means == "per_position")
        return denoise_tiles.denoise_image(model, image, noise, strength=min(s, 1.0), device=ctx.device,
                                           means_per_position=params.local_means == "per_position")

    @staticmethod
    def noise_model(params: LearnedDenoiseParams, image: Pixels, ctx: Context) -> NoiseModel:
        """The noise model of this render: pinned, or from the source as ``params.noise`` says."""
        if params.noise_profile is not None:
            shot, read = (float(v) for v in params.noise_profile)
            return NoiseModel((shot,) * 3, (read,) * 3, "pinned")
        source = ctx.source
        # only a measurement reads the pixels: a device image comes to the host just for that
        measured = params.noise == "estimate" or (params.noise == "auto" and source.camera.iso <= 0
                                                  and from_profile(source.noise_profile) is None)
        rgb = kernels.to_host(image) if measured else None
        model = noise_model(source.camera.iso, source.noise_profile, rgb, source.cfa, params.noise)
        # a measurement was made on the scaled image itself; the file's profile or ISO is the sensor's
        return model if measured else model.binned(ctx.binning)


@dataclass(frozen=True)
class AutoDenoiseParams:
    """Strength 0..100 (None: automatic), the ISO from which the learned denoiser runs, its model size, and
    whether the classical denoiser's automatic strength follows the render's size (:class:`DenoiseParams`)."""

    VERSION: ClassVar[int] = 6
    strength: float | None = field(default=None, metadata={"range": RANGES["denoise"]})
    learned_from_iso: float = field(default=LEARNED_FROM_ISO, metadata={"range": (0.0, 1e7)})
    model: ModelSize = "mid3"
    follow_scale: bool = True
    local_means: Literal["per_position", "whole"] = "per_position"  # the learned denoiser's (LearnedDenoiseParams)


def equivalent_iso(iso: float, noise_profile: np.ndarray | None) -> float:
    """The ISO the file's noise corresponds to (its DNG NoiseProfile when it has one, else its ISO; 100 when
    neither says)."""
    return float(100.0 * 2.0 ** gain_stops(iso, noise_profile))


class AutoDenoise(Stage):
    """Learned from :data:`LEARNED_FROM_ISO` up (and on raws only), classical below (`--use denoise=auto`)."""

    name = "denoise"
    implementation = "auto"
    Params = AutoDenoiseParams

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1's model was "fast", run from ISO 1600; version 2's "mid", from ISO 800; versions 3 and 4's
        "mid2", from ISO 400; versions 1 to 5 gave the learned denoiser's local means back as a whole."""
        if version < 6:
            params = {"local_means": "whole", **params}
        if version < 2:
            return {"model": "fast", "learned_from_iso": 1600.0, **params}
        if version < 3:
            return {"model": "mid", "learned_from_iso": 800.0, **params}
        return {"model": "mid2", "learned_from_iso": 400.0, **params} if version < 5 else params

    def params_from(self, recipe: Recipe) -> AutoDenoiseParams:
        return AutoDenoiseParams(strength=recipe.denoise)

    def prepare(self, params: AutoDenoiseParams, ctx: Context) -> dict[str, Any]:
        source = ctx.source
        iso = equivalent_iso(source.camera.iso, source.noise_profile)
        use_learned = source.kind != "rgb" and iso >= params.learned_from_iso
        stage: Stage = LearnedDenoise() if use_learned else ClassicalDenoise()
        if use_learned:
            data = stage.prepare(LearnedDenoiseParams(strength=params.strength, model=params.model,
                                                      local_means=params.local_means), ctx)
        else:
            data = stage.prepare(DenoiseParams(strength=params.strength, follow_scale=params.follow_scale), ctx)
        ctx.notes["denoise"] = {**ctx.notes.get("denoise", {}), "implementation": stage.implementation,
                                "equivalent_iso": round(iso)}
        return {"stage": stage, "data": data}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        return data["stage"].process(image, data["data"], ctx)
