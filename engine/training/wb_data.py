"""The white-balance data set: physically computed raws with their exact illuminant, cameras held out whole.

How a sample is made (:func:`make_set`, seeded):

1. A dead-leaves scene of measured reflectances, 128 x 128 px (:mod:`engine.training.scenes`).
2. The same scene is rendered ``renders_per_scene`` times, each by a camera drawn from the set's cameras and
   under a light drawn by :func:`engine.training.spectral_data.sample_illuminant`, at an ISO log-uniform in
   100..6400 and an exposure of -2..+0.5 EV around auto exposure (:func:`engine.synthetic.render_raw`: Poisson-
   Gaussian noise, 14-bit, clipping), then demosaiced by the engine's own kernels
   (:func:`engine.training.raw_noise.demosaic`, pre-scaled by a grey-world guess, as the true neutral is
   unknown to a real raw converter at this point), false colour taken out by a render's median passes (the
   estimators trained before recipe version 8's demosaic learned without them: ``false_colour_passes=0``).
3. Kept: the network input (:func:`engine.models.illuminant.histograms` with the camera's working matrix), the
   exact camera neutral (the camera's response to a perfect white under the light), the working matrix, and
   (test sets only) a 64 x 64 thumbnail of the camera RGB for the classical baselines.

The training set uses :data:`~engine.training.spectral_data.TRAINING_CAMERAS` only (10 cameras); the test set
uses :data:`~engine.training.spectral_data.HELD_OUT_CAMERAS` only (3 cameras) and scenes from another seed.

Part 2: real scene content (:func:`photo_set`)
-----------------------------------------------
The photographs of ``../shared/photos`` (``cameras/``: 112 camera JPEGs, ``kodak/``: 24 film scans, ``rawio/``:
36 real-estate photographs; see its PROVENANCE.md) are white-balanced renders, so each becomes a raw of a known
light: the photograph (area-averaged to 256 px on the long side) is cropped at random (35-100 % of the area,
aspect 3:4..4:3), unprocessed (:mod:`engine.training.unprocess`: sRGB decoding, the inverse smoothstep tone
curve, the inverse of the spectral camera's own colour matrix at the light's white, times the camera's exact
response to the light drawn by :func:`engine.training.spectral_data.sample_illuminant`, an exposure peak 0.03..0.9),
what the JPEG clipped is pushed 1-4 x over (drawn per sample) and the sensor clips every channel at 1;
Poisson-Gaussian noise of an ISO log-uniform in 100..6400 (:func:`engine.training.synthetic.noise_profile`).
The exact neutral is the spectral camera's response to the light: the estimator learns to balance the way the
cameras balanced their own JPEGs.

Whole cameras are held out on both sides. The photographs are grouped by the camera that made them (EXIF Make +
Model, spelled one way; the Kodak scans are one group, ``kodak``; a photograph without EXIF is its own group):
113 groups. :func:`photo_split` permutes the sorted group names with ``numpy.random.default_rng(11)``
(:data:`PHOTO_SPLIT_SEED`) and holds out the first 20 % (23 groups, 38 photographs):

    asahi pentax optio 430, canon eos d60, canon powershot a720 is, canon powershot sd600, casio ex-z3,
    eastman kodak clas digital film scanner / hr200, eastman kodak dx6490 zoom digital camera,
    file:rawio/constrain_straight, hewlett-packard hp photosmart c812 (v09.33), leica t (typ 701), minolta dimage 5,
    motorola xt1068, nikon d60, nikon d800, nokia lumia 800, olympus c40z,d40z, olympus e-m1markii,
    samsung gt-i9505, samsung sm-g965w, samsung-sm-n900a, sony dcr-pc120e, sony dsc-h9, sony dsc-t5

Training (:func:`photo_training_set`): the other 90 groups (134 photographs), unprocessed for the 10 training
spectral cameras only, seed ``training seed + 7919``. Test (:func:`photo_test_set`): the 23 held-out groups,
unprocessed for the 3 held-out spectral cameras only, seed :data:`PHOTO_TEST_SEED`. So a test sample's scene,
the camera that rendered it and the sensor that sees it are all unseen in training.

Part 3: which photographs are neutral references
------------------------------------------------
``--wb auto`` serves a neutral rendering (greys render grey). A camera JPEG is a neutral reference only where
the camera balanced the scene neutral; many keep a sunset, a sodium street lamp or tungsten warm (or tint a
scene blue), and unprocessing such a JPEG teaches the estimator to leave warm light warm. :func:`photo_cast`
reads a photograph's own neutral from its least chromatic tenth of the pixels (CIELAB, not dark, not clipped);
:func:`is_neutral_reference` keeps those within C*ab :data:`NEUTRAL_CAST` of grey: 127 of the 172 photographs,
98 of the 134 training ones (left out, for example: the sodium-lit snow of the Nexus 4, a white box label kept
yellow under tungsten by the Olympus PEN E-P3, the blue underwater scene of the Canon A720 IS, and scenes with
nothing grey in them: a yellow moon on black, grass, a red door).
``photo_training_set(..., neutral_only=True)`` trains on these only (made for every photograph and then
filtered, so a kept sample is the same as in the unfiltered set); the evaluation reports the photo test set
whole and its neutral references apart (:mod:`engine.training.eval_wb`).

Part 4: scenes lit by two lights (:func:`two_light_training_set`)
------------------------------------------------------------------
A subject lit by one light in front of surroundings lit by another (a lamp-lit table before a blue window at
dusk) is where an estimator that learned scene-wide balance from photographs goes wrong: it balances the larger
surroundings, as a camera's own auto white balance often does, and the subject comes out tinted. Each two-light
sample is a training photograph that is a neutral reference, unprocessed twice by the same spectral camera: a
soft ellipse about the middle (20-60 % of the picture) under the drawn light, whose neutral is the target, and the
rest under a second light at least 4 degrees away and 0.5-2 x as bright; then the same clipping and noise as a
photo sample. The subject's light is the one a photographer means to render neutral.
:func:`two_light_test_set` makes such samples of the held-out photo cameras' neutral references, seen by the
held-out spectral cameras only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputNotFoundError
from engine.models import illuminant
from engine.stages.demosaic import FALSE_COLOUR_PASSES
from engine.training import raw_noise, scenes, spectral_data, synthetic, unprocess

SCENE_SIZE = 128
HIST_CHANNELS = 4  # every histogram the estimator can read; a network of fewer inputs reads the first ones


@dataclass
class WBSet:
    """Arrays of a white-balance set, one row per sample."""

    hist: np.ndarray  # (N, 4, 64, 64) float32: pixels, edges, brightest, central pixels (illuminant.histograms)
    neutral: np.ndarray  # (N, 3) exact camera neutral, green = 1
    to_working: np.ndarray  # (N, 3, 3) camera -> working space
    images: np.ndarray | None  # (N, 64, 64, 3) float32 camera RGB thumbnails (test sets: classical baselines)
    cameras: list[str]
    lights: list[str]
    sources: list[str] = field(default_factory=list)  # the photograph of every sample ("" for computed scenes)


def render_sample(rng: np.random.Generator, scene: synthetic.Scene, camera: str,
                  false_colour_passes: int = FALSE_COLOUR_PASSES) -> tuple[np.ndarray, str, np.ndarray]:
    """(demosaiced camera RGB, light label, exact neutral) of ``scene`` seen by ``camera`` (module docstring),
    demosaiced with ``false_colour_passes`` median passes (a render's by default; 0 for the estimators before
    recipe version 8's demosaic)."""
    light = spectral_data.sample_illuminant(rng)
    iso = float(np.exp(rng.uniform(np.log(100.0), np.log(6400.0))))
    raw = synthetic.render_raw(spectral_data.camera(camera), light.spd, scene, iso=iso,
                               exposure=float(rng.uniform(-2.0, 0.5)), seed=int(rng.integers(2**31)))
    signal = (raw.cfa.astype(np.float32) - raw.black_level) / (raw.white_level - raw.black_level)
    guess = np.array([signal[0::2, 0::2].mean(), 0.5 * (signal[0::2, 1::2].mean() + signal[1::2, 0::2].mean()),
                      signal[1::2, 1::2].mean()])
    guess = np.maximum(guess, 1e-4) / max(guess[1], 1e-4)
    return raw_noise.demosaic(signal, guess, false_colour_passes), light.label, raw.camera_neutral


def baseline_thumbnail(rgb: np.ndarray, size: int = 64) -> np.ndarray:
    """The classical baselines' input: ``size`` x ``size`` area average of camera RGB in which a pixel that holds
    any clipped sensor pixel is clipped as a whole (so the baselines leave it out, as they do clipped pixels)."""
    small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    clipped = (rgb.max(axis=-1) >= illuminant.CLIPPED).astype(np.float32)
    small[cv2.resize(clipped, (size, size), interpolation=cv2.INTER_AREA) > 0] = 1.0
    return small


def make_set(seed: int, scenes_count: int, cameras: tuple[str, ...], renders_per_scene: int = 4,
             keep_images: bool = False, progress=None,
             false_colour_passes: int = FALSE_COLOUR_PASSES) -> WBSet:
    """A data set of ``scenes_count * renders_per_scene`` samples (module docstring), demosaiced with
    ``false_colour_passes`` median passes (:func:`render_sample`)."""
    rng = np.random.default_rng(seed)
    hist, neutral, working, images, cams, lights = [], [], [], [], [], []
    matrices = {c: illuminant.working_matrix(spectral_data.calibration(c)) for c in cameras}
    for i in range(scenes_count):
        scene = scenes.dead_leaves_scene(rng, SCENE_SIZE, SCENE_SIZE)
        for _ in range(renders_per_scene):
            camera = cameras[rng.integers(len(cameras))]
            rgb, label, exact = render_sample(rng, scene, camera, false_colour_passes)
            hist.append(illuminant.histograms(rgb, matrices[camera], HIST_CHANNELS))
            neutral.append(exact)
            working.append(matrices[camera])
            if keep_images:
                images.append(baseline_thumbnail(rgb))
            cams.append(camera)
            lights.append(label)
        if progress:
            progress(i + 1, scenes_count)
    return WBSet(np.stack(hist), np.array(neutral), np.array(working), np.stack(images) if images else None, cams,
                 lights, [""] * len(cams))


def training_set(seed: int, scenes_count: int, progress=None,
                 false_colour_passes: int = FALSE_COLOUR_PASSES) -> WBSet:
    """Training samples: training cameras only."""
    return make_set(seed, scenes_count, spectral_data.TRAINING_CAMERAS, progress=progress,
                    false_colour_passes=false_colour_passes)


TEST_SEED = 1_000_003  # scenes of the computed test set; never a training seed


def test_set(scenes_count: int = 400, progress=None) -> WBSet:
    """The fixed test set: held-out cameras only, scenes from :data:`TEST_SEED` (never a training seed),
    demosaiced as a render demosaics."""
    return make_set(TEST_SEED, scenes_count, spectral_data.HELD_OUT_CAMERAS, renders_per_scene=3, keep_images=True,
                    progress=progress)


# ---------------------------------------------------------------------------------------------------------------
# Real scene content: the photographs of ../shared/photos put under random lights (module docstring, part 2)

PHOTOS_DIR = Path(os.environ.get("HOSTPLUG_PHOTOS", Path(__file__).resolve().parents[3] / "shared" / "photos"))
PHOTO_FOLDERS = ("cameras", "kodak", "rawio")
PHOTO_SPLIT_SEED = 11
PHOTO_HELD_OUT_FRACTION = 0.2
PHOTO_SIZE = 256  # long side of the working copy of a photograph (the estimator's thumbnail size)
PHOTO_TEST_SEED = 1_000_033  # lights and crops of the photo test set; never a training seed
TWO_LIGHT_TEST_SEED = 1_000_037  # the same for the two-light test set
NEUTRAL_CAST = 3.0  # CIELAB chroma of a photograph's own neutral up to which it is a neutral reference
LEAST_CHROMATIC = 0.1  # the share of a photograph's pixels its own neutral is read from


class PhotosMissingError(InputNotFoundError):
    """``shared/photos`` is not where training expects it."""


def photos_dir() -> Path:
    """The shared photographs folder, or PhotosMissingError naming where it was looked for."""
    if not (PHOTOS_DIR / "cameras").is_dir():
        raise PhotosMissingError(f"{PHOTOS_DIR}: the shared photographs are missing (set HOSTPLUG_PHOTOS or place "
                                 "../shared/photos beside the repository)")
    return PHOTOS_DIR


def _camera_key(make: str, model: str) -> str:
    """One name per camera model, whichever way its EXIF spells the make ("Canon" + "Canon EOS 5D" -> one)."""
    make, model = " ".join(make.split()), " ".join(model.split())
    first = make.split(" ")[0].lower()
    if make and not model.lower().startswith(first):
        model = f"{make.split(' ')[0]} {model}"
    return model.lower()


@cache
def photo_cameras() -> dict[str, tuple[Path, ...]]:
    """The photographs by the camera that made them (EXIF Make + Model; the file name where EXIF has none;
    the Kodak suite, film scans, is one "camera": ``kodak``), sorted by camera."""
    from PIL import Image

    folder = photos_dir()
    groups: dict[str, list[Path]] = {}
    for sub in PHOTO_FOLDERS:
        for path in sorted((folder / sub).glob("*")):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            if sub == "kodak":
                key = "kodak"
            else:
                with Image.open(path) as image:
                    exif = image.getexif()
                make, model = str(exif.get(271) or "").strip(), str(exif.get(272) or "").strip()
                key = _camera_key(make, model) if model else f"file:{sub}/{path.stem}"
            groups.setdefault(key, []).append(path)
    return {k: tuple(v) for k, v in sorted(groups.items())}


def photo_split(seed: int = PHOTO_SPLIT_SEED) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training cameras, held-out cameras) of the photographs: a seeded permutation of the sorted camera names,
    the first 20 % held out (module docstring)."""
    names = sorted(photo_cameras())
    order = np.random.default_rng(seed).permutation(len(names))
    held = sorted(names[i] for i in order[: round(PHOTO_HELD_OUT_FRACTION * len(names))])
    return tuple(n for n in names if n not in held), tuple(held)


@cache
def _photo(path: Path) -> np.ndarray:
    """A photograph as sRGB-encoded float32, area-averaged to a long side of :data:`PHOTO_SIZE`."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (PHOTO_SIZE * 2, PHOTO_SIZE * 2))  # JPEG: decode at a reduced scale, much faster
        pixels: np.ndarray = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    h, w = pixels.shape[:2]
    scale = PHOTO_SIZE / max(h, w)
    if scale < 1.0:
        pixels = cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pixels)


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of linear sRGB pixels, float64, with L*, a*, b* along the last axis."""
    from engine.colour import SRGB

    xyz = np.asarray(linear, np.float64) @ SRGB.rgb_to_xyz.T
    t = xyz / (SRGB.rgb_to_xyz @ np.ones(3))
    f = np.where(t > (6 / 29) ** 3, np.cbrt(np.maximum(t, 0.0)), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def photo_cast(srgb: np.ndarray) -> float:
    """CIELAB C*ab (D65) of a photograph's own neutral: the mean a*, b* of its least chromatic tenth of the
    pixels that are neither dark (L* <= 25) nor clipped. A camera that balanced its scene neutral renders
    its greys near 0; one that kept a sunset, sodium or tungsten light warm (or a scene without anything grey)
    reads far from 0, and is no neutral reference (module docstring, part 3). 99 when too few pixels count."""
    from engine.colour import srgb_decode

    pixels = np.asarray(srgb, np.float32).reshape(-1, 3)
    lab = linear_to_lab(srgb_decode(pixels))
    lab = lab[(lab[:, 0] > 25) & (pixels.max(axis=1) < 0.98)]
    if len(lab) < 100:
        return 99.0
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    least = lab[np.argsort(chroma)[: max(1, int(LEAST_CHROMATIC * len(lab)))], 1:]
    return float(np.hypot(*least.mean(axis=0)))


@cache
def is_neutral_reference(path: Path) -> bool:
    """Whether a photograph's own neutral is grey (:func:`photo_cast` at most :data:`NEUTRAL_CAST`)."""
    return photo_cast(_photo(path)) <= NEUTRAL_CAST


def photo_sample(rng: np.random.Generator, srgb: np.ndarray, cameras: tuple[str, ...]) -> tuple[np.ndarray, str, str,
                                                                                                  np.ndarray]:
    """(camera RGB, camera, light label, exact neutral) of a photograph under a random light (module docstring)."""
    crop = _random_crop(rng, srgb)
    u = unprocess.random_plan(rng, crop, cameras)
    return _as_sensor(rng, unprocess.to_camera(crop, u), crop), u.camera, u.light, u.neutral


def two_light_sample(rng: np.random.Generator, srgb: np.ndarray, cameras: tuple[str, ...]) -> tuple[np.ndarray, str,
                                                                                                      str, np.ndarray]:
    """:func:`photo_sample` of a scene lit by two lights (part 4 of the module docstring): the subject, a soft
    ellipse about the middle (20-60 % of the picture), under the drawn light, whose neutral is the target; the
    rest under a second light at least 4 degrees away, 0.5-2 x as bright."""
    crop = _random_crop(rng, srgb)
    subject = unprocess.random_plan(rng, crop, cameras)
    while True:
        second = spectral_data.sample_illuminant(rng)
        neutral = spectral_data.camera_white(subject.camera, second.spd)
        if angle(neutral, subject.neutral) > 4.0:
            break
    around = unprocess.plan(subject.camera, second.spd, second.label)
    brightness = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    around = replace(around, gain=subject.gain / brightness)
    inside = _subject_mask(rng, *crop.shape[:2])
    rgb = inside * unprocess.to_camera(crop, subject) + (1.0 - inside) * unprocess.to_camera(crop, around)
    return _as_sensor(rng, rgb, crop), subject.camera, subject.light, subject.neutral


def _random_crop(rng: np.random.Generator, srgb: np.ndarray) -> np.ndarray:
    """A random crop of 35-100 % of the area, aspect 3:4..4:3."""
    h, w = srgb.shape[:2]
    area = rng.uniform(0.35, 1.0)
    aspect = np.exp(rng.uniform(np.log(0.75), np.log(1.333)))
    ch = int(np.clip(round(h * np.sqrt(area / aspect)), 16, h))
    cw = int(np.clip(round(w * np.sqrt(area * aspect)), 16, w))
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    return srgb[y : y + ch, x : x + cw]


def _as_sensor(rng: np.random.Generator, rgb: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """Camera RGB as a sensor records it: what the JPEG clipped was brighter than its white by an unknown amount
    (1-4 x, drawn per image), Poisson-Gaussian noise of a random ISO, every channel clipped at 1 (pink and fully
    clipped highlights, as real raws have them)."""
    over = crop.max(axis=-1) >= 0.99
    rgb[over] *= float(np.exp(rng.uniform(0.0, np.log(4.0))))
    iso = float(np.exp(rng.uniform(np.log(100.0), np.log(6400.0))))
    shot, read = synthetic.noise_profile(iso)
    rgb = rng.poisson(np.clip(rgb, 0.0, None) / shot) * shot + rng.normal(0.0, np.sqrt(read), rgb.shape)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def _subject_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 1) weights of the subject's light: a soft ellipse centred in the middle 30 % of the picture."""
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    area = rng.uniform(0.2, 0.6) * h * w
    aspect = np.exp(rng.uniform(np.log(0.6), np.log(1.6)))
    ry, rx = np.sqrt(area / np.pi / aspect), np.sqrt(area / np.pi * aspect)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0).astype(np.float32)
    return cv2.GaussianBlur(inside, (0, 0), max(1.0, 0.05 * min(h, w)))[..., None]


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two RGB vectors, degrees (the white-balance error measure)."""
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def photo_set(seed: int, photo_cameras_used: tuple[str, ...], cameras: tuple[str, ...], renders_per_photo: int,
              keep_images: bool = False, progress=None, paths: list[Path] | None = None,
              sample=photo_sample) -> WBSet:
    """``renders_per_photo`` samples (``sample``: :func:`photo_sample` or :func:`two_light_sample`) of every
    photograph of ``photo_cameras_used`` (or of ``paths``), each with a camera drawn from ``cameras`` under its
    own light (module docstring)."""
    rng = np.random.default_rng(seed)
    if paths is None:
        groups = photo_cameras()
        paths = [p for c in photo_cameras_used for p in groups[c]]
    hist, neutral, working, images, cams, lights, sources = [], [], [], [], [], [], []
    matrices = {c: illuminant.working_matrix(spectral_data.calibration(c)) for c in cameras}
    for i, path in enumerate(paths):
        srgb = _photo(path)
        for _ in range(renders_per_photo):
            rgb, camera, label, exact = sample(rng, srgb, cameras)
            hist.append(illuminant.histograms(rgb, matrices[camera], HIST_CHANNELS))
            neutral.append(exact)
            working.append(matrices[camera])
            if keep_images:  # 64 x 64 whatever the crop's aspect, for the classical baselines' global statistics
                images.append(baseline_thumbnail(rgb))
            cams.append(camera)
            lights.append(label)
            sources.append(str(path))
        if progress:
            progress(i + 1, len(paths))
    return WBSet(np.stack(hist), np.array(neutral), np.array(working), np.stack(images) if images else None, cams,
                 lights, sources)


def photo_training_set(seed: int, renders_per_photo: int, progress=None, neutral_only: bool = False) -> WBSet:
    """Photographs of the training photo cameras (with ``neutral_only``, their neutral references only), seen by
    the training spectral cameras only."""
    photos = photo_set(seed + 7919, photo_split()[0], spectral_data.TRAINING_CAMERAS, renders_per_photo,
                       progress=progress)
    if not neutral_only:
        return photos
    # made for every photograph and then filtered, so each kept sample is the same as in the unfiltered set
    return subset(photos, [is_neutral_reference(Path(s)) for s in photos.sources])


def photo_test_set(renders_per_photo: int = 6, progress=None) -> WBSet:
    """The fixed photo test set: photographs of the held-out photo cameras, seen by the held-out spectral cameras
    only, lights and crops from :data:`PHOTO_TEST_SEED`."""
    return photo_set(PHOTO_TEST_SEED, photo_split()[1], spectral_data.HELD_OUT_CAMERAS, renders_per_photo,
                     keep_images=True, progress=progress)


def two_light_training_set(seed: int, renders_per_photo: int, progress=None) -> WBSet:
    """Two-light samples (:func:`two_light_sample`) of the training photographs that are neutral references, seen
    by the training spectral cameras only."""
    return photo_set(seed + 104729, (), spectral_data.TRAINING_CAMERAS, renders_per_photo, progress=progress,
                     paths=_neutral_references(photo_split()[0]), sample=two_light_sample)


def two_light_test_set(renders_per_photo: int = 6, progress=None) -> WBSet:
    """The fixed two-light test set: two-light samples of the held-out photo cameras' neutral references, seen by
    the held-out spectral cameras only, lights, crops and subjects from :data:`TWO_LIGHT_TEST_SEED`."""
    return photo_set(TWO_LIGHT_TEST_SEED, (), spectral_data.HELD_OUT_CAMERAS, renders_per_photo, keep_images=True,
                     progress=progress, paths=_neutral_references(photo_split()[1]), sample=two_light_sample)


def _neutral_references(photo_cameras_used: tuple[str, ...]) -> list[Path]:
    """The photographs of ``photo_cameras_used`` that are neutral references (:func:`is_neutral_reference`)."""
    groups = photo_cameras()
    return [p for c in photo_cameras_used for p in groups[c] if is_neutral_reference(p)]


def concatenate(*sets: WBSet) -> WBSet:
    """One set of several (images kept only when every part has them)."""
    images = [s.images for s in sets if s.images is not None]
    return WBSet(np.concatenate([s.hist for s in sets]), np.concatenate([s.neutral for s in sets]),
                 np.concatenate([s.to_working for s in sets]),
                 np.concatenate(images) if len(images) == len(sets) else None,
                 [c for s in sets for c in s.cameras], [light for s in sets for light in s.lights],
                 [source for s in sets for source in s.sources])


def subset(data: WBSet, keep: np.ndarray | list[bool]) -> WBSet:
    """The samples of ``data`` where ``keep`` (a boolean per sample) is true."""
    keep = np.asarray(keep, dtype=bool)
    return WBSet(data.hist[keep], data.neutral[keep], data.to_working[keep],
                 None if data.images is None else data.images[keep],
                 [c for c, k in zip(data.cameras, keep, strict=True) if k],
                 [light for light, k in zip(data.lights, keep, strict=True) if k],
                 [s for s, k in zip(data.sources, keep, strict=True) if k])
