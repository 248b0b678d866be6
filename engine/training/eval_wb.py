"""Measuring white balance: angular error on held-out cameras, and the greys of a real ColorChecker raw.

Computed set (:func:`engine.training.wb_data.test_set`): only the 3 held-out cameras, scenes from a seed no
training run uses, 3 renders per scene. For every sample each method estimates the camera neutral from the same
demosaiced image (demosaiced as a render demosaics, median passes included); the error is the angle between the
estimate and the exact neutral, in camera RGB. Methods, all in the same run:

- **learned**: the shipped estimator (:mod:`engine.models.illuminant`), what ``--wb auto`` uses;
- **gray-world**: the mean of the unclipped pixels;
- **white-patch**: the per-channel maximum of the unclipped pixels (max-RGB) of the 64 x 64 thumbnail (area
  averaging first keeps single noisy pixels from deciding);
- **shades-of-grey**: the engine's classical estimate (:func:`engine.stages.white_balance.estimate_neutral`,
  Minkowski p = 6), the previous ``--wb auto``.

Photo set (:func:`engine.training.wb_data.photo_test_set`, when ``../shared/photos`` is present): every
photograph of the held-out *photo* cameras (23 of 113, seeded split in :mod:`engine.training.wb_data`), 12 lights
each, unprocessed for the 3 held-out *spectral* cameras only: real scene content no training run saw, through
sensors no training run saw. The baselines read a 64 x 64 thumbnail in which any pixel holding a clipped sensor
pixel counts as clipped (:func:`engine.training.wb_data.baseline_thumbnail`). It is reported whole and, apart,
for its **neutral references** only: the photographs whose own neutral is grey
(:func:`engine.training.wb_data.is_neutral_reference`), since ``--wb auto`` serves a neutral rendering and a
JPEG that kept its light warm is no measure of that.

Reported: mean, median, mean of the best 25 % and of the worst 25 % of the angular error, per method, and the
learned one's mean per held-out camera; and the **grey chroma**: the six ColorChecker greys (flat reflectors of
luminance :data:`GREY_LUMINANCE`, white to black) lit by the sample's light and rendered with each method's
estimate through the camera's own calibration
(:func:`engine.calibration.balanced_camera_to_linear_srgb` at the estimate's white), as CIELAB C*ab against
D65, averaged over the six patches and the samples (:func:`grey_chroma`). It is 0 for a perfect estimate; it
leaves out everything but the white balance (no tone curve, no style). Speeds: the white balance stage in a
render (installed weights) and the estimate alone (the model measured).

Two-light set (:func:`engine.training.wb_data.two_light_test_set`): the held-out photo cameras' neutral
references, 6 renders each, the subject (a soft ellipse about the middle) under one light and the surroundings
under another, through the held-out spectral cameras; the target is the subject's light.

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
from engine.training.wb_data import angle

RAWSAMPLES = Path(__file__).resolve().parents[3] / "shared" / "rawsamples"
CANON_550D = RAWSAMPLES / "canon_eos550d_magiclantern__tinydng_colorchart.dng"
# Centres of the lower ColorChecker's bottom (neutral) row, white to black, as fractions of the 1734 x 1156 image
# (read off a render, the same as tests/test_real_raws.py); patches are about 70 px wide.
NEUTRAL_X = (0.405, 0.469, 0.532, 0.595, 0.658, 0.723)
NEUTRAL_Y = 0.804
BOX = 10
# Luminance Y of the ColorChecker's six neutral patches, white to black (L* 96.5, 81.3, 66.8, 50.9, 35.7, 20.5).
PHOTO_RENDERS = 12  # lights per held-out photograph in the photo test set
GREY_LUMINANCE = np.array([0.9105, 0.5898, 0.3623, 0.1921, 0.0886, 0.0310])


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


def summary(errors: np.ndarray) -> dict[str, float]:
    """Mean, median, best-25 % mean and worst-25 % mean of angular errors."""
    e = np.sort(np.asarray(errors, dtype=np.float64))
    q = max(1, len(e) // 4)
    return {"mean": float(e.mean()), "median": float(np.median(e)), "best25": float(e[:q].mean()),
            "worst25": float(e[-q:].mean())}


@dataclass
class WBResult:
    """Summaries per method on the computed set and on the photo set, the learned one's mean per camera, the
    real-raw check and speeds."""

    computed: dict[str, dict[str, float]]
    per_camera: dict[str, float]
    samples: int
    canon: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds_per_megapixel: dict[str, float] = field(default_factory=dict)
    photos: dict[str, dict[str, float]] = field(default_factory=dict)
    photo_per_camera: dict[str, float] = field(default_factory=dict)
    photo_samples: int = 0
    photo_cameras: tuple[str, ...] = ()
    photo_neutral: dict[str, dict[str, float]] = field(default_factory=dict)  # the neutral references only
    photo_neutral_samples: int = 0
    two_light: dict[str, dict[str, float]] = field(default_factory=dict)  # subject and surroundings lit apart
    two_light_samples: int = 0


def grey_chroma(estimate: np.ndarray, truth: np.ndarray, calibration) -> float:
    """Mean CIELAB C*ab of the six ColorChecker greys rendered with ``estimate`` where ``truth`` is the scene's
    camera neutral (module docstring): 0 when the estimate is right."""
    from engine.calibration import balanced_camera_to_linear_srgb, neutral_to_xy

    estimate = _green_one(estimate)
    matrix = balanced_camera_to_linear_srgb(calibration, estimate, neutral_to_xy(calibration, estimate))
    white = matrix @ (_green_one(truth) / estimate)  # linear sRGB of a perfect white, (1, 1, 1) when right
    greys = np.outer(GREY_LUMINANCE, white / white[1])
    return float(_lab_chroma_linear(greys).mean())


def _lab_chroma_linear(linear: np.ndarray) -> np.ndarray:
    lab = wb_data.linear_to_lab(linear)
    return np.hypot(lab[..., 1], lab[..., 2])


def learned_neutrals(test: wb_data.WBSet, model: illuminant.IlluminantNet) -> np.ndarray:
    """The estimator's camera neutrals for every sample of a set."""
    with torch.inference_mode():
        uv = model(torch.from_numpy(test.hist[:, : illuminant.inputs_of(model)]))
        return illuminant.to_camera_neutral(uv.double(), torch.from_numpy(test.to_working)).numpy()


def evaluate_computed(test: wb_data.WBSet, model: illuminant.IlluminantNet,
                      cameras: tuple[str, ...] = spectral_data.HELD_OUT_CAMERAS) -> tuple[dict, dict]:
    """Every method on a held-out-camera set: angular error summaries, each with ``grey_chroma`` (the mean
    C*ab of the rendered greys, :func:`grey_chroma`), and the learned one's mean error per camera."""
    learned = learned_neutrals(test, model)
    methods = ("learned", "gray-world", "white-patch", "shades-of-grey")
    errors: dict[str, list[float]] = {m: [] for m in methods}
    chroma: dict[str, list[float]] = {m: [] for m in methods}
    images = test.images
    for i, truth in enumerate(test.neutral):
        if images is None:
            raise ValueError("evaluate_computed needs a set with its images kept (keep_images=True)")
        image = images[i]
        calibration = spectral_data.calibration(test.cameras[i])
        estimates = {"learned": learned[i], "gray-world": gray_world(image), "white-patch": white_patch(image),
                     "shades-of-grey": shades_of_grey(image)}
        for m, estimate in estimates.items():
            errors[m].append(angle(estimate, truth))
            chroma[m].append(grey_chroma(estimate, truth, calibration))
    names = np.array(test.cameras)
    learned_errors = np.array(errors["learned"])
    per_camera = {c: float(learned_errors[names == c].mean()) for c in cameras}
    return {m: {**summary(np.array(e)), "grey_chroma": float(np.mean(chroma[m])),
                "grey_chroma_median": float(np.median(chroma[m]))} for m, e in errors.items()}, per_camera


def _patch_means(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    y = round(NEUTRAL_Y * h)
    return np.array([image[y - BOX : y + BOX + 1, round(x * w) - BOX : round(x * w) + BOX + 1].reshape(-1, 3).mean(0)
                     for x in NEUTRAL_X])


def _lab_chroma(encoded: np.ndarray) -> np.ndarray:
    from engine.colour import srgb_decode

    return _lab_chroma_linear(srgb_decode(np.asarray(encoded, np.float32)))


def evaluate_canon(path: Path = CANON_550D, log: Callable[[str], None] = print,
                   model: illuminant.IlluminantNet | None = None) -> dict[str, dict[str, Any]]:
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
        "learned": illuminant.estimate_neutral(rgb, source.calibration, model),
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
             canon: Path | None = CANON_550D, photo_renders: int = PHOTO_RENDERS) -> WBResult:
    """The whole measurement (module docstring); the photo set is skipped (with a line) when ../shared/photos
    is absent."""
    model = model or illuminant.load()
    log(f"generating the held-out-camera test set ({scenes * 3} samples)")
    test = wb_data.test_set(scenes)
    computed, per_camera = evaluate_computed(test, model)
    photos: dict[str, dict[str, float]] = {}
    photo_neutral: dict[str, dict[str, float]] = {}
    references = None
    photo_per_camera: dict[str, float] = {}
    photo_samples = 0
    photo_cameras: tuple[str, ...] = ()
    two_light: dict[str, dict[str, float]] = {}
    two_light_samples = 0
    try:
        photo_cameras = wb_data.photo_split()[1]
        log(f"generating the held-out photo test set ({photo_renders} lights per photograph of "
            f"{len(photo_cameras)} held-out photo cameras)")
        photo_test = wb_data.photo_test_set(photo_renders)
        photos, photo_per_camera = evaluate_computed(photo_test, model)
        photo_samples = len(photo_test.neutral)
        references = wb_data.subset(photo_test, [wb_data.is_neutral_reference(Path(s)) for s in photo_test.sources])
        photo_neutral, _ = evaluate_computed(references, model)
        log("generating the held-out two-light test set")
        two_light_test = wb_data.two_light_test_set(photo_renders // 2)
        two_light, _ = evaluate_computed(two_light_test, model)
        two_light_samples = len(two_light_test.neutral)
    except wb_data.PhotosMissingError as e:
        log(f"{e}: photo test set skipped")
    canon_result = evaluate_canon(canon, log, model) if canon else {}
    speed = {**stage_speed(), "learned estimator alone": estimator_speed(model)}
    return WBResult(computed, per_camera, len(test.neutral), canon_result, speed, photos, photo_per_camera,
                    photo_samples, photo_cameras, photo_neutral, len(references.neutral) if references else 0,
                    two_light, two_light_samples)


def estimator_speed(model: illuminant.IlluminantNet, repeats: int = 3) -> float:
    """Seconds per megapixel of the estimate alone (histograms and network) on the bundled sample raw's
    demosaiced camera RGB, the best of ``repeats``: this also times a model that is not the installed one."""
    import time

    import engine
    from engine.recipe import Recipe
    from engine.stages.base import Context
    from engine.stages.demosaic import Demosaic

    source = engine.open(Path(engine.__file__).resolve().parent / "samples" / "hostplug_colorchecker.dng")
    ctx = Context(source=source, recipe=Recipe())
    stage = Demosaic()
    rgb = stage.process(np.empty((0, 0, 3), np.float32), stage.prepare(stage.Params(), ctx), ctx)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        illuminant.estimate_neutral(rgb, source.calibration, model)
        best = min(best, time.perf_counter() - start)
    return round(best / (rgb.shape[0] * rgb.shape[1] / 1e6), 3)


def _rounded(summaries: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Every method's summary figures to two decimals (for the manifest)."""
    return {m: {k: round(v, 2) for k, v in s.items()} for m, s in summaries.items()}


def metrics_of(result: WBResult) -> dict[str, Any]:
    """The manifest metrics of the estimator."""
    rounded = _rounded(result.computed)
    metrics = {
        "test_set": f"engine.training.wb_data.test_set: {result.samples} computed raws of the held-out cameras "
                    f"{', '.join(spectral_data.HELD_OUT_CAMERAS)}",
        "angular_error_deg": rounded["learned"],
        "baselines_angular_error_deg": {m: s for m, s in rounded.items() if m != "learned"},
        "per_camera_mean_deg": {c: round(v, 2) for c, v in result.per_camera.items()},
        "canon_550d_colorchecker": result.canon,
        "stage_seconds_per_megapixel": result.seconds_per_megapixel,
    }
    if result.photos:
        photos = _rounded(result.photos)
        metrics["photo_test_set"] = (f"engine.training.wb_data.photo_test_set: {result.photo_samples} photographs of "
                                     f"the {len(result.photo_cameras)} held-out photo cameras under random lights, "
                                     "seen by the held-out spectral cameras")
        metrics["photo_angular_error_deg"] = photos
        metrics["photo_per_camera_mean_deg"] = {c: round(v, 2) for c, v in result.photo_per_camera.items()}
        metrics["photo_neutral_references"] = (f"the {result.photo_neutral_samples} samples of the photo test set "
                                               "whose photograph's own neutral is grey "
                                               "(engine.training.wb_data.is_neutral_reference)")
        metrics["photo_neutral_angular_error_deg"] = _rounded(result.photo_neutral)
    if result.two_light:
        metrics["two_light_test_set"] = (f"engine.training.wb_data.two_light_test_set: {result.two_light_samples} "
                                         "neutral photographs of the held-out photo cameras, the subject in the "
                                         "middle under one light and the rest under another (target: the "
                                         "subject's light), seen by the held-out spectral cameras")
        metrics["two_light_angular_error_deg"] = _rounded(result.two_light)
    return metrics


def _method_table(summaries: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| method | mean | median | best 25 % | worst 25 % | grey C*ab mean | grey C*ab median |",
             "|---|---|---|---|---|---|---|"]
    for m, s in summaries.items():
        lines.append(f"| {m} | {s['mean']:.2f} | {s['median']:.2f} | {s['best25']:.2f} | {s['worst25']:.2f} | "
                     f"{s.get('grey_chroma', float('nan')):.2f} | {s.get('grey_chroma_median', float('nan')):.2f} |")
    return lines


def table(result: WBResult) -> str:
    """Markdown tables of the computed-set and photo-set errors and of the Canon 550D greys."""
    lines = [f"Held-out cameras ({', '.join(spectral_data.HELD_OUT_CAMERAS)}), {result.samples} computed raws, "
             "angular error in degrees and the mean CIELAB chroma of the six ColorChecker greys rendered with "
             "each estimate (0 = grey):", ""]
    lines += _method_table(result.computed)
    lines += ["", "Learned, mean per held-out camera: "
              + ", ".join(f"{c} {v:.2f}" for c, v in result.per_camera.items())]
    if result.photos:
        lines += ["", f"Held-out photo cameras ({len(result.photo_cameras)}, photographs of ../shared/photos) under "
                  f"random lights, seen by the held-out spectral cameras, {result.photo_samples} samples:", ""]
        lines += _method_table(result.photos)
        lines += ["", "Learned, mean per held-out spectral camera: "
                  + ", ".join(f"{c} {v:.2f}" for c, v in result.photo_per_camera.items())]
        lines += ["", f"The same, only the photographs whose own neutral is grey (within C*ab {wb_data.NEUTRAL_CAST}: "
                  f"the camera balanced them neutral), {result.photo_neutral_samples} samples:", ""]
        lines += _method_table(result.photo_neutral)
    if result.two_light:
        lines += ["", f"Neutral photographs of the held-out photo cameras with the subject (a soft ellipse about the "
                  f"middle) under one light and the rest under another; target: the subject's light; "
                  f"{result.two_light_samples} samples:", ""]
        lines += _method_table(result.two_light)
    lines += ["", "White balance stage, seconds per megapixel (CPU): "
              + ", ".join(f"{m} {v:.3f}" for m, v in result.seconds_per_megapixel.items())]
    if result.canon:
        lines += ["", "Canon 550D ColorChecker (real raw): error against the chart's white, and CIELAB chroma of the "
                  "six neutral patches (white to black) after rendering with that white balance:", "",
                  "| white balance | error, deg | grey chroma C*ab | mean |", "|---|---|---|---|"]
        for m, r in result.canon.items():
            lines.append(f"| {m} | {r['error_deg']:.2f} | {', '.join(f'{c:.1f}' for c in r['grey_chroma'])} | "
                         f"{np.mean(r['grey_chroma']):.2f} |")
    return "\n".join(lines)
