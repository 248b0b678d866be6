"""Stage 4, learned: each picture style's network predicts the photofinishing operators' parameters.

The network of every style named in the recipe (see :mod:`engine.styles` for blends and strength) reads a
thumbnail of the low-resolution linear image and predicts the operator parameters, in exactly the JSON form of
the classical implementation (:meth:`engine.stages.photofinish.Photofinish.operators_for`), so pinning, sidecars
and re-renders work alike. The styles' predictions are mixed, then the user's adjustments go on top the way the
classical stage applies them:

- exposure adds EV to ``gain_ev``;
- contrast scales the tone curve's ``a`` and ``b`` by ``1 + 0.35 contrast / 100``, and ``c`` is solved so the
  curve keeps the output of mid-grey (0.18);
- highlights move the knee by ``0.2 highlights / 100`` and, with shadows, add the classical stage's
  luminance-dependent log2 gains to the local tone grid;
- vibrance applies the classical chroma scaling to the chromaticity the style's table produces; saturation, less
  and more, scales each colour's Oklab chroma at its own hue after the table, as the classical stage does (before
  params version 5 more saturation went into the table and less scaled the style's ``colour``;
  :func:`engine.stages.photofinish.split_saturation`).

An adjustment left at 0 leaves the prediction untouched. A frame of nothing but sensor noise keeps its exposure as
shot (:func:`engine.stages.photofinish.only_noise`), as the classical stage does.

The networks run in numpy (:mod:`engine.models.photofinish_numpy`), so a render never imports torch;
:func:`load_network` gives the torch form, which training and evaluation use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from engine import operators_numpy as ops
from engine.colour import LUMA
from engine.models import build_network
from engine.models.photofinish_numpy import PhotofinishArrays, thumbnail, to_json
from engine.stages.base import Context
from engine.stages.demosaic import unprocessed_image
from engine.stages.photofinish import (
    CURRENT_VIBRANCE,
    Photofinish,
    PhotofinishParams,
    VibranceShape,
    chroma_scale,
    local_tone_grid,
    only_noise,
    saturation_operators,
    slider_grid,
    split_saturation,
    vibrance_shape,
)
from engine.styles import STYLES, parse_style, style_operators, styles_needed

if TYPE_CHECKING:
    from engine.models.photofinish_net import PhotofinishNet


def load_arrays(style: str) -> PhotofinishArrays:
    """The verified network of one style in its numpy form, what a render runs (loaded once;
    :class:`~engine.errors.ModelError` if its weights are missing or corrupt)."""
    return build_network(STYLES[style].model, PhotofinishArrays)


def load_network(style: str) -> PhotofinishNet:
    """The verified network of one style in its torch form, for training and evaluation (loaded once;
    :class:`~engine.errors.ModelError` if its weights are missing or corrupt)."""
    from engine.models.photofinish_net import PhotofinishNet

    return build_network(STYLES[style].model, PhotofinishNet)


def as_shot_gain(styles: list[str]) -> float:
    """The gain (EV) that renders a raw as shot: a raw-following style's fixed rendering gain (the camera's own
    placement of mid-grey), no gain for a style that meters; the mean over a blend's styles."""
    gains = [net.render_ev if net.exposure == "raw" else 0.0 for net in map(load_arrays, styles)]
    return float(np.mean(gains))


def predict(style: str, low: np.ndarray, auto_exposure: bool = False) -> dict[str, Any]:
    """One style's operator parameters (JSON form) for a low-resolution linear image (H x W x 3).

    ``auto_exposure`` meters the white point instead of following the raw's exposure; it changes only the
    networks that follow the raw (see :mod:`engine.models.photofinish_net`), the older ones always meter."""
    predicted = to_json(load_arrays(style)(thumbnail(low), auto_exposure=auto_exposure))
    return {**predicted, "colour": STYLES[style].colour}  # a fact of the style, not a prediction


def contrast_tone(tone: list[float], contrast: float, pivot: float = 0.18) -> list[float]:
    """Tone curve ``[a, b, c]`` with contrast applied: ``a``, ``b`` scaled, ``c`` keeping ``pivot``'s output."""
    a, b, c = tone
    k = 1.0 + 0.35 * contrast / 100.0
    level = float(ops.tone_curve(np.array([pivot], dtype=np.float32), a, b, c)[0])
    a2, b2 = a * k, b * k
    c2 = (pivot**a2 * (1.0 / level - 1.0)) ** (1.0 / b2) / (1.0 - pivot)
    return [round(a2, 4), round(b2, 4), round(c2, 6)]


def adjust_chroma(table: list, saturation: float, vibrance: float, shape: VibranceShape = CURRENT_VIBRANCE) -> list:
    """A style's chroma table (1 x 2 x T x T offsets) followed by the classical saturation/vibrance scaling
    (:func:`engine.stages.photofinish.chroma_scale`, at where each node's chromaticity goes, also beyond the
    table's range)."""
    t = np.asarray(table, dtype=np.float64)
    u, v = (g.astype(np.float64) for g in ops.chroma_table_grid(t.shape[-1]))
    out_u, out_v = u + t[0, 0], v + t[0, 1]  # where each node's chromaticity goes
    scale = chroma_scale(out_u, out_v, saturation, vibrance, shape)
    return np.stack([scale * out_u - u, scale * out_v - v])[None].round(4).tolist()


def apply_adjustments(operators: dict[str, Any], params: PhotofinishParams, low: np.ndarray) -> dict[str, Any]:
    """The user's adjustments on top of predicted operator parameters (see the module docstring)."""
    out = dict(operators)
    if params.exposure:
        out["gain_ev"] = round(out["gain_ev"] + params.exposure, 4)
    if params.contrast:
        out["tone"] = contrast_tone(out["tone"], params.contrast)
    if params.highlights:
        out["knee"] = round(float(np.clip(out["knee"] + 0.2 * params.highlights / 100.0, 0.05, 0.99)), 4)
    if (params.highlights or params.shadows) and params.lift_below_white:  # a grid of their own, held below white
        out["local_tone_held"] = slider_grid(params.shadows, params.highlights).round(4).tolist()
    elif params.highlights or params.shadows:  # photofinish params before 4: added to the style's grid, as then
        y = (low @ np.array(LUMA, dtype=np.float32)) * np.float32(2.0 ** out["gain_ev"])
        delta = local_tone_grid(y, params.shadows, params.highlights) - local_tone_grid(y, 0.0, 0.0)
        out["local_tone"] = (np.asarray(out["local_tone"], dtype=np.float32) + delta).round(4).tolist()
    saturation = split_saturation(params.saturation, params.saturation_around_luminance,
                                  params.saturation_keeps_hue)
    if saturation.table or params.vibrance:
        out["chroma"] = adjust_chroma(out["chroma"], saturation.table, params.vibrance, vibrance_shape(params))
    if saturation.colour != 1.0:
        out["colour"] = round(out.get("colour", 1.0) * saturation.colour, 4)
    out["stop_at_gamut"] = params.stop_at_gamut
    return {**out, **saturation_operators(saturation)}


def _rounded(operators: dict[str, Any]) -> dict[str, Any]:
    """Blended parameters rounded like a single prediction (so a pinned re-render is bit-identical)."""
    return {
        "gain_ev": round(operators["gain_ev"], 4),
        "knee": round(operators["knee"], 4),
        "tone": [round(operators["tone"][0], 4), round(operators["tone"][1], 4), round(operators["tone"][2], 6)],
        "local_tone": np.asarray(operators["local_tone"], dtype=np.float64).round(4).tolist(),
        "chroma": np.asarray(operators["chroma"], dtype=np.float64).round(4).tolist(),
        "gamma": round(operators["gamma"], 4),
        "colour": round(operators["colour"], 4),
    }


class LearnedPhotofinish(Photofinish):
    """Operators with parameters predicted by each picture style's network, plus the user's adjustments."""

    implementation = "learned"

    def check_style(self, style: str) -> None:
        """Refuse an unknown style or a malformed blend (one line listing the known styles)."""
        parse_style(style)

    def prepare(self, params: PhotofinishParams, ctx: Context) -> dict[str, Any]:
        if params.operators is None:
            for style in styles_needed(params.style, params.strength):
                load_arrays(style)  # fail before any pixel work when a model is missing or corrupt
        return {"params": params}

    def operators_for(self, params: PhotofinishParams, low: np.ndarray, ctx: Context | None = None) -> dict[str, Any]:
        """Operator parameters for this image (JSON-ready). An image input unprocessed by the first stage (a JPEG,
        PNG or TIFF: its camera or editor exposed it already) keeps its exposure as shot, as a frame of only noise
        does, unless the photographer asks to meter it (``auto_exposure``)."""
        parse_style(params.style)
        auto = bool(getattr(params, "auto_exposure", False))  # a per-render setting, where the recipe has it
        predicted = {style: predict(style, low, auto) for style in styles_needed(params.style, params.strength)}
        mixed = style_operators(predicted, params.style, params.strength)
        if only_noise(low) or (unprocessed_image(ctx) and not auto):  # nothing to meter, or metered already
            mixed = {**mixed, "gain_ev": as_shot_gain(list(predicted))}
        single = len(predicted) == 1
        return apply_adjustments(mixed if single else _rounded(mixed), params, low)
