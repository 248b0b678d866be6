"""Stage 4: photofinishing at reduced resolution.

Parameters of the fixed operators (digital gain, highlight shoulder, global tone curve, local tone map, chroma
mapping, gamma) come from a pinned set (re-renders), or are computed from the image and the user's
adjustments. The learned implementation predicts the same parameters with small networks per picture style.
The operators run in numpy on the CPU (:mod:`engine.operators_numpy`: a render never imports torch) and in torch
with ``--device cuda`` (:mod:`engine.operators`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np

from engine import operators_numpy as ops
from engine.colour import LUMA
from engine.errors import RecipeError, shown
from engine.models.photofinish_numpy import CHROMA_SIZE, LTM_BINS, LTM_CELLS
from engine.recipe import RANGES, Recipe
from engine.stages.base import Context, Stage

if TYPE_CHECKING:  # torch loads only for --device cuda (and training): a CPU render runs engine.operators_numpy
    import torch

# Vibrance +100 scales a nearly grey colour's chroma by 1 + VIBRANCE_BOOST, the boost falling to 1/e at a
# log-chromaticity radius of VIBRANCE_REACH. Params version 2's 0.6 and 0.5 made +100 about saturation +10 on
# ordinary colours (radius 0.5 to 1); these make it about saturation +40 on muted ones, +30 at radius 1, and leave
# colours already saturated (radius 2 and more) within +12 %.
VIBRANCE_BOOST = 0.9
VIBRANCE_REACH = 1.0
# Vibrance spares skin, as Lightroom's does: the boost is cut by VIBRANCE_SPARES_SKIN where a colour's Oklab hue is
# SKIN_HUE, less the further it is (a Gaussian of SKIN_HUE_WIDTH degrees). Skin of every complexion lies at Oklab
# hues of about 30 (pink) to 67 (olive) degrees, the ColorChecker's two skins at 44 and 46; muted as it is, skin was
# what vibrance boosted most (+48 % at +100 against a sky's +28 %); sparing it, +9 to +20 % (a pink skin +32 %).
VIBRANCE_SPARES_SKIN = 0.65
SKIN_HUE = 50.0
SKIN_HUE_WIDTH = 18.0


class VibranceShape(NamedTuple):
    """How vibrance +100 scales a chromaticity's chroma (:func:`chroma_scale`): by 1 + ``boost`` near grey, the
    boost falling to 1/e at a log-chromaticity radius of ``reach``, and cut by ``spares_skin`` at skin's hue."""

    boost: float = VIBRANCE_BOOST
    reach: float = VIBRANCE_REACH
    spares_skin: float = VIBRANCE_SPARES_SKIN


CURRENT_VIBRANCE = VibranceShape()  # that of the current params version

@dataclass(frozen=True)
class PhotofinishParams:
    """The user's look: style and Lightroom-style adjustments (-100..100); ``operators`` pins the result."""

    VERSION: ClassVar[int] = 6  # 2: less saturation scales colour around luminance (split_saturation); 3: vibrance
    # reaches further (VIBRANCE_BOOST, VIBRANCE_REACH); 4: chroma moves stop at the gamut's edge (stop_at_gamut),
    # the sliders' local lifts are held below white (lift_below_white); 5: saturation, less and more, keeps each
    # colour's hue (saturation_keeps_hue); 6: vibrance spares skin (vibrance_spares_skin)
    style: str = "natural"  # checked against the implementation's styles by check_style
    strength: float = field(default=1.0, metadata={"range": RANGES["style_strength"]})
    exposure: float = field(default=0.0, metadata={"range": RANGES["exposure"]})
    auto_exposure: bool = False  # learned styles: meter the white point instead of following the raw
    contrast: float = field(default=0.0, metadata={"range": RANGES["contrast"]})
    highlights: float = field(default=0.0, metadata={"range": RANGES["highlights"]})
    shadows: float = field(default=0.0, metadata={"range": RANGES["shadows"]})
    saturation: float = field(default=0.0, metadata={"range": RANGES["saturation"]})
    vibrance: float = field(default=0.0, metadata={"range": RANGES["vibrance"]})
    saturation_around_luminance: bool = True  # False: version 1's table-only desaturation (split_saturation)
    # vibrance +100 scales a nearly grey colour's chroma by 1 + boost, less the further it is from grey (the boost
    # falls to 1/e at ``vibrance_reach`` in log-chromaticity units); versions 1 and 2: 0.6 and 0.5
    vibrance_boost: float = field(default=VIBRANCE_BOOST, metadata={"range": (0.0, 2.0)})
    vibrance_reach: float = field(default=VIBRANCE_REACH, metadata={"range": (0.05, 5.0)})
    # how much of vibrance's boost skin's hue is spared (VIBRANCE_SPARES_SKIN); versions 1 to 5 spared none
    vibrance_spares_skin: float = field(default=VIBRANCE_SPARES_SKIN, metadata={"range": (0.0, 1.0)})
    # a chroma move (style, saturation, vibrance) that would leave the gamut stops at its edge; versions 1 to 3
    # pulled the moved colour back towards grey, so more saturation made a bright orange paler
    stop_at_gamut: bool = True
    # the shadows and highlights sliders' lifts are held below white (their own grid, local_tone_held); versions 1
    # to 3 added them to the style's grid and lifted past white: Highlights +50 turned a bright yellow nearly white
    lift_below_white: bool = True
    # saturation scales each colour's Oklab chroma at its own hue (the saturate operator); in versions 1 to 4 more
    # scaled its log-chromaticity in the chroma table (skies turned towards blue, oranges towards red) and less
    # mixed it with its grey in linear RGB (oranges turned towards red, blues towards purple)
    saturation_keeps_hue: bool = True
    operators: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.operators is not None:  # pinned by hand (--set, a sidecar) as well as by a re-render
            ops.check_pinned(self.operators)


@dataclass(frozen=True)
class Look:
    """What a classical style adds to the user's adjustments."""

    contrast: float = 0.0
    highlights: float = 0.0
    shadows: float = 0.0
    saturation: float = 0.0
    vibrance: float = 0.0
    sharpening: float = 25.0


CLASSICAL_LOOKS = {"natural": Look(contrast=10.0, highlights=-10.0, shadows=15.0, vibrance=10.0)}


def migrate_photofinish(params: dict[str, Any], version: int) -> dict[str, Any]:
    """Photofinish params of an older version, as they rendered (both implementations share them)."""
    if version < 2:
        params = {"saturation_around_luminance": False, **params}
    if version < 3:
        params = {"vibrance_boost": 0.6, "vibrance_reach": 0.5, **params}
    if version < 4:
        params = {"stop_at_gamut": False, "lift_below_white": False, **params}
    if version < 5:
        params = {"saturation_keeps_hue": False, **params}
    if version < 6:
        params = {"vibrance_spares_skin": 0.0, **params}
    return params


def auto_exposure(y: np.ndarray) -> float:
    """Stops of gain that bring the scene's log-average luminance half-way (in stops) to mid-grey.

    A full correction would turn night into day; the camera's own exposure is partly a decision to respect.
    """
    y = y[np.isfinite(y)].ravel()
    lo, hi = np.percentile(y, [1.0, 99.0])
    y = y[(y >= lo) & (y <= hi)]
    key = float(np.exp(np.mean(np.log(np.maximum(y, 1e-5)))))
    return float(np.clip(0.5 * math.log2(0.18 / max(key, 1e-6)), -3.0, 10.0))


def only_noise(linear: np.ndarray) -> bool:
    """Whether a frame holds nothing but sensor noise: its median and its brightest 0.1 % both lie within a few
    noise deviations of black (a lens-cap frame, or a night shot far below the sensor's noise floor).

    Such a frame has nothing to meter, and automatic exposure would lift the noise into a grey picture that no
    camera or raw developer shows, so its exposure stays as shot. The noise deviation is measured on the image
    itself (median absolute difference of horizontal neighbours), so it needs no metadata. A real scene stands
    far clear of both bounds: a dark concert's brightest 0.1 % lies 100 deviations above its median.
    """
    y = linear @ np.array(LUMA, dtype=np.float32)
    steps = np.abs(np.diff(y, axis=1 if y.shape[1] > 1 else 0))
    if steps.size == 0:
        return False  # a single pixel: nothing to tell noise from
    sigma = 1.4826 * float(np.median(steps)) / math.sqrt(2.0)
    median, brightest = np.percentile(y, [50.0, 99.9])
    return bool(median <= 3.0 * sigma and brightest - median <= 10.0 * sigma)


def _slider_gains(shadows: float, highlights: float) -> tuple[np.ndarray, np.ndarray]:
    """The Shadows and Highlights sliders' log2 gains per intensity bin (each D x 1 x 1): shadows lift, highlights
    pull. They depend on no pixel: the bins are the grid's own."""
    bins = np.linspace(0.0, 1.0, LTM_BINS) * 12.0 - 12.0  # the log2 level of each intensity bin
    shadow_w = 1.0 / (1.0 + np.exp(-(-4.0 - bins) / 1.0))
    highlight_w = 1.0 / (1.0 + np.exp(-(bins + 1.5) / 0.7))
    return (shadows / 100.0) * 1.5 * shadow_w[:, None, None], (highlights / 100.0) * 1.0 * highlight_w[:, None, None]


def local_tone_grid(y: np.ndarray, shadows: float, highlights: float) -> np.ndarray:
    """Bilateral grid (1 x 1 x D x GH x GW) of log2 gains: shadows lift, highlights pull, large-scale
    contrast eases by a quarter, each following the pixel's own intensity so edges keep no halo."""
    import cv2

    log_y = np.log2(np.maximum(y, 2.0**-12)).astype(np.float32)
    cells = cv2.resize(log_y, (LTM_CELLS, LTM_CELLS), interpolation=cv2.INTER_AREA)
    ease = -0.25 * (cells - float(np.mean(log_y)))
    lift, pull = _slider_gains(shadows, highlights)
    return (ease[None] + lift + pull)[None, None].astype(np.float32)


def slider_grid(shadows: float, highlights: float) -> np.ndarray:
    """The sliders' part of :func:`local_tone_grid` alone (1 x 1 x D x GH x GW), the grid whose lifts are held below
    white since photofinish params 4 (``local_tone_held``)."""
    lift, pull = _slider_gains(shadows, highlights)
    return np.broadcast_to(lift + pull, (LTM_BINS, LTM_CELLS, LTM_CELLS))[None, None].astype(np.float32)


def skin_weight(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """How near a log-chromaticity (u, v) lies to skin's hue: 1 at SKIN_HUE (Oklab), a Gaussian of SKIN_HUE_WIDTH
    degrees about it. Oklab's hue depends on chromaticity alone (a colour scaled keeps it), so a table over
    (u, v) can follow it."""
    rgb = ops.from_log_chroma(np.ones_like(u), u, v).astype(np.float64)
    lab = np.cbrt(rgb @ np.asarray(ops.SRGB_TO_LMS).T) @ np.asarray(ops.LMS_ROOT_TO_OKLAB).T
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))
    distance = (hue - SKIN_HUE + 180.0) % 360.0 - 180.0
    return np.exp(-0.5 * (distance / SKIN_HUE_WIDTH) ** 2)


def chroma_scale(u: np.ndarray, v: np.ndarray, saturation: float, vibrance: float,
                 shape: VibranceShape = CURRENT_VIBRANCE) -> np.ndarray:
    """How much saturation and vibrance scale a chromaticity (u, v): uniformly (saturation) and mostly where it
    is low and not skin (vibrance, of the given ``shape``, see :class:`PhotofinishParams`)."""
    radius = np.sqrt(u**2 + v**2)
    falloff = np.exp(-radius / shape.reach)
    if shape.spares_skin and vibrance > 0.0:  # less vibrance takes colour from skin as from the rest
        falloff = falloff * (1.0 - shape.spares_skin * skin_weight(u, v))
    # in params 5's order of operations, so that their tables are the same to the last bit
    scale = (1.0 + saturation / 100.0) * (1.0 + (vibrance / 100.0) * shape.boost * falloff)
    return np.maximum(scale, 0.0)


def chroma_table(saturation: float, vibrance: float, shape: VibranceShape = CURRENT_VIBRANCE) -> np.ndarray:
    """Chroma table (1 x 2 x T x T) of :func:`chroma_scale`."""
    u, v = ops.chroma_table_grid(CHROMA_SIZE)
    scale = chroma_scale(u, v, saturation, vibrance, shape)
    return np.stack([(scale - 1.0) * u, (scale - 1.0) * v])[None].astype(np.float32)


class SaturationSplit(NamedTuple):
    """Where the saturation adjustment goes: the chroma table's scaling (params version 1, and more saturation
    before version 5), the factor of the ``colour`` operator (less saturation, versions 2 to 4) and the amount of
    the ``saturate`` operator (less and more, since version 5)."""

    table: float
    colour: float = 1.0
    saturate: float = 1.0


def split_saturation(saturation: float, around_luminance: bool = True, keep_hue: bool = True) -> SaturationSplit:
    """The saturation adjustment as the operators apply it.

    Since params version 5 saturation, less and more, scales each colour's Oklab chroma at its own hue
    (:func:`engine.operators_numpy.saturate`, ``keep_hue``); -100 is black and white for every colour. Before,
    more saturation scaled chroma in the table, which bent hues towards the primaries, and less mixed each colour
    with its grey in linear RGB (``colour``, versions 2 to 4), which bent oranges towards red and blues towards
    purple. Version 1 desaturated in the table alone (``around_luminance=False``), which reaches only
    chromaticities within its range (``CHROMA_RANGE``): a yellow flower or a red stage light kept most of its
    colour at -100.
    """
    if keep_hue and saturation:
        return SaturationSplit(0.0, saturate=1.0 + saturation / 100.0)
    if around_luminance and saturation < 0.0:
        return SaturationSplit(0.0, colour=1.0 + saturation / 100.0)
    return SaturationSplit(saturation)


def vibrance_shape(params: PhotofinishParams) -> VibranceShape:
    """The vibrance of ``params``'s version (:class:`VibranceShape`)."""
    return VibranceShape(params.vibrance_boost, params.vibrance_reach, params.vibrance_spares_skin)


def saturation_operators(split: SaturationSplit) -> dict[str, float]:
    """The ``saturate`` operator's parameter where the slider is not 0 (params version 5; none for earlier
    versions, so that their pinned parameters render as they did)."""
    return {"saturation": round(split.saturate, 4)} if split.saturate != 1.0 else {}


class Photofinish(Stage):
    """Fixed differentiable operators with parameters from the image and the user's adjustments."""

    name = "photofinish"
    implementation = "classical"
    Params = PhotofinishParams
    resolution = "low"  # the operators' parameters are decided, and applied, on a reduced copy
    encoding = "display"  # its gamma operator ends the linear part of the pipeline

    def params_from(self, recipe: Recipe) -> PhotofinishParams:
        return PhotofinishParams(
            style=recipe.style, strength=recipe.style_strength, exposure=recipe.exposure,
            auto_exposure=recipe.auto_exposure,
            contrast=recipe.contrast, highlights=recipe.highlights, shadows=recipe.shadows,
            saturation=recipe.saturation, vibrance=recipe.vibrance,
        )

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 desaturated in the chroma table alone (:func:`split_saturation`); versions 1 and 2 had a
        vibrance of shorter reach; versions 1 to 3 pulled a chroma move that left the gamut towards grey, and let
        the local tone map lift past white."""
        return migrate_photofinish(params, version)

    def check_style(self, style: str) -> None:
        """Refuse a style this implementation cannot render (the classical one knows only its own looks)."""
        if style not in CLASSICAL_LOOKS:
            raise RecipeError(f"unknown style {shown(style)} for the classical photofinish; known styles: "
                              f"{', '.join(sorted(CLASSICAL_LOOKS))} (the learned implementation has more)")

    def prepare(self, params: PhotofinishParams, ctx: Context) -> dict[str, Any]:
        if params.operators is None:
            self.check_style(params.style)
        return {"params": params}

    def operators_for(self, params: PhotofinishParams, low: np.ndarray, ctx: Context | None = None) -> dict[str, Any]:
        """Operator parameters for this image (JSON-ready); ``ctx`` says what earlier stages did to it."""
        look = CLASSICAL_LOOKS.get(params.style, CLASSICAL_LOOKS["natural"])
        k = params.strength

        def adj(name: str) -> float:
            return float(np.clip(getattr(params, name) + k * getattr(look, name), -100.0, 100.0))

        y = low @ np.array(LUMA, dtype=np.float32)
        # Exposure follows the brightest channel, not luminance: a saturated stage light is bright in its own
        # channel even where its luminance is low, and would otherwise be pushed into clipping.
        ev = (0.0 if only_noise(low) else auto_exposure(low.max(axis=2))) + params.exposure
        contrast = 1.0 + 0.35 * adj("contrast") / 100.0
        a, b = 1.0 * contrast, 1.15 * contrast
        knee = float(np.clip(0.75 + 0.2 * adj("highlights") / 100.0, 0.4, 0.95))
        saturation = split_saturation(adj("saturation"), params.saturation_around_luminance,
                                      params.saturation_keeps_hue)
        held = {}
        if params.lift_below_white:  # the sliders' lifts held below white, apart from the ease of contrast
            grid = local_tone_grid(y * 2.0**ev, 0.0, 0.0)
            held = {"local_tone_held": slider_grid(adj("shadows"), adj("highlights")).round(4).tolist()}
        else:
            grid = local_tone_grid(y * 2.0**ev, adj("shadows"), adj("highlights"))
        return {
            "gain_ev": round(ev, 4),
            "knee": round(knee, 4),
            "tone": [round(a, 4), round(b, 4), round(ops.tone_curve_midpoint(a, b), 6)],
            "local_tone": grid.round(4).tolist(),
            "chroma": chroma_table(saturation.table, adj("vibrance"), vibrance_shape(params)).round(4).tolist(),
            "gamma": 2.2,
            "colour": round(saturation.colour, 4),
            "stop_at_gamut": params.stop_at_gamut,
            **held,
            **saturation_operators(saturation),
        }

    def process(self, image: np.ndarray, data: dict[str, Any], ctx: Context) -> np.ndarray:
        params: PhotofinishParams = data["params"]
        operators = params.operators if params.operators is not None else self.operators_for(params, image, ctx)
        ctx.notes["photofinish"] = {"style": params.style, "operators": operators}
        from engine import kernels  # loaded by the pipeline already; here, so importing the stage loads no numba

        if not kernels.on_torch(ctx.device):  # the full-resolution stages' one switch (torch_everywhere included)
            return ops.apply(image, operators)
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(ctx.device)
            return apply_operators(x, operators, ctx.device)[0].permute(1, 2, 0).cpu().numpy()


def apply_operators(x: torch.Tensor, operators: dict[str, Any], device: str = "cpu") -> torch.Tensor:
    """Run the operator chain on N x 3 x H x W linear RGB with one set of (JSON-form) parameters: the torch form
    of :func:`engine.operators_numpy.apply` (training, ``--device cuda``)."""
    import torch

    from engine import operators as torch_ops

    def scalar(v: float) -> torch.Tensor:
        return torch.tensor([float(v)], device=device)

    a, b, c = operators["tone"]
    x = torch_ops.digital_gain(x, scalar(operators["gain_ev"]))
    x = torch_ops.highlight_shoulder(x, scalar(operators["knee"]))
    x = torch_ops.tone_curve(x, scalar(a), scalar(b), scalar(c))
    x = torch_ops.local_tone_map(x, torch.tensor(operators["local_tone"], device=device))
    if "local_tone_held" in operators:  # the user's shadows and highlights (photofinish params 4)
        x = torch_ops.local_tone_map(x, torch.tensor(operators["local_tone_held"], device=device), below_white=True)
    x = torch_ops.chroma_map(x, torch.tensor(operators["chroma"], device=device),
                             operators.get("stop_at_gamut", False))
    if "saturation" in operators:  # the slider, less or more, at each colour's hue (photofinish params 5)
        x = torch_ops.saturate(x, scalar(operators["saturation"]))
    if operators.get("colour", 1.0) != 1.0:  # absent in parameters pinned before it existed: all colour kept
        x = torch_ops.keep_colour(x, scalar(operators["colour"]))
    return torch_ops.gamma(x, scalar(operators["gamma"]))
