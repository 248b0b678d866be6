"""``hostplug eval pipeline``: the look models measured on data they never saw, and their speed.

1. **Held-out style targets, photofinishing alone.** Each held-out photograph
   (:data:`engine.training.look_data.TEST_PHOTOS`), unprocessed to linear and presented at three exposures, is
   photofinished by each style's network and compared with that style's target; the classical implementation's
   natural look is measured against the natural target in the same run.
2. **Held-out style targets, the whole pipeline.** Each held-out photograph becomes a camera raw: linear sRGB ->
   XYZ (D65) -> camera RGB of the Nikon 5100 (NPL) sensitivities through its fitted D65 ColorMatrix, exposed at
   each of :data:`RAW_EVS` relative to the photograph (0: the photograph's white at the sensor's white; cameras
   usually keep a stop or so of headroom), Poisson-Gaussian noise of ISO 200 (:mod:`engine.training.synthetic`'s model),
   an RGGB mosaic, written as a DNG. The DNG is rendered by the default pipeline with each style and
   compared with the style's target; LibRaw's default rendering (``rawpy`` ``postprocess(use_camera_wb=True)``)
   of the same DNG is measured against the natural target in the same run.
3. **The camera's own rendering.** For every real raw that embeds a camera-made JPEG (the Sony a7R III ARW's
   1616 x 1080 preview; the Nikon D500 DNG's 600 x 400 Adobe preview, which PROVENANCE warns is almost black),
   our default render and LibRaw's default rendering are resized to the preview's size and compared with it.
4. **Detail restoration**: the held-out photographs blurred and slightly noisy, restored by the learned detail
   stage and by the classical unsharp mask (PSNR against the sharp originals).
5. **Speed** on this machine's CPU: the learned photofinish stage per render (1024 px long edge), the learned
   and classical detail stages per megapixel, and what the learned detail stage would add to the 18 MP Sony.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from engine.training import look_eval
from engine.training.look_data import TEST_PHOTOS, WORK_LONG_EDGE, Photo, load_photos, to_batch, unprocess
from engine.training.style_targets import style_target

RAW_ISO = 200
RAW_EVS = (-2.0, -1.0, 0.0)  # raw exposure relative to the photograph (0: its white at the sensor's white)
PREVIEW_FILES = ("sony_ilce7rm3__libraw-cffi_DSC2164.ARW", "nikon_d500_adobedngconv_lossylinear__magicknet_DSC8695.dng")
DEFAULT_RAWS = Path(__file__).resolve().parents[3] / "shared" / "rawsamples"
SONY_MEGAPIXELS = 5216 * 3464 / 1e6

Progress = Callable[[str], None]


def check_raws_folder(raws: Path | None) -> None:
    """InputNotFoundError, before any work, when a folder named for the real-raw measurements holds none of the
    raws they know (a user who names one means it to be measured; the default folder may be absent)."""
    from engine.errors import InputNotFoundError

    if raws is not None and not any((raws / name).is_file() for name in PREVIEW_FILES):
        raise InputNotFoundError(f"{raws}: holds none of the raws with a camera rendering that this measures "
                                 f"({', '.join(PREVIEW_FILES)}); --raws names a copy of ../shared/rawsamples")


def photo_dng(photo: Photo, path: Path, ev: float = -1.0, seed: int = 0) -> None:
    """Write a held-out photograph as a noisy RGGB camera raw DNG (see the module docstring, step 2)."""
    from engine.colour import D65_XY, SRGB
    from engine.training import synthetic

    h, w = (d - d % 2 for d in photo.target.shape[:2])
    linear = unprocess(photo.target[:h, :w])
    camera = synthetic.camera_from_colour()
    matrix = synthetic.fit_color_matrix(camera, synthetic.illuminant("D65"))
    camera_rgb = linear @ (matrix @ SRGB.rgb_to_xyz).T.astype(np.float32)
    neutral = matrix @ SRGB.rgb_to_xyz @ np.ones(3)
    gain = 2.0**ev
    channels = np.tile(np.array([[0, 1], [1, 2]]), (h // 2, w // 2))
    signal = np.take_along_axis(camera_rgb * gain, channels[..., None], axis=2)[..., 0]
    shot, read = synthetic.noise_profile(RAW_ISO)
    rng = np.random.default_rng(seed)
    signal = rng.poisson(np.maximum(signal, 0.0) / shot) * shot + rng.normal(0.0, np.sqrt(read), signal.shape)
    span = synthetic.WHITE_LEVEL - synthetic.BLACK_LEVEL
    cfa = np.clip(np.round(synthetic.BLACK_LEVEL + signal * span), 0, synthetic.WHITE_LEVEL).astype(np.uint16)
    raw = synthetic.SyntheticRaw(
        cfa=cfa, black_level=synthetic.BLACK_LEVEL, white_level=synthetic.WHITE_LEVEL, iso=RAW_ISO,
        noise_profile=(shot, read), camera=camera, scene=None, gain=gain, patch_rgb=None,
        camera_neutral=neutral / neutral[1], white_xy=np.asarray(D65_XY), xyz=None, linear_srgb=linear * gain,
    )
    synthetic.write_dng(path, raw, make="hostplug", model="Held-out photograph", iso=RAW_ISO,
                        exposure_time=1 / 125, f_number=8.0, noise_profile=(shot, read))


def render_file(path: Path, **recipe: Any) -> np.ndarray:
    """Our default pipeline's render of a file (sRGB-encoded float32), with recipe settings."""
    import engine

    return engine.render(engine.open(path), engine.Recipe(**recipe)).pixels


def libraw_render(path: Path) -> np.ndarray:
    """LibRaw's default rendering with the camera's white balance, sRGB-encoded float32, framed as the camera frames
    the picture where LibRaw names its area (a raw that is no DNG: the Sony a7R III's 8-pixel border), as hostplug's
    render is: against the camera's JPEG, a frame 0.3 % wider would be scored for its misregistration."""
    import rawpy

    from engine.io.picture_area import camera_crop

    with rawpy.imread(str(path)) as raw:
        flip = raw.sizes.flip  # read first: user_flip below replaces it
        rgb = raw.postprocess(use_camera_wb=True, user_flip=0).astype(np.float32) / 255.0
        crop = camera_crop(raw.sizes, rgb.shape[:2]) if Path(path).suffix.lower() != ".dng" else None
    if crop is not None:
        top, left, height, width = crop
        rgb = rgb[top:top + height, left:left + width]
    return np.ascontiguousarray(np.rot90(rgb, _QUARTER_TURNS.get(flip, 0)))


_QUARTER_TURNS = {3: 2, 5: 1, 6: -1}  # LibRaw's flip -> counter-clockwise quarter turns that show it upright


def embedded_preview(path: Path) -> np.ndarray | None:
    """The camera-made JPEG (or bitmap) preview embedded in a raw, sRGB float32, or None."""
    import rawpy
    from PIL import Image

    with rawpy.imread(str(path)) as raw:
        try:
            thumb = raw.extract_thumb()
        except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
            return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        with Image.open(io.BytesIO(cast(bytes, thumb.data))) as im:  # a JPEG thumbnail's data is bytes
            return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return np.asarray(thumb.data, dtype=np.float32)[..., :3] / 255.0


def _styles() -> list[str]:
    from engine.styles import STYLES

    return list(STYLES)


def held_out_photofinish(progress: Progress) -> dict[str, Any]:
    """Step 1: per style, learned photofinishing vs the style's targets; classical natural alongside."""
    photos = load_photos(TEST_PHOTOS)
    out: dict[str, Any] = {}
    for style in _styles():
        progress(f"held-out photofinish: {style}")
        out[style] = look_eval.heldout_photofinish(look_eval.photofinish_renderer(style), style, photos).as_dict()
    classical = look_eval.photofinish_renderer("natural", "classical")
    out["natural (classical)"] = look_eval.heldout_photofinish(classical, "natural", photos).as_dict()
    return out


def held_out_pipeline(progress: Progress, sheets: Path | None) -> dict[str, Any]:
    """Step 2: held-out photographs as raws through the whole default pipeline, per style; LibRaw alongside."""
    import engine

    photos = load_photos(TEST_PHOTOS, long_edge=1024)
    per_style: dict[str, list[look_eval.Scores]] = {s: [] for s in [*_styles(), "natural (classical)", "libraw"]}
    with tempfile.TemporaryDirectory() as folder:
        for photo, ev in ((photo, ev) for photo in photos for ev in RAW_EVS):
            dng = Path(folder) / f"{photo.name}_{ev:+.0f}.dng"
            photo_dng(photo, dng, ev)
            h, w = (d - d % 2 for d in photo.target.shape[:2])
            natural = to_batch([photo.target[:h, :w]])
            renders = []
            for style in _styles():
                progress(f"whole pipeline: {photo.name} at {ev:+.0f} EV, {style}")
                target = style_target(natural, style)[0].permute(1, 2, 0).numpy()
                image = render_file(dng, style=style)
                per_style[style].append(look_eval.scores(image, target))
                renders += [target, image]
            classical = engine.Recipe(stages={"photofinish": engine.StageSettings(implementation="classical")})
            image = engine.render(engine.open(dng), classical).pixels
            per_style["natural (classical)"].append(look_eval.scores(image, photo.target[:h, :w]))
            per_style["libraw"].append(look_eval.scores(libraw_render(dng), photo.target[:h, :w]))
            if sheets is not None and ev == -1.0:
                sheets.mkdir(parents=True, exist_ok=True)
                look_eval.write_contact_sheet(renders, sheets / f"heldout_{photo.name}_target_vs_render.png", 160)
    return {name: look_eval.mean_scores(items).as_dict() for name, items in per_style.items() if items}


def camera_previews(raws: Path, progress: Progress, sheets: Path | None) -> dict[str, Any]:
    """Step 3: our default render and LibRaw's vs each raw's embedded camera rendering."""
    import engine

    rows: dict[str, Any] = {}
    for name in PREVIEW_FILES:
        path = raws / name
        if not path.is_file():
            continue
        preview = embedded_preview(path)
        if preview is None:
            continue
        progress(f"camera rendering: {name}")
        start = time.perf_counter()
        rendered = engine.render(engine.open(path), engine.Recipe())
        ours, ours_seconds = rendered.pixels, time.perf_counter() - start
        start = time.perf_counter()
        libraw = libraw_render(path)
        libraw_seconds = time.perf_counter() - start
        classical = engine.Recipe(stages={"photofinish": engine.StageSettings(implementation="classical")})
        ours_classical = engine.render(engine.open(path), classical).pixels
        rows[name] = {
            "preview_size": [int(preview.shape[1]), int(preview.shape[0])],
            "ours": look_eval.scores(ours, preview).as_dict(),
            "ours_classical_photofinish": look_eval.scores(ours_classical, preview).as_dict(),
            "libraw": look_eval.scores(libraw, preview).as_dict(),
            "seconds": {"ours": round(ours_seconds, 2), "libraw": round(libraw_seconds, 2),
                        "ours_per_stage": {k: round(v, 2) for k, v in rendered.timings.items()}},
        }
        if sheets is not None:
            sheets.mkdir(parents=True, exist_ok=True)
            look_eval.write_contact_sheet([preview, ours, libraw], sheets / f"camera_{Path(name).stem}.png", 360)
    return rows


def mean_over_files(rows: dict[str, Any]) -> dict[str, Any]:
    """Each renderer's scores averaged over the raws with a camera rendering (the issue's criterion: the default
    style closer to the camera than LibRaw on average)."""
    if not rows:
        return {}
    renderers = ("ours", "ours_classical_photofinish", "libraw")
    return {name: look_eval.mean_scores([look_eval.Scores(**row[name]) for row in rows.values()]).as_dict()
            for name in renderers}


def detail_restoration(progress: Progress) -> dict[str, Any]:
    """Held-out photographs blurred (sigma 0.9 px) with a little noise (std 0.005): PSNR of the blurred input, of
    the learned detail stage at its default strength, and of the classical unsharp mask at its default amount."""
    import torch

    from engine.models.detail_net import degrade, enhance_image
    from engine.stages.detail_learned import load_detail_network

    progress("detail restoration")
    net = load_detail_network()
    rows: dict[str, list[float]] = {"blurred": [], "learned": [], "classical": []}
    for index, photo in enumerate(load_photos(TEST_PHOTOS, long_edge=1024)):
        sharp = to_batch([photo.target])
        soft = degrade(sharp, torch.tensor([0.9]), torch.tensor([0.005]), torch.Generator().manual_seed(index))
        soft_hwc = np.ascontiguousarray(soft[0].permute(1, 2, 0).numpy())
        usm = cv2.addWeighted(soft_hwc, 1.25, cv2.GaussianBlur(soft_hwc, (0, 0), 1.0), -0.25, 0.0)
        for name, image in (("blurred", soft_hwc), ("learned", enhance_image(net, soft_hwc, 1.0)),
                            ("classical", usm)):
            rows[name].append(look_eval.scores(image, photo.target).psnr)
    return {f"psnr_{name}": round(float(np.mean(v)), 2) for name, v in rows.items()}


def speed(progress: Progress) -> dict[str, Any]:
    """Step 4: seconds per megapixel of the learned stages (and the classical detail stage) on this CPU."""
    from engine.models.detail_net import enhance_image
    from engine.stages.base import Context
    from engine.stages.detail_learned import load_detail_network
    from engine.stages.photofinish import PhotofinishParams
    from engine.stages.photofinish_learned import LearnedPhotofinish, load_network, predict

    progress("speed")
    rng = np.random.default_rng(0)
    low = (rng.random((683, 1024, 3), dtype=np.float32) * 0.3).astype(np.float32)
    load_network("natural")
    stage = LearnedPhotofinish()
    params = PhotofinishParams()

    def photofinish() -> None:
        stage.process(low, {"params": params}, cast(Context, _Ctx()))  # reads only device and notes

    low_mp = low.shape[0] * low.shape[1] / 1e6
    big = (rng.random((1000, 2000, 3), dtype=np.float32)).astype(np.float32)
    net = load_detail_network()
    learned = look_eval.time_per_megapixel(lambda: enhance_image(net, big, 1.0), 2.0)
    classical = look_eval.time_per_megapixel(
        lambda: cv2.addWeighted(big, 1.25, cv2.GaussianBlur(big, (0, 0), 1.0), -0.25, 0.0), 2.0)
    return {
        "photofinish_learned_seconds_per_render": round(look_eval.time_per_megapixel(photofinish, 1.0), 3),
        "photofinish_learned_seconds_per_low_res_megapixel": round(
            look_eval.time_per_megapixel(photofinish, low_mp), 3),
        "photofinish_network_seconds_per_style": round(
            look_eval.time_per_megapixel(lambda: predict("natural", low), 1.0), 4),
        "detail_learned_seconds_per_megapixel": round(learned, 3),
        "detail_classical_seconds_per_megapixel": round(classical, 3),
        "detail_learned_seconds_on_18mp_sony": round(learned * SONY_MEGAPIXELS, 1),
    }


@dataclasses.dataclass
class _Ctx:
    """The little of a render context the photofinish stage's ``process`` reads (a stand-in, cast to
    :class:`engine.stages.base.Context`)."""

    device: str = "cpu"
    notes: dict = dataclasses.field(default_factory=dict)


def run(raws: Path | None, sheets: Path | None, progress: Progress = lambda _: None) -> dict[str, Any]:
    """Every measurement of the module docstring, as one JSON-ready report."""
    from engine.training.loop import machine

    check_raws_folder(raws)
    raws = raws or DEFAULT_RAWS
    report: dict[str, Any] = {"machine": machine(), "held_out_photos": list(TEST_PHOTOS),
                              "held_out_long_edge": WORK_LONG_EDGE}
    report["held_out_photofinish"] = held_out_photofinish(progress)
    report["held_out_pipeline"] = held_out_pipeline(progress, sheets)
    report["camera_renderings"] = camera_previews(raws, progress, sheets) if raws.is_dir() else {}
    report["camera_renderings_mean"] = mean_over_files(report["camera_renderings"])
    report["detail_restoration"] = detail_restoration(progress)
    report["speed"] = speed(progress)
    return report


def store(report: dict[str, Any]) -> None:
    """Write the figures into the manifest entries of the models they measure."""
    from engine.stages.detail_learned import DETAIL_MODEL
    from engine.styles import STYLES
    from engine.training.loop import record_metrics

    for style in STYLES.values():
        metrics = {"held_out_photofinish": report["held_out_photofinish"][style.name],
                   "held_out_pipeline": report["held_out_pipeline"][style.name]}
        if style.name == "natural":
            metrics["camera_renderings"] = report["camera_renderings"]
            metrics["camera_renderings_mean"] = report["camera_renderings_mean"]
            metrics["speed"] = {k: v for k, v in report["speed"].items() if k.startswith("photofinish")}
        record_metrics(style.model, {**metrics, "measured_on": report["machine"]})
    record_metrics(DETAIL_MODEL, {"speed": {k: v for k, v in report["speed"].items() if k.startswith("detail")},
                               "held_out_restoration": report["detail_restoration"],
                               "measured_on": report["machine"]})


def _row(name: str, s: dict[str, float]) -> str:
    return f"| {name:<28} | {s['psnr']:>9.2f} | {s['ssim']:>6.3f} | {s['de2000']:>8.2f} |"


def tables(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    head = "| {:<28} | PSNR (dB) | SSIM   | CIEDE2000 |\n|{}|-----------|--------|-----------|".format(
        "", "-" * 30)
    lines = [f"Machine: {report['machine']}", "",
             "Held-out photographs, photofinishing alone (3 input exposures each):", head]
    lines += [_row(k, v) for k, v in report["held_out_photofinish"].items()]
    lines += ["", "Held-out photographs as ISO 200 raws (exposed -2, -1, 0 EV), whole default pipeline:", head]
    lines += [_row(k, v) for k, v in report["held_out_pipeline"].items()]
    if report["camera_renderings"]:
        lines += ["", "Against the camera's own embedded rendering (resized to the preview):", head]
        for name, row in report["camera_renderings"].items():
            short = name.split("__")[0]
            lines += [_row(f"{short}: ours", row["ours"]),
                      _row(f"{short}: ours, classical pf", row["ours_classical_photofinish"]),
                      _row(f"{short}: LibRaw", row["libraw"])]
        mean = report["camera_renderings_mean"]
        lines += [_row("mean: ours", mean["ours"]),
                  _row("mean: ours, classical pf", mean["ours_classical_photofinish"]),
                  _row("mean: LibRaw", mean["libraw"])]
    lines += ["", "Detail stage on held-out photographs blurred by sigma 0.9 px (PSNR, dB):"]
    lines += [f"- {k}: {v}" for k, v in report["detail_restoration"].items()]
    lines += ["", "Speed (CPU):"] + [f"- {k}: {v}" for k, v in report["speed"].items()]
    return "\n".join(lines)
