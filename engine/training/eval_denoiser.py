"""Measuring the denoisers on held-out images: PSNR at ISO 800, 3200 and 12800, and time per megapixel.

Test images: :func:`engine.training.denoise_data.test_images` (3 held-out photographs x the 3 held-out cameras,
brightest channel at half of sensor white). Noise: the per-ISO model of :func:`engine.synthetic.noise_profile`
through :func:`engine.training.raw_noise.noisy_pair` (mosaic, Poisson-Gaussian noise, 14 bits, the engine's
demosaic with the median passes a render makes), seeded per image and ISO. Every method gets the same noisy image:

- **none**: the noisy image as it is;
- **classical**: the engine's :class:`~engine.stages.denoise.ClassicalDenoise` at its automatic strength for the
  ISO (what a render does by default);
- **opencv-nlm**: ``cv2.fastNlMeansDenoisingColored`` on an 8-bit encoding (white balanced, divided by the
  image scale, sRGB-encoded; decoded back afterwards), with ``h = hColor = max(1, k * median noise sigma)`` in
  8-bit encoded units, ``k`` picked per ISO from :data:`NLM_FACTORS` for the best PSNR on *training*
  photographs (astronaut, coffee; never the test ones), search window 21, patch 7;
- **learned-lite** / **learned-base**: the shipped networks, conditioned on the same per-ISO noise model, run
  tiled exactly as the stage runs them.

PSNR is measured twice: **linear**, on camera RGB divided by the image scale (peak 1), and **rendered**, on the
sRGB image the un-processing's forward pipeline makes of it (white balance, colour matrix, tone curve, sRGB
encoding), the one a viewer sees. Time per megapixel is measured on a 1-megapixel image (1024 x 1024) on the
device given, best of two runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import cast

import cv2
import numpy as np

from engine.colour import srgb_decode, srgb_encode
from engine.io.noise_level import from_iso
from engine.models import denoise_tiles, denoiser
from engine.stages.base import Context
from engine.stages.denoise import ClassicalDenoise, auto_strength
from engine.training import denoise_data, raw_noise, spectral_data, synthetic, unprocess

ISOS = (800, 3200, 12800)
NLM_FACTORS = (0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float(10.0 * np.log10(peak * peak / max(mse, 1e-20)))


def classical(noisy: np.ndarray, iso: float, neutral: np.ndarray) -> np.ndarray:
    """The engine's classical denoiser at its automatic strength."""
    data = {"strength": auto_strength(iso, None) / 100.0, "neutral": neutral}
    ctx = cast(Context, SimpleNamespace(device="cpu"))  # its process reads only the device from the context
    return ClassicalDenoise().process(noisy.copy(), data, ctx)


def nlm(noisy: np.ndarray, neutral: np.ndarray, iso: float, factor: float) -> np.ndarray:
    """OpenCV non-local means on the 8-bit encoding of the module docstring."""
    balanced = noisy / neutral
    scale = denoiser.image_scale(balanced)
    encoded = srgb_encode(np.clip(balanced / scale, 0.0, 1.0))
    model = from_iso(iso)
    linear_sigma = model.sigma(np.clip(noisy, 0.0, None)) / neutral / scale
    slope = np.gradient(srgb_encode(np.linspace(0, 1, 4097)), 1 / 4096)
    level = np.clip((balanced / scale * 4096).astype(int), 0, 4096)
    encoded_sigma = float(np.median(linear_sigma * slope[level])) * 255.0
    h = max(1.0, factor * encoded_sigma)
    bgr = (encoded[..., ::-1] * 255.0 + 0.5).astype(np.uint8)
    out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)
    return (srgb_decode(out[..., ::-1].astype(np.float32) / 255.0) * scale * neutral).astype(np.float32)


def learned(model: denoiser.Denoiser, noisy: np.ndarray, iso: float, device: str = "cpu") -> np.ndarray:
    """The learned denoiser as the stage runs it (per-ISO noise model, in bands), on a copy of ``noisy``."""
    return denoise_tiles.denoise_image(model, noisy.copy(), from_iso(iso), device=device)


def noisy_version(image: denoise_data.TestImage, iso: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) demosaiced camera RGB of a test image at ``iso``."""
    shot, read = synthetic.noise_profile(iso)
    return raw_noise.noisy_pair(image.rgb, image.plan.neutral, shot, read, np.random.default_rng(seed))


def tune_nlm(log: Callable[[str], None] = print) -> dict[int, float]:
    """The NLM factor per ISO that gives the best linear PSNR on training photographs (module docstring)."""
    rng = np.random.default_rng(7)
    tuning = []
    for name in ("astronaut.png", "coffee.png"):
        photo = denoise_data._photo(name, True)
        camera = spectral_data.TRAINING_CAMERAS[rng.integers(len(spectral_data.TRAINING_CAMERAS))]
        spd = synthetic.illuminant("D65")
        unit = unprocess.plan(camera, spd)
        peak = float(np.percentile(unprocess.to_camera(photo, unit).max(axis=-1), 99.5))
        plan = unprocess.plan(camera, spd, "D65", 0.5, peak)
        h, w = (photo.shape[0] // 2) * 2, (photo.shape[1] // 2) * 2
        tuning.append(denoise_data.TestImage(name, unprocess.unprocess(photo[:h, :w], plan), plan))
    best: dict[int, float] = {}
    for iso in ISOS:
        scores: dict[float, float] = {}
        for factor in NLM_FACTORS:
            values = []
            for k, image in enumerate(tuning):
                noisy, clean = noisy_version(image, iso, 100 + k)
                scale = denoiser.image_scale(clean)
                values.append(psnr(nlm(noisy, image.plan.neutral, iso, factor) / scale, clean / scale))
            scores[factor] = float(np.mean(values))
        best[iso] = max(scores, key=lambda factor: scores[factor])
        log(f"NLM tuning ISO {iso}: " + ", ".join(f"k={k:g}: {v:.2f} dB" for k, v in scores.items()))
    return best


TEST_SET = "engine.training.denoise_data.test_images (held-out photographs x held-out cameras)"
NOISE_SEED = "1000 x ISO + image index"  # each test image's noise at each ISO (numpy's default_rng)


@dataclass
class DenoiseResult:
    """PSNR per method and ISO (mean over the test images), and seconds per megapixel per method."""

    linear: dict[str, dict[int, float]]
    rendered: dict[str, dict[int, float]]
    seconds_per_mp: dict[str, float]


def _learned_method(model: denoiser.Denoiser, device: str, x: np.ndarray, image: denoise_data.TestImage,
                    iso: int) -> np.ndarray:
    return learned(model, x, iso, device)


def evaluate(models: dict[str, denoiser.Denoiser], device: str = "cpu",
             log: Callable[[str], None] = print, isos: tuple[int, ...] = ISOS, nlm_baseline: bool = True,
             timing: bool = True) -> DenoiseResult:
    """Run every method on every test image at every ISO (module docstring); ``isos`` other than :data:`ISOS`
    and no NLM baseline (it is tuned at :data:`ISOS` only) for the gain-by-ISO measurement."""
    images = denoise_data.test_images()
    methods: dict[str, Callable[[np.ndarray, denoise_data.TestImage, int], np.ndarray]] = {
        "none": lambda x, im, iso: x,
        "classical": lambda x, im, iso: classical(x, iso, im.plan.neutral),
    }
    if nlm_baseline:
        factors = tune_nlm(log)
        methods["opencv-nlm"] = lambda x, im, iso: nlm(x, im.plan.neutral, iso, factors[iso])
    for name, model in models.items():
        methods[name] = partial(_learned_method, model, device)
    linear: dict[str, dict[int, float]] = {m: {} for m in methods}
    rendered: dict[str, dict[int, float]] = {m: {} for m in methods}
    for iso in isos:
        scores_lin: dict[str, list[float]] = {m: [] for m in methods}
        scores_ren: dict[str, list[float]] = {m: [] for m in methods}
        for k, image in enumerate(images):
            noisy, clean = noisy_version(image, iso, 1000 * iso + k)  # NOISE_SEED
            scale = denoiser.image_scale(clean)
            clean_render = unprocess.process(clean, image.plan)
            for m, run in methods.items():
                out = run(noisy, image, iso)
                scores_lin[m].append(psnr(out / scale, clean / scale))
                scores_ren[m].append(psnr(unprocess.process(out, image.plan), clean_render))
        for m in methods:
            linear[m][iso] = float(np.mean(scores_lin[m]))
            rendered[m][iso] = float(np.mean(scores_ren[m]))
        log(f"ISO {iso}: " + ", ".join(f"{m} {linear[m][iso]:.2f}/{rendered[m][iso]:.2f} dB" for m in methods))
    seconds = time_per_megapixel(methods, images[3], device) if timing else {}
    return DenoiseResult(linear, rendered, seconds)


def time_per_megapixel(methods, image: denoise_data.TestImage, device: str) -> dict[str, float]:
    """Seconds per megapixel of each method on a 1024 x 1024 image (best of two runs)."""
    reps = (int(np.ceil(1024 / image.rgb.shape[0])), int(np.ceil(1024 / image.rgb.shape[1])), 1)
    big = denoise_data.TestImage(image.name, np.tile(image.rgb, reps)[:1024, :1024].copy(), image.plan)
    noisy, _ = noisy_version(big, 3200, 5)
    out = {}
    for m, run in methods.items():
        if m == "none":
            continue
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            run(noisy, big, 3200)
            best = min(best, time.perf_counter() - start)
        out[m] = best / (1024 * 1024 / 1e6)
    return out


def table(result: DenoiseResult) -> str:
    """A Markdown table of PSNR (linear / rendered) and gain over no denoising, plus time per MP."""
    isos = list(result.linear["none"])
    lines = ["Each cell: PSNR linear / rendered, dB (gain over none: linear / rendered); s / MP: seconds per "
             "megapixel.", "",
             "| method | " + " | ".join(f"ISO {iso} PSNR (gain), dB" for iso in isos) + " | s / MP |",
             "|---|" + "---|" * (len(isos) + 1)]
    for m in result.linear:
        cells = []
        for iso in isos:
            lin, ren = result.linear[m][iso], result.rendered[m][iso]
            gl, gr = lin - result.linear["none"][iso], ren - result.rendered["none"][iso]
            cells.append(f"{lin:.2f} / {ren:.2f} ({gl:+.2f} / {gr:+.2f})")
        speed = result.seconds_per_mp.get(m)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {'-' if speed is None else f'{speed:.2f}'} |")
    return "\n".join(lines)


def metrics_of(result: DenoiseResult, method: str, device: str) -> dict:
    """The manifest metrics of one learned method: PSNR and gain per ISO, baselines, time per megapixel."""
    import platform

    from engine.training.loop import machine

    return {
        "test_set": TEST_SET,
        "psnr_linear_db": {str(iso): round(v, 2) for iso, v in result.linear[method].items()},
        "psnr_rendered_db": {str(iso): round(v, 2) for iso, v in result.rendered[method].items()},
        "gain_linear_db": {str(iso): round(v - result.linear["none"][iso], 2)
                           for iso, v in result.linear[method].items()},
        "gain_rendered_db": {str(iso): round(v - result.rendered["none"][iso], 2)
                             for iso, v in result.rendered[method].items()},
        "baselines_linear_db": {m: {str(iso): round(v, 2) for iso, v in per.items()}
                                for m, per in result.linear.items() if not m.startswith("learned")},
        "seconds_per_megapixel": round(result.seconds_per_mp[method], 3),
        "demosaic_false_colour_passes": raw_noise.FALSE_COLOUR_PASSES,
        "device": device,
        "machine": machine() if device == "cuda" else f"cpu ({platform.machine()}, shared 2-core machine)",
    }


BY_ISO = (100, 200, 400, 800, 1600, 3200, 6400, 12800)
PAYS_DB = 1.0  # the learned denoiser "pays" where it beats the classical one by this much (linear PSNR)


def gain_by_iso(model: denoiser.Denoiser, name: str, device: str = "cpu",
                log: Callable[[str], None] = print) -> dict:
    """Where the learned denoiser pays: per ISO of :data:`BY_ISO`, the linear PSNR gain over no denoising of the
    classical denoiser (at its automatic strength) and of ``model``, their difference, and the seconds per
    megapixel of each; ``learned_from_iso`` is the lowest ISO from which the learned one is ahead by at least
    :data:`PAYS_DB` at every ISO up (None when it never is)."""
    result = evaluate({name: model}, device, log, isos=BY_ISO, nlm_baseline=False)
    rows = {}
    for iso in BY_ISO:
        none = result.linear["none"][iso]
        rows[str(iso)] = {"classical_gain_db": round(result.linear["classical"][iso] - none, 2),
                          "learned_gain_db": round(result.linear[name][iso] - none, 2),
                          "learned_over_classical_db": round(result.linear[name][iso]
                                                             - result.linear["classical"][iso], 2)}
    ahead = [float(iso) for iso in BY_ISO if rows[str(iso)]["learned_over_classical_db"] >= PAYS_DB]
    learned_from = None
    for iso in reversed(BY_ISO):
        if float(iso) not in ahead:
            break
        learned_from = float(iso)
    return {"by_iso": rows, "pays_db": PAYS_DB, "learned_from_iso": learned_from,
            "seconds_per_megapixel": {m: round(v, 3) for m, v in result.seconds_per_mp.items()}}
