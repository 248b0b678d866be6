"""Measuring white balance: angular error on held-out cameras, and the greys of a real ColorChecker raw.

Computed set (:func:`engine.training.wb_data.test_set`): only the 3 held-out cameras, scenes from a seed no
training run uses, 3 renders per scene. For every sample each method estimates the camera neutral from the same
demosaiced image; the error is the angle between the estimate and the exact neutral, in camera RGB. Methods,
all in the same run:

- **learned**: the shipped estimator (:mod:`engine.models.illuminant`), what ``--wb auto`` uses;
- **gray-world**: the mean of the unclipped pixels;
- **white-patch**: the per-channel maximum of the unclipped pixels (max-RGB) of the 64 x 64 thumbnail (area
  averaging first keeps single noisy pixels from deciding);
- **shades-of-grey**: the engine's classical estimate (:func:`engine.stages.white_balance.estimate_neutral`,
  Minkowski p = 6), the previous ``--wb auto``.

Reported: mean, median, mean of the best 25 % and of the worst 25 %, per method, and the learned one's mean per
held-out camera.

Real raw (``../shared/rawsamples`` Canon 550D DNG, when present): the reference white is the camera response
to the chart's three lightest neutral patches (white, neutral 8, neutral 6.5 of the lower ColorChecker's bottom
row, each a 21 x 21 px box read from the demosaiced sensor data). Each method's estimate is scored by its angle
to that reference, and the image is rendered with that neutral pinned: the CIELAB chroma C*ab of the six neutral
patches says how grey the greys come out (0 is perfectly grey). The as-shot white balance (the file's
AsShotNeutral) is listed too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.models import illuminant
from engine.stages.white_balance import estimate_neutral as shades_of_grey
from engine.training import spectral_data, wb_data

RAWSAMPLES = Path(__file__).resolve().parents[3] / "shared" / "rawsamples"
CANON_550D = RAWSAMPLES / "canon_eos550d_magiclantern__tinydng_colorchart.dng"
# Centres of the lower ColorChecker's bottom (neutral) row, white to black, as fractions of the 1734 x 1156 image
# (read off a render, the same as tests/test_real_raws.py); patches are about 70 px wide.
NEUTRAL_X = (0.405, 0.469, 0.532, 0.595, 0.658, 0.723)
NEUTRAL_Y = 0.804
BOX = 10


def _unclipped(rgb: np.ndarray) -> np.ndarray:
    pixels = rgb.reshape(-1, 3)
    keep = (pixels.max(axis=1) < illuminant.CLIPPED) & (pixels.min(axis=1) > 0)
    return pixels[keep] if keep.sum() >= 16 else pixels


def _green_one(v: np.ndarray) -> np.ndarray:
    v = np.maximum(np.asarray(v, dtype=np.float64), 1e-9)
    return v / v[1]


def gray_world(rgb: np.ndarray) -> np.ndarray:
    """Mean of the unclipped pixels."""
    return _green_one(_unclipped(illuminant.thumbnail(rgb, 64)).mean(axis=0))


def white_patch(rgb: np.ndarray) -> np.ndarray:
    """Per-channel maximum of the unclipped pixels of a 64 x 64 thumbnail (max-RGB)."""
    return _green_one(_unclipped(illuminant.thumbnail(rgb, 64)).max(axis=0))


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two RGB vectors, degrees."""
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def summary(errors: np.ndarray) -> dict[str, float]:
    """Mean, median, best-25 % mean and worst-25 % mean of angular errors."""
    e = np.sort(np.asarray(errors, dtype=np.float64))
    q = max(1, len(e) // 4)
    return {"mean": float(e.mean()), "median": float(np.median(e)), "best25": float(e[:q].mean()),
            "worst25": float(e[-q:].mean())}


@dataclass
class WBResult:
    """Summaries per method on the computed set, the learned one's mean per camera, and the real-raw check."""

    computed: dict[str, dict[str, float]]
    per_camera: dict[str, float]
    samples: int
    canon: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds_per_megapixel: dict[str, float] = field(default_factory=dict)


def evaluate_computed(test: wb_data.WBSet, model: illuminant.IlluminantNet) -> tuple[dict, dict]:
    """Every method on the computed held-out-camera set."""
    with torch.inference_mode():
        uv = model(torch.from_numpy(test.hist))
        learned = illuminant.to_camera_neutral(uv.double(), torch.from_numpy(test.to_working)).numpy()
    errors: dict[str, list[float]] = {"learned": [], "gray-world": [], "white-patch": [], "shades-of-grey": []}
    for i, truth in enumerate(test.neutral):
        image = test.images[i]
        errors["learned"].append(angle(learned[i], truth))
        errors["gray-world"].append(angle(gray_world(image), truth))
        errors["white-patch"].append(angle(white_patch(image), truth))
        errors["shades-of-grey"].append(angle(shades_of_grey(image), truth))
    cameras = np.array(test.cameras)
    learned_errors = np.array(errors["learned"])
    per_camera = {c: float(learned_errors[cameras == c].mean()) for c in spectral_data.HELD_OUT_CAMERAS}
    return {m: summary(np.array(e)) for m, e in errors.items()}, per_camera


def _patch_means(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    y = round(NEUTRAL_Y * h)
    return np.array([image[y - BOX : y + BOX + 1, round(x * w) - BOX : round(x * w) + BOX + 1].reshape(-1, 3).mean(0)
                     for x in NEUTRAL_X])


def _lab_chroma(encoded: np.ndarray) -> np.ndarray:
    from engine.colour import SRGB, srgb_decode

    xyz = srgb_decode(np.asarray(encoded, np.float32)).astype(np.float64) @ SRGB.rgb_to_xyz.T
    t = xyz / (SRGB.rgb_to_xyz @ np.ones(3))
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.hypot(500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2]))


def evaluate_canon(path: Path = CANON_550D, log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """The Canon 550D chart (module docstring); empty when the file is absent."""
    import engine
    from engine.recipe import Recipe, StageSettings
    from engine.stages.base import Context
    from engine.stages.demosaic import Demosaic

    if not path.is_file():
        log(f"{path}: not present, real-raw check skipped")
        return {}
    source = engine.open(path)
    ctx = Context(source=source, recipe=Recipe())
    stage = Demosaic()
    rgb = stage.process(np.empty((0, 0, 3), np.float32), stage.prepare(stage.Params(), ctx), ctx)
    reference = _green_one(_patch_means(rgb)[:3].mean(axis=0))
    estimates = {
        "as-shot": _green_one(source.as_shot_neutral),
        "learned": illuminant.estimate_neutral(rgb, source.calibration),
        "gray-world": gray_world(rgb),
        "white-patch": white_patch(rgb),
        "shades-of-grey": shades_of_grey(rgb),
        "chart white (reference)": reference,
    }
    out = {}
    for method, neutral in estimates.items():
        recipe = Recipe(stages={"white_balance": StageSettings(params={"neutral": [float(v) for v in neutral]})})
        pixels = engine.render(source, recipe).pixels
        chroma = _lab_chroma(_patch_means(pixels))
        out[method] = {"neutral": [round(float(v), 4) for v in neutral],
                       "error_deg": round(angle(neutral, reference), 2),
                       "grey_chroma": [round(float(c), 1) for c in chroma]}
        log(f"Canon 550D {method}: {angle(neutral, reference):.2f} deg, grey chroma {np.round(chroma, 1).tolist()}")
    return out


def stage_speed(repeats: int = 3) -> dict[str, float]:
    """Seconds per megapixel of the white balance stage in a render of the bundled sample raw, with the learned
    estimate (``--wb auto``) and with as-shot (the best of ``repeats`` runs each)."""
    import engine

    source = engine.open(Path(engine.__file__).resolve().parent / "samples" / "hostplug_colorchecker.dng")
    megapixels = source.size[0] * source.size[1] / 1e6
    speed = {}
    for mode in ("auto", "as-shot"):
        seconds = min(engine.render(source, engine.Recipe(wb=mode)).timings["white_balance"] for _ in range(repeats))
        speed["learned" if mode == "auto" else mode] = round(seconds / megapixels, 3)
    return speed


def evaluate(scenes: int = 400, log: Callable[[str], None] = print, model: illuminant.IlluminantNet | None = None,
             canon: Path | None = CANON_550D) -> WBResult:
    """The whole measurement (module docstring)."""
    log(f"generating the held-out-camera test set ({scenes * 3} samples)")
    test = wb_data.test_set(scenes)
    computed, per_camera = evaluate_computed(test, model or illuminant.load())
    canon_result = evaluate_canon(canon, log) if canon else {}
    return WBResult(computed, per_camera, len(test.neutral), canon_result, stage_speed())


def metrics_of(result: WBResult) -> dict[str, Any]:
    """The manifest metrics of the estimator."""
    rounded = {m: {k: round(v, 2) for k, v in s.items()} for m, s in result.computed.items()}
    return {
        "test_set": f"engine.training.wb_data.test_set: {result.samples} computed raws of the held-out cameras "
                    f"{', '.join(spectral_data.HELD_OUT_CAMERAS)}",
        "angular_error_deg": rounded["learned"],
        "baselines_angular_error_deg": {m: s for m, s in rounded.items() if m != "learned"},
        "per_camera_mean_deg": {c: round(v, 2) for c, v in result.per_camera.items()},
        "canon_550d_colorchecker": result.canon,
        "stage_seconds_per_megapixel": result.seconds_per_megapixel,
    }


def table(result: WBResult) -> str:
    """Markdown tables of the computed-set errors and of the Canon 550D greys."""
    lines = [f"Held-out cameras ({', '.join(spectral_data.HELD_OUT_CAMERAS)}), {result.samples} computed raws, "
             "angular error in degrees:", "",
             "| method | mean | median | best 25 % | worst 25 % |", "|---|---|---|---|---|"]
    for m, s in result.computed.items():
        lines.append(f"| {m} | {s['mean']:.2f} | {s['median']:.2f} | {s['best25']:.2f} | {s['worst25']:.2f} |")
    lines += ["", "Learned, mean per held-out camera: "
              + ", ".join(f"{c} {v:.2f}" for c, v in result.per_camera.items())]
    lines += ["", "White balance stage, seconds per megapixel (CPU): "
              + ", ".join(f"{m} {v:.3f}" for m, v in result.seconds_per_megapixel.items())]
    if result.canon:
        lines += ["", "Canon 550D ColorChecker (real raw): error against the chart's white, and CIELAB chroma of the "
                  "six neutral patches (white to black) after rendering with that white balance:", "",
                  "| white balance | error, deg | grey chroma C*ab |", "|---|---|---|"]
        for m, r in result.canon.items():
            lines.append(f"| {m} | {r['error_deg']:.2f} | {', '.join(f'{c:.1f}' for c in r['grey_chroma'])} |")
    return "\n".join(lines)
