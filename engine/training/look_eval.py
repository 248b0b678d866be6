"""Measuring the look models: image metrics, held-out style targets, the whole pipeline, camera renderings, speed.

Metrics (all on sRGB-encoded images in [0, 1], compared at the reference's size):

- PSNR in dB over all channels;
- SSIM (scikit-image, on the three channels, data range 1);
- mean CIEDE2000 (colour-science), after sRGB -> XYZ (D65) -> CIELAB.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.training.look_data import TEST_PHOTOS, Photo, load_photos, whole_image
from engine.training.style_targets import style_target

EVAL_LONG_EDGE = 384
EVAL_EVS = (-2.0, -1.0, 0.0)  # input exposures of the held-out photographs (raws are exposed darker)


@dataclass(frozen=True)
class Scores:
    """Image similarity to a reference."""

    psnr: float
    ssim: float
    de2000: float

    def as_dict(self) -> dict[str, float]:
        """Rounded, JSON-ready."""
        return {"psnr": round(self.psnr, 2), "ssim": round(self.ssim, 4), "de2000": round(self.de2000, 2)}


def _colour():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour
    return colour


def to_lab(srgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB-encoded pixels."""
    colour = _colour()
    xyz = colour.sRGB_to_XYZ(np.clip(srgb, 0.0, 1.0).astype(np.float64))
    return colour.XYZ_to_Lab(xyz, colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"])


def scores(image: np.ndarray, reference: np.ndarray) -> Scores:
    """PSNR, SSIM and mean CIEDE2000 of an H x W x 3 image against a reference (resized to it if needed)."""
    from skimage.metrics import structural_similarity

    h, w = reference.shape[:2]
    if image.shape[:2] != (h, w):
        image = cv2.resize(image.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    image = np.clip(image, 0.0, 1.0).astype(np.float64)
    reference = np.clip(reference, 0.0, 1.0).astype(np.float64)
    mse = float(np.mean((image - reference) ** 2))
    psnr = 10.0 * np.log10(1.0 / max(mse, 1e-12))
    ssim = float(structural_similarity(image, reference, channel_axis=2, data_range=1.0))
    de = float(np.mean(_colour().delta_E(to_lab(image), to_lab(reference), method="CIE 2000")))
    return Scores(psnr, ssim, de)


def mean_scores(items: list[Scores]) -> Scores:
    """Average of several scores."""
    return Scores(*(float(np.mean([getattr(s, f) for s in items])) for f in ("psnr", "ssim", "de2000")))


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).cpu().numpy()


Renderer = Callable[[np.ndarray], np.ndarray]  # linear H x W x 3 -> display-encoded H x W x 3


def photofinish_renderer(style: str, implementation: str = "learned") -> Renderer:
    """Low-resolution linear image -> photofinished image, as the pipeline's photofinish stage does it."""
    from engine.stages.photofinish import Photofinish, PhotofinishParams, apply_operators
    from engine.stages.photofinish_learned import LearnedPhotofinish

    stage = LearnedPhotofinish() if implementation == "learned" else Photofinish()
    params = PhotofinishParams(style=style)

    def render(linear: np.ndarray) -> np.ndarray:
        operators = stage.operators_for(params, linear)
        x = torch.from_numpy(np.ascontiguousarray(linear.transpose(2, 0, 1)))[None]
        with torch.no_grad():
            return _hwc(apply_operators(x, operators))

    return render


def heldout_photofinish(render: Renderer, style: str, photos: list[Photo] | None = None) -> Scores:
    """Mean scores of a photofinish renderer against ``style``'s targets of the held-out photographs, each at
    the input exposures :data:`EVAL_EVS`."""
    photos = photos if photos is not None else load_photos(TEST_PHOTOS)
    results = []
    for photo in photos:
        for ev in EVAL_EVS:
            linear, natural = whole_image(photo, EVAL_LONG_EDGE, ev)
            target = _hwc(style_target(natural, style))
            results.append(scores(render(_hwc(linear)), target))
    return mean_scores(results)


def time_per_megapixel(run: Callable[[], object], megapixels: float, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds per megapixel of ``run``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / megapixels


def write_contact_sheet(images: list[np.ndarray], path: Path, height: int = 200) -> None:
    """Images side by side at one height, as an 8-bit PNG (for a person to look at)."""
    tiles = [cv2.resize(im, (max(1, round(im.shape[1] * height / im.shape[0])), height),
                        interpolation=cv2.INTER_AREA) for im in images]
    sheet = np.concatenate(tiles, axis=1)
    cv2.imwrite(str(path), (np.clip(sheet, 0.0, 1.0)[..., ::-1] * 255.0 + 0.5).astype(np.uint8))
