"""Stage 3a: white balance, as-shot, estimated from the image, or from a temperature and tint.

The result is a camera *neutral* (the camera's response to the scene's white, green = 1); dividing by it
balances the image. Pixels the sensor clipped are clipped to the balanced white so they stay neutral.
"auto" estimates the light with the learned cross-camera estimator (:mod:`engine.models.illuminant`); the
classical shades-of-grey estimate stays available as ``estimator="classical"``. "as-shot" on a raw whose file
holds no as-shot white balance (``Source.as_shot_missing``) balances to the learned estimate too, made from the
file's own sensor data (:func:`engine.models.illuminant.source_neutral`), and the stage's notes say so
(``"as_shot": "none in the file; learned estimate"``, with the neutral, so the output records what was used).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import cv2
import numpy as np

from engine import kernels
from engine.calibration import neutral_to_xy, srgb_calibration, xy_to_neutral
from engine.channels import scale_channels
from engine.colour import temperature_tint_to_xy, xy_to_temperature_tint
from engine.errors import RecipeError
from engine.io.source import NO_AS_SHOT
from engine.recipe import RANGES, Recipe
from engine.stages.base import Context, Pixels, Stage, WhiteDecision
from engine.stages.demosaic import unprocessed_image


@dataclass(frozen=True)
class WhiteBalanceParams:
    """``mode`` is "as-shot", "auto" or "custom" (``temperature`` K and ``tint``); ``neutral`` pins a result.

    ``estimator`` is what "auto" uses: "learned" (the cross-camera network) or "classical" (shades of grey).
    """

    VERSION: ClassVar[int] = 4
    mode: Literal["as-shot", "auto", "custom"] = "as-shot"
    temperature: float | None = field(default=None, metadata={"range": RANGES["temperature"]})
    tint: float | None = field(default=None, metadata={"range": RANGES["tint"]})
    # Camera responses to white, green = 1: far outside this range no camera's channels would be usable.
    neutral: tuple[float, float, float] | None = field(default=None, metadata={"range": (1e-3, 1e3)})
    estimator: Literal["learned", "classical"] = "learned"
    # a custom white's camera responses below MIN_CUSTOM_RESPONSE: "raised" to it (version 3), or only the negative
    # ones, "kept" otherwise (version 2 and older)
    small_responses: Literal["raised", "kept"] = "raised"
    # a custom tint beyond what the camera's calibration balances to white: "limited" to the last tint it does
    # (version 4), or "kept" (version 3 and older), where more magenta turned the picture green
    unreachable_tint: Literal["limited", "kept"] = "limited"
    # the gains when one is below 1 (a custom white warmer or cooler than the camera's own, any custom white on an
    # image input): "raised" so the lowest is 1 and clipped whites stay white (version 4), or "kept" at green = 1
    # (version 3 and older), where clipped whites became a grey at the lowest gain
    gains_below_one: Literal["raised", "kept"] = "raised"


ESTIMATORS = ("learned", "classical")


def calibration_of(ctx: Context):
    """The source's colour calibration (sRGB images are their own calibration)."""
    return ctx.source.calibration if ctx.source.calibration is not None else srgb_calibration()


def as_shot_missing(params: WhiteBalanceParams, ctx: Context) -> bool:
    """Whether "as-shot" stands for the learned estimate here: the file holds no as-shot white balance."""
    return params.mode == "as-shot" and params.neutral is None and getattr(ctx.source, "as_shot_missing", False)


def classical_size(image: Pixels) -> tuple[int, int]:
    """The (width, height) the classical estimate shrinks an image to: 256 px wide."""
    return 256, max(1, round(256 * image.shape[0] / image.shape[1]))


def learned_size(image: Pixels) -> tuple[int, int]:
    """The (width, height) the learned estimate shrinks an image to (:func:`engine.models.illuminant.thumbnail`)."""
    h, w = image.shape[:2]
    scale = min(1.0, 256 / max(h, w))  # illuminant.THUMBNAIL, not imported: that would load torch here
    return max(1, round(w * scale)), max(1, round(h * scale))


def estimation_image(image: Pixels, size: tuple[int, int]) -> np.ndarray:
    """The camera RGB an estimate reads: the image itself on the CPU (the estimate shrinks it to ``size``); on the
    torch path the image shrunk to ``size`` on the device and brought to the host, the only copy that crosses."""
    if isinstance(image, np.ndarray):
        return image
    h, w = image.shape[:2]
    return kernels.to_host(image if size == (w, h) else kernels.area_resize_torch(image, size))


def estimate_neutral(camera_rgb: np.ndarray) -> np.ndarray:
    """Classical illuminant estimate: shades-of-grey (p = 6) over unclipped, not-too-dark pixels."""
    small = cv2.resize(camera_rgb, classical_size(camera_rgb), interpolation=cv2.INTER_AREA)
    small = small.reshape(-1, 3).astype(np.float64)
    brightest = small.max(axis=1)
    usable = small[(brightest < 0.95 * brightest.max()) & (small.min(axis=1) > 1e-4)]
    if len(usable) < 16:
        usable = small
    neutral = np.power(np.mean(np.power(np.clip(usable, 0, None), 6.0), axis=0), 1.0 / 6.0)
    neutral = np.maximum(neutral, 1e-6)
    return neutral / neutral[1]


# The least camera response a custom white is given (relative to green's). Far off the daylight locus (3000 K with
# tint +150) the colour matrix puts the white outside what the sensor sees, as a negative response, which balanced
# every pixel to black; just short of that, a response near 0 multiplied the channel so much that nearly every pixel
# passed the highlight ceiling and the channel was lost (the Canon's blue at 3000 K, tint +140). Pinned here, the
# picture changes smoothly up to the sliders' ends.
MIN_CUSTOM_RESPONSE = 1 / 64


class WhiteBalance(Stage):
    """Divide camera RGB by the chosen neutral; clip sensor-saturated pixels to white."""

    name = "white_balance"
    implementation = "classical"
    Params = WhiteBalanceParams
    can_disable = False

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 had only the classical estimate for "auto", versions 1 and 2 kept a custom white's small
        positive responses, versions 1 to 3 kept a tint the calibration cannot balance and gains below 1: keep
        them, so old recipes render the same."""
        if version < 2:
            # Version 1 params never held an estimator; one that is there was set on top (--set, a preset) in
            # the current version, and wins.
            params = {"estimator": "classical", **params}
        if version < 3:
            params = {"small_responses": "kept", **params}
        if version < 4:
            params = {"unreachable_tint": "kept", "gains_below_one": "kept", **params}
        return params

    def params_from(self, recipe: Recipe) -> WhiteBalanceParams:
        return WhiteBalanceParams(mode=recipe.wb, temperature=recipe.temperature, tint=recipe.tint)

    def prepare(self, params: WhiteBalanceParams, ctx: Context) -> dict[str, Any]:
        return {"params": params}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        params: WhiteBalanceParams = data["params"]
        # Rendered with the neutral as the output records it (6 decimals), so a re-render that pins the recorded
        # neutral balances with exactly the same gains. (Since recipe version 12, for every recipe: renders of an
        # older one moved by at most 1/65535 in about 1 % of values, within what re-renders promise.)
        neutral = np.array([round(float(v), 6) for v in self.neutral(params, image, ctx)])
        cal = calibration_of(ctx)
        white_xy = neutral_to_xy(cal, neutral)
        temperature, tint = xy_to_temperature_tint(white_xy)
        missing = as_shot_missing(params, ctx)
        ctx.notes["white_balance"] = {
            "mode": params.mode,
            **({"estimator": params.estimator} if params.mode == "auto" and params.neutral is None else {}),
            **({"as_shot": NO_AS_SHOT, "estimator": "learned"} if missing else {}),
            "neutral": [float(v) for v in neutral],
            "white_xy": [round(float(v), 6) for v in white_xy],
            "temperature": round(temperature),
            "tint": round(tint, 1),
        }
        decided = ctx.notes["white_balance"]
        ctx.white = WhiteDecision(neutral=tuple(decided["neutral"]), white_xy=tuple(decided["white_xy"]))
        gains = 1.0 / neutral
        if params.gains_below_one == "raised" and gains.min() < 1.0:
            gains = gains / gains.min()  # as LibRaw scales its multipliers: the ceiling below is then the white
        gains = gains.astype(np.float32)
        # In place (the pipeline hands each stage its input to keep). On a raw the sensor saturates at 1.0 in
        # every channel; after balancing, the lowest channel's ceiling is where all three are still trustworthy.
        # Above it, clipped pixels would turn pink. An unprocessed image's white (255) is clipped alike; an image
        # only decoded (older recipes) kept no ceiling, and keeps none.
        white = _clip_level(ctx)
        ceiling = float(gains.min()) * white if white is not None else None
        if kernels.on_torch(ctx.device):
            balanced = image.mul_(kernels.to_device(gains, str(image.device)))
            return balanced if ceiling is None else balanced.clamp_(max=ceiling)
        balanced = scale_channels(image, gains)
        return balanced if ceiling is None else np.minimum(balanced, ceiling, out=balanced)

    def neutral(self, params: WhiteBalanceParams, image: Pixels, ctx: Context) -> np.ndarray:
        """The camera neutral this stage balances to (estimates read :func:`estimation_image`)."""
        if params.neutral is not None:
            return np.asarray(params.neutral, dtype=np.float64)
        if params.mode == "as-shot":
            if as_shot_missing(params, ctx):
                from engine.models.illuminant import source_neutral

                return source_neutral(ctx.source, estimation_image(image, learned_size(image)))
            return ctx.source.as_shot_neutral.astype(np.float64)
        if params.mode == "auto":
            if params.estimator == "classical":
                return estimate_neutral(estimation_image(image, classical_size(image)))
            if params.estimator == "learned":
                from engine.models.illuminant import estimate_neutral as learned_neutral

                return learned_neutral(estimation_image(image, learned_size(image)), calibration_of(ctx))
            raise RecipeError(f"unknown white balance estimator {params.estimator!r} (known: {', '.join(ESTIMATORS)})")
        if params.mode == "custom":
            if params.temperature is None:
                raise RecipeError("custom white balance needs a temperature")
            tint = params.tint or 0.0
            if params.unreachable_tint == "limited":
                tint = reachable_tint(calibration_of(ctx), params.temperature, asked := tint)
                if tint != asked:
                    ctx.notes["tint_limited"] = {"temperature": params.temperature, "asked": asked, "used": tint}
            xy = temperature_tint_to_xy(params.temperature, tint)
            neutral = xy_to_neutral(calibration_of(ctx), xy)
            if params.small_responses == "kept":  # versions 1 and 2: a response the sensor has, however small
                return np.where(neutral > 0.0, neutral, MIN_CUSTOM_RESPONSE)
            return np.maximum(neutral, MIN_CUSTOM_RESPONSE)
        raise RecipeError(f"unknown white balance mode {params.mode!r}")


def reachable_tint(cal: Any, temperature: float, tint: float) -> float:
    """``tint``, or the tint nearest it (towards 0) whose white the calibration ``cal`` still balances to white at
    ``temperature``. Far off the daylight locus (1700 K with tint +50, 2500 K with +100) a white's blue cone
    response reaches 0 and the colour matrix can no longer map it to white: each further step of magenta turned
    the picture greener (a tester's 1700 K at tint +150 was lime green, as -150 is). Where even tint 0 is out of
    reach (below about 1750 K), tint 0."""
    if tint == 0.0 or _balances_to_white(cal, temperature, tint):
        return tint
    if not _balances_to_white(cal, temperature, 0.0):
        return 0.0
    reached, beyond = 0.0, tint
    while abs(beyond - reached) > 0.05:
        middle = (reached + beyond) / 2
        reached, beyond = (middle, beyond) if _balances_to_white(cal, temperature, middle) else (reached, middle)
    return round(reached, 1)


def _balances_to_white(cal: Any, temperature: float, tint: float) -> bool:
    """Whether the white of ``temperature`` and ``tint`` has a camera response the stage keeps as it is (no channel
    below :data:`MIN_CUSTOM_RESPONSE`) and the colour stage maps to white within 1 %."""
    from engine.calibration import balanced_camera_to_linear_srgb

    neutral = xy_to_neutral(cal, temperature_tint_to_xy(temperature, tint))
    if neutral.min() < MIN_CUSTOM_RESPONSE:
        return False
    white = balanced_camera_to_linear_srgb(cal, neutral, neutral_to_xy(cal, neutral)) @ np.ones(3)
    return bool(np.abs(white - 1.0).max() <= 0.01)


def white_decided(notes: dict[str, Any]) -> dict[str, float] | None:
    """The temperature and tint a render's white balance came to (as shot, automatic or custom), where its stage
    noted them: what a dialog starts a custom white balance from."""
    noted = notes.get("white_balance")
    if not isinstance(noted, dict) or not all(isinstance(noted.get(k), (int, float)) for k in ("temperature", "tint")):
        return None
    return {"temperature": float(noted["temperature"]), "tint": float(noted["tint"])}


def _clip_level(ctx: Context) -> float | None:
    """Where the input's channels clip before balancing: a raw's sensor white (1.0), an unprocessed image's white
    (:func:`engine.camera_look.unprocessed_white`); None for an image only decoded (older recipes)."""
    if ctx.source.kind == "raw":
        return 1.0
    if unprocessed_image(ctx):
        from engine.camera_look import unprocessed_white

        return unprocessed_white()
    return None
