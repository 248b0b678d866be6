"""Camera JPEGs as training pairs for the picture styles: ``../shared/photos`` unprocessed into raws.

The data (read in place, never copied into the repository; see its ``PROVENANCE.md``)
------------------------------------------------------------------------------------
- ``cameras/``: 112 JPEGs straight out of 112 cameras and phones: each is *that camera's own rendering* of a
  real scene, which is exactly what the ``natural`` style should reproduce;
- ``kodak/``: the 24 Kodak film scans (a film look, not a camera's; weighted like one camera photograph);
- ``rawio/``: 36 real-estate photographs from six cameras, most of them exposure brackets.

The split (fixed, seeded, written down: :data:`SPLIT_SEED`, checked by ``tests/test_camera_looks.py``)
---------------------------------------------------------------------------------------------------------
A photograph belongs to a *camera*: the EXIF ``Model`` (lower case, the maker's name and NULs stripped), or
the file name without a ``_(n)`` suffix when the file has no EXIF model. Several files can share a camera
(three Canon EOS 20D, ``Issue_266`` and the rawio brackets of the Canon EOS 5D Mark III), so the split is over
cameras, never files: ``numpy.random.default_rng(SPLIT_SEED)`` permutes the sorted camera names of
``cameras/`` and the first :data:`N_HELD_OUT_CAMERAS` are held out (listed in :data:`HELD_OUT_CAMERAS`), with
every file of those cameras in any folder. Of the rawio bracket *series* (:func:`series_of`: same folder
prefix, camera and f-number), :data:`HELD_OUT_SERIES` are drawn with the same seed and their cameras held out
(with every other series of those cameras: the D800's two series show the same room); of Kodak,
:data:`HELD_OUT_KODAK`. Everything else trains. With seed 11: 20 of the 106 cameras of ``cameras/`` (23 files:
the three EOS 20D and two E900 go together), the Nikon D800 ``align_rotation`` brackets and the Pentax K-1 pair,
the Nikon D800 ``align`` series too, and kodim04, 11, 12, 13, 16, 17; 89 camera files, 18 Kodak scans and
23 rawio frames train.

Model selection never looks at the held-out cameras: it trains on ``fit`` (``train`` less
:data:`N_VALIDATION_CAMERAS` of its cameras, drawn with seed ``SPLIT_SEED + 1``: :func:`validation_cameras`) and
compares candidates on ``validation``; the chosen settings are then trained on all of ``train``.

How a camera JPEG becomes a raw (the inverse of a camera-like rendering, :func:`unprocess`)
---------------------------------------------------------------------------------------------
A camera renders its raw roughly as: linear sensor signal ``r`` (1 = the sensor's white) times a rendering
gain ``2**G``; a highlight shoulder that rolls ``[0, 2**G]`` into ``[0, 1]``; sRGB encoding; an S-shaped
contrast curve on the encoded values; a saturation boost. Undoing each step, with the camera's parameters
drawn per sample (:class:`CameraLook`; the network never knows them, so it learns an average camera):

1. **sRGB decoding is not enough.** Decoding alone leaves the camera's contrast and saturation in the
   "linear" input, so a style trained on it would learn to add none, which is today's flat look.
2. **Contrast**: encoded values ``e`` go through the inverse of the pivot curve ``P(e; p, k)`` of
   :func:`engine.training.style_targets.pivot_curve` (``p (e / p)**k`` below ``p = 0.46``, mirrored above; its
   inverse is ``P(e; p, 1/k)``), ``k`` uniform in :data:`CONTRAST_RANGE`. ``p = 0.46`` is sRGB-encoded
   mid-grey, which cameras keep in place; ``k > 1`` is the toe (deep shadows darker) and the brighter upper
   mid-tones of a camera curve. Brooks et al.'s inverse smoothstep was not used: it pivots at *linear* 0.5,
   i.e. far above mid-grey, and crushed the shadows of dark scenes when the old styles were trained on it
   (see :mod:`engine.training.look_data`).
3. **Highlight roll-off**: linear values above the knee ``kappa`` (uniform in :data:`KNEE_RANGE`) are
   expanded by the inverse of the operators' own shoulder (:func:`engine.operators.highlight_shoulder`,
   ``kappa + (1 - kappa) atanh((y - kappa) / (1 - kappa))``), with ``y`` capped at :data:`Y_CAP` so a clipped
   JPEG white becomes a finite highlight (1.5-2 times the knee-free value) rather than infinity.
4. **Saturation**: log-chromaticities ``(log B/G, log R/G)`` are divided by ``s`` uniform in
   :data:`SATURATION_RANGE` (luminance kept, :func:`engine.operators.log_chroma`).
5. **Exposure**: the scene-linear image is divided by ``2**G``, ``G`` uniform in :data:`GAIN_RANGE` EV, and
   clipped at the sensor's white (1). ``G`` is how many stops a camera's processing lifts its raw: measured on
   the one real raw with its own camera JPEG in ``../shared/rawsamples`` (the Sony a7R III ARW), the JPEG's
   decoded mid-tones are its raw's times ``2**2.0`` (1.98-2.04 EV over linear 0.01-0.3); cameras differ
   (exposure calibration, highlight-priority modes, BaselineExposure in DNGs), hence a 1.5-stop range around
   :data:`RENDER_EV`, the fixed rendering gain the natural style starts from (see
   :mod:`engine.models.photofinish_net`).
6. No light or white-balance error is added: the white-balance and colour stages hand photofinishing a
   balanced, linear-sRGB image, and their own errors are theirs to learn (:mod:`engine.training.wb_data`).

The *target* is the camera JPEG itself (other styles: gradings of it, :mod:`engine.training.style_targets`).
Photographs are read upright (EXIF orientation applied) at a long edge of :data:`LONG_EDGE` px.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import torch

# the rendering unprocess inverts (a render unprocesses image inputs too); training reads these names from here
from engine.camera_look import (  # noqa: F401
    CONTRAST_RANGE,
    GAIN_RANGE,
    KNEE_RANGE,
    RENDER_EV,
    SATURATION_RANGE,
    CameraLook,
    process,
    scene_linear,
    unprocess,
)
from engine.errors import InputNotFoundError

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "photos"
SPLIT_SEED = 11
N_HELD_OUT_CAMERAS = 20
N_HELD_OUT_SERIES = 2
N_HELD_OUT_KODAK = 6
N_VALIDATION_CAMERAS = 15  # of the training cameras of cameras/, for model selection (seed SPLIT_SEED + 1)
LONG_EDGE = 512
CROP_AREA = (0.25, 1.0)  # share of the photograph a training crop covers

# What the seeded split gives (tests/test_camera_looks.py checks that the seed still gives exactly this).
HELD_OUT_CAMERAS = ("d60", "dimage 5", "dimage ex", "dmc-fz5", "e900", "eos 20d", "eos d60", "gt-i9505",
                    "htc_tytn_ii", "kidizoom camera", "kodak dx4900 zoom digital camera", "kodak pixpro s-1",
                    "kodak pixpro sp360", "lumia 800", "mx-1200", "pentax optio 330", "powershot s40",
                    "powershot sd600", "s1", "sm-j327t1")
HELD_OUT_SERIES = ("align_rotation|d800|8.0", "group|pentax k-1|9.0")
HELD_OUT_KODAK = ("kodim04", "kodim11", "kodim12", "kodim13", "kodim16", "kodim17")


@dataclass(frozen=True)
class CameraPhoto:
    """One photograph: where it is from, its camera, its series (brackets) and its pixels (the target)."""

    name: str  # folder/stem
    folder: str  # cameras, kodak or rawio
    camera: str  # the split key
    series: str  # the bracket series ("" when none)
    exposure_ev: float | None  # log2(t * ISO / N^2) from EXIF, when known
    srgb: np.ndarray  # H x W x 3 float32 in [0, 1], the camera's rendering


def root() -> Path:
    """The photographs' folder: ``$HOSTPLUG_PHOTOS`` (as for the white balance's training), else
    ``../shared/photos`` next to the repository."""
    return Path(os.environ.get("HOSTPLUG_PHOTOS") or DEFAULT_ROOT)


def available(folder: Path | None = None) -> bool:
    """Whether the photographs are there (tests skip without them)."""
    f = folder or root()
    return (f / "cameras").is_dir() and (f / "rawio").is_dir()


def _exif(path: Path) -> tuple[str, str, float | None, float | None]:
    """(make, model, exposure_ev, f_number) from a file's EXIF ('' / None when absent)."""
    from PIL import Image

    with Image.open(path) as im:
        ex = im.getexif()
        sub = ex.get_ifd(0x8769)
    make = str(ex.get(0x010F) or "").replace("\x00", "").strip()
    model = str(ex.get(0x0110) or "").replace("\x00", "").strip()
    t, n, iso = sub.get(0x829A), sub.get(0x829D), sub.get(0x8827)
    ev = None
    if t and n and iso:
        iso = iso[0] if isinstance(iso, tuple) else iso
        ev = math.log2(float(t) * float(iso) / float(n) ** 2)
    return make, model, ev, (float(n) if n else None)


def camera_key(path: Path) -> str:
    """The camera a file belongs to (see the module docstring)."""
    make, model, _, _ = _exif(path)
    if model:
        key = model.lower()
        first = make.lower().split()[0] if make else ""
        if first and key.startswith(first + " "):
            key = key[len(first) + 1:]
        return re.sub(r"\s+", " ", key).strip()
    return re.sub(r"_\(\d+\)$", "", path.stem).lower()


def series_of(path: Path) -> str:
    """A rawio file's bracket series: its name's prefix, camera and f-number (e.g. ``group|eos 70d|13.0``)."""
    _, _, _, n = _exif(path)
    prefix = re.sub(r"_?\d+$", "", path.stem)
    return f"{prefix}|{camera_key(path)}|{n}"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@dataclass(frozen=True)
class Split:
    """Which cameras, series and Kodak images are held out."""

    cameras: tuple[str, ...]
    series: tuple[str, ...]
    kodak: tuple[str, ...]

    def held_out(self, folder: str, camera: str, series: str, stem: str) -> bool:
        """Whether a photograph is held out."""
        if folder == "kodak":
            return stem in self.kodak
        return camera in self.cameras or camera in {s.split("|")[1] for s in self.series}


@cache
def split(photos_root: Path | None = None, seed: int = SPLIT_SEED) -> Split:
    """The seeded split (see the module docstring)."""
    base = photos_root or root()
    cameras = sorted({camera_key(p) for p in _files(base / "cameras")})
    rng = np.random.default_rng(seed)
    held = tuple(sorted(cameras[i] for i in rng.permutation(len(cameras))[:N_HELD_OUT_CAMERAS]))
    series = sorted({series_of(p) for p in _files(base / "rawio")})
    series = [s for s in series if sum(series_of(p) == s for p in _files(base / "rawio")) >= 2]
    held_series = tuple(sorted(series[i] for i in rng.permutation(len(series))[:N_HELD_OUT_SERIES]))
    kodak = sorted(p.stem for p in _files(base / "kodak"))
    held_kodak = tuple(sorted(kodak[i] for i in rng.permutation(len(kodak))[:N_HELD_OUT_KODAK]))
    return Split(held, held_series, held_kodak)


def _read(path: Path, long_edge: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        rgb: np.ndarray = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.float32) / 255.0
    h, w = rgb.shape[:2]
    scale = long_edge / max(h, w)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0))


@cache
def validation_cameras(photos_root: Path | None = None) -> tuple[str, ...]:
    """The :data:`N_VALIDATION_CAMERAS` training cameras of ``cameras/`` that model selection holds out (seed
    ``SPLIT_SEED + 1``; their files in other folders go with them)."""
    base = photos_root or root()
    held = split(photos_root).cameras
    cameras = sorted({camera_key(p) for p in _files(base / "cameras")} - set(held))
    rng = np.random.default_rng(SPLIT_SEED + 1)
    return tuple(sorted(cameras[i] for i in rng.permutation(len(cameras))[:N_VALIDATION_CAMERAS]))


def _in_part(part: str, held: bool, validation: bool) -> bool:
    """Whether a photograph belongs to ``part``: "all", "test" (held out), "train" (the rest), and for model
    selection "fit" (train less the validation cameras) and "validation"."""
    if part not in ("all", "test", "train", "fit", "validation"):
        raise ValueError(f"unknown part {part!r}")
    if part == "all":
        return True
    if part == "test" or held:
        return part == "test" and held
    return part == "train" or (part == "validation") == validation


@cache
def load(part: str, long_edge: int = LONG_EDGE, photos_root: Path | None = None) -> tuple[CameraPhoto, ...]:
    """The photographs of ``part`` (see :func:`_in_part`), in a fixed order."""
    base = photos_root or root()
    if not available(base):
        raise InputNotFoundError(f"{base}: the photographs are missing (set HOSTPLUG_PHOTOS, or see "
                                 "../shared/photos/PROVENANCE.md)")
    s = split(photos_root)
    validation = set(validation_cameras(photos_root))
    out = []
    for folder in ("cameras", "kodak", "rawio"):
        for path in _files(base / folder):
            camera = "kodak film scan" if folder == "kodak" else camera_key(path)
            series = series_of(path) if folder == "rawio" else ""
            held = s.held_out(folder, camera, series, path.stem)
            if _in_part(part, held, camera in validation):
                ev = _exif(path)[2] if folder != "kodak" else None
                out.append(CameraPhoto(f"{folder}/{path.stem}", folder, camera, series, ev, _read(path, long_edge)))
    return tuple(out)


# ---- the camera rendering and its inverse (numpy, H x W x 3) ------------------------------------------------

# ---- training batches --------------------------------------------------------------------------------------


def _crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    area = rng.uniform(*CROP_AREA) * h * w
    aspect = np.exp(rng.uniform(np.log(0.75), np.log(4 / 3)))
    ch = int(min(h, max(16, round(np.sqrt(area / aspect)))))
    cw = int(min(w, max(16, round(np.sqrt(area * aspect)))))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = cv2.resize(image[y0:y0 + ch, x0:x0 + cw], (size, size), interpolation=cv2.INTER_AREA)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    """H x W x 3 numpy images to an N x 3 x H x W float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))).float()


def sensor_noise(linear: np.ndarray, iso: float, rng: np.random.Generator) -> np.ndarray:
    """``linear`` (1 = the sensor's white) with the Poisson-Gaussian noise of the DNGs
    :mod:`engine.training.eval_looks` writes at ``iso`` (Gaussian of variance ``S x + O`` per pixel and channel,
    :func:`engine.training.synthetic.noise_profile`), clipped to the sensor's range."""
    from engine.training.synthetic import noise_profile

    shot, read = noise_profile(iso)
    sigma = np.sqrt(shot * np.maximum(linear, 0.0) + read)
    return np.clip(linear + sigma * rng.standard_normal(linear.shape), 0.0, 1.0).astype(np.float32)


def training_batch(photos: tuple[CameraPhoto, ...], batch: int, size: int, rng: np.random.Generator,
                   noise_iso: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(linear input, camera JPEG target, drawn camera gain in EV) of random photographs, crops, flips and camera
    renderings. Kodak and the rawio brackets are drawn as often as one camera photograph each (by image), not
    more. With ``noise_iso`` (lowest, highest), the input carries sensor noise of an ISO drawn log-uniformly in
    that range (:func:`sensor_noise`), as a raw through the pipeline does; the target stays the clean JPEG."""
    inputs, targets, gains = [], [], []
    for _ in range(batch):
        photo = photos[int(rng.integers(0, len(photos)))]
        target = _crop(photo.srgb, size, rng)
        look = CameraLook.draw(rng)
        linear = unprocess(target, look)
        if noise_iso is not None:
            linear = sensor_noise(linear, float(np.exp(rng.uniform(*np.log(noise_iso)))), rng)
        inputs.append(linear)
        targets.append(np.ascontiguousarray(target))
        gains.append(look.gain_ev)
    return to_batch(inputs), to_batch(targets), torch.tensor(gains, dtype=torch.float32)
