"""``hostplug eval looks``: the picture styles against real cameras' own renderings, next to LibRaw.

Everything is seeded (:data:`EVAL_SEED`) and uses the written-down split of :mod:`engine.training.camera_photos`.

1. **Held-out cameras** (the camera JPEGs of the cameras the split holds out: 23 files from 20 cameras none of
   the styles trained on). Each JPEG, at its full size (:data:`RAW_LONG_EDGE`, 1600 px), is unprocessed under one
   camera rendering drawn per image (:class:`engine.training.camera_photos.CameraLook`, seed
   ``EVAL_SEED + index``; the network never knows it) into linear sRGB, turned into camera RGB of a real camera
   (spectral sensitivities of :data:`engine.training.spectral_data.HELD_OUT_CAMERAS`, in turn, through its
   fitted D65 ColorMatrix; no training of any style used them), given ISO 200 Poisson-Gaussian noise, mosaicked
   RGGB and written as a DNG by the project's writer (:func:`engine.training.synthetic.write_dng`). The DNG is
   rendered by the whole default pipeline with each style (scored against that style's target: the JPEG for
   ``natural``, its grading for the others), by the classical photofinish, and by LibRaw (``rawpy``
   ``postprocess(use_camera_wb=True)``), all in the same run, every render resized (area) to the JPEG scaled to
   :data:`EVAL_LONG_EDGE` px and scored there: PSNR, SSIM, mean CIEDE2000. (Raws made at 768 px instead carry
   the ISO 200 noise of a 0.4-megapixel sensor, far noisier than any camera's downsized JPEG; that measured the
   noise path more than the look: natural 26.36 dB vs LibRaw 27.84 on the first 8 images, with an 800-step
   candidate.) Metrics: :mod:`engine.training.look_eval`. Also: on what fraction of images ``natural`` beats LibRaw.
2. **Real raws**: every raw of ``../shared/rawsamples`` that embeds a camera-made JPEG (the Sony a7R III ARW):
   our render per style, the classical photofinish and LibRaw, against that JPEG (styles against its grading).
3. **Brackets**: every rawio series (same scene, several exposures). All frames of a series are unprocessed
   under ONE drawn camera rendering (one common scale), so their raw exposures differ as the camera's did;
   each is photofinished by ``natural`` (the stage's default and with ``auto_exposure``) and the brightness
   (log2 of the mean linear luminance) of the renders is compared with the camera JPEGs': whether the order is
   kept (for every pair of frames whose JPEGs differ by :data:`ORDER_TOLERANCE` stops or more) and the
   *spacing* (the least-squares slope of render brightness on JPEG brightness: 1 keeps the camera's spacing,
   0 pulls every frame to one brightness).

Caveat, said plainly: part 1 measures on raws made from the JPEGs by this project's own unprocessing, whose
camera curve is a family the networks were trained on (with other draws and other cameras). LibRaw is not
tuned to that family; part 2 (a real raw with its real camera JPEG) has no such bias.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from engine import models
from engine.colour import LUMA, srgb_decode
from engine.training import camera_photos as cp
from engine.training import look_eval

EVAL_SEED = 2026
EVAL_LONG_EDGE = 768
RAW_LONG_EDGE = 1600  # the raws are made at the photographs' full size, then every render is scored at 768 px
EVAL_ISO = 200
ORDER_TOLERANCE = 0.25  # stops: frames whose JPEGs differ less have no order to keep
RAWSAMPLES = Path(__file__).resolve().parents[3] / "shared" / "rawsamples"
Progress = Callable[[str], None]


def linear_dng(linear: np.ndarray, path: Path, camera_name: str, seed: int) -> None:
    """Write linear sRGB (H x W x 3, 1 = the sensor's white) as a noisy RGGB DNG of a real camera."""
    from engine.colour import D65_XY, SRGB
    from engine.training import spectral_data, synthetic

    h, w = (d - d % 2 for d in linear.shape[:2])
    linear = linear[:h, :w]
    camera = spectral_data.camera(camera_name)
    matrix = synthetic.fit_color_matrix(camera, synthetic.illuminant("D65"))
    camera_rgb = linear @ (matrix @ SRGB.rgb_to_xyz).T.astype(np.float32)
    neutral = matrix @ SRGB.rgb_to_xyz @ np.ones(3)
    camera_rgb = camera_rgb / np.float32(neutral.max())  # the brightest channel of white reaches the sensor's white
    channels = np.tile(np.array([[0, 1], [1, 2]]), (h // 2, w // 2))
    signal = np.take_along_axis(camera_rgb, channels[..., None], axis=2)[..., 0]
    shot, read = synthetic.noise_profile(EVAL_ISO)
    rng = np.random.default_rng(seed)
    signal = rng.poisson(np.maximum(signal, 0.0) / shot) * shot + rng.normal(0.0, np.sqrt(read), signal.shape)
    span = synthetic.WHITE_LEVEL - synthetic.BLACK_LEVEL
    cfa = np.clip(np.round(synthetic.BLACK_LEVEL + signal * span), 0, synthetic.WHITE_LEVEL).astype(np.uint16)
    raw = synthetic.SyntheticRaw(
        cfa=cfa, black_level=synthetic.BLACK_LEVEL, white_level=synthetic.WHITE_LEVEL, iso=EVAL_ISO,
        noise_profile=(shot, read), camera=camera, scene=None, gain=1.0, patch_rgb=None,
        camera_neutral=neutral / neutral[1], white_xy=np.asarray(D65_XY), xyz=None, linear_srgb=linear,
    )
    synthetic.write_dng(path, raw, make="hostplug", model=f"held-out camera JPEG ({camera_name})", iso=EVAL_ISO,
                        exposure_time=1 / 125, f_number=8.0, noise_profile=(shot, read))


def _styles() -> list[str]:
    from engine.styles import STYLES

    return list(STYLES)


def _target(srgb: np.ndarray, style: str) -> np.ndarray:
    from engine.training.style_targets import style_target

    if style == "natural":
        return srgb
    return style_target(cp.to_batch([srgb]), style)[0].permute(1, 2, 0).numpy()


def _render(path: Path, **recipe: Any) -> np.ndarray:
    import engine

    return engine.render(engine.open(path), engine.Recipe(**recipe)).pixels


def _classical(path: Path) -> np.ndarray:
    import engine

    recipe = engine.Recipe(stages={"photofinish": engine.StageSettings(implementation="classical")})
    return engine.render(engine.open(path), recipe).pixels


def held_out_cameras(progress: Progress, limit: int | None = None, part: str = "test",
                     styles: list[str] | None = None, draws: int = 1) -> dict[str, Any]:
    """Part 1 (see the module docstring); ``part="validation"`` scores the validation cameras instead (model
    selection, :func:`engine.training.camera_photos.validation_cameras`), ``styles`` only some styles.

    ``draws`` raws per JPEG: the first as described; each further one through the next held-out sensor, under
    its own drawn camera rendering (seed ``EVAL_SEED + index + 1000 * draw``) and noise. One image's win or loss
    against LibRaw turns on that draw's exposure, so more draws give a steadier share of wins."""
    import cv2

    from engine.training.pipeline_eval import libraw_render
    from engine.training.spectral_data import HELD_OUT_CAMERAS as SENSORS

    photos = [p for p in cp.load(part, RAW_LONG_EDGE) if p.folder == "cameras"][:limit]
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for index, photo in enumerate(photos):
            h, w = (d - d % 2 for d in photo.srgb.shape[:2])
            scale = EVAL_LONG_EDGE / max(h, w)
            jpeg = cv2.resize(photo.srgb[:h, :w], (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            for draw in range(draws):
                seed = EVAL_SEED + index + 1000 * draw
                look = cp.CameraLook.draw(np.random.default_rng(seed))
                sensor = SENSORS[(index + draw) % len(SENSORS)]
                dng = Path(folder) / f"{index}-{draw}.dng"
                linear_dng(cp.unprocess(photo.srgb, look), dng, sensor, seed)
                name = photo.name if draw == 0 else f"{photo.name} (draw {draw + 1})"
                progress(f"held-out camera {index + 1}/{len(photos)}: {name} ({sensor} sensor)")
                row: dict[str, Any] = {"sensor": sensor, "look": look.__dict__}
                for style in styles or _styles():
                    row[style] = look_eval.scores(_render(dng, style=style), _target(jpeg, style)).as_dict()
                row["classical"] = look_eval.scores(_classical(dng), jpeg).as_dict()
                row["libraw"] = look_eval.scores(libraw_render(dng), jpeg).as_dict()
                rows[name] = row
    return {"images": rows, **summary(rows)}


def summary(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean scores per renderer, and how often natural beats LibRaw."""
    names = [k for k in next(iter(rows.values())) if k not in ("sensor", "look")]
    mean = {n: look_eval.mean_scores([look_eval.Scores(**r[n]) for r in rows.values()]).as_dict() for n in names}
    psnr_wins = [r["natural"]["psnr"] > r["libraw"]["psnr"] for r in rows.values()]
    de_wins = [r["natural"]["de2000"] < r["libraw"]["de2000"] for r in rows.values()]
    both = [a and b for a, b in zip(psnr_wins, de_wins, strict=True)]
    return {"mean": mean, "natural_beats_libraw": {
        "psnr": round(float(np.mean(psnr_wins)), 3), "de2000": round(float(np.mean(de_wins)), 3),
        "both": round(float(np.mean(both)), 3), "images": len(rows)}}


def real_raws(raws: Path, progress: Progress) -> dict[str, Any]:
    """Part 2 (see the module docstring)."""
    from engine.training.pipeline_eval import PREVIEW_FILES, embedded_preview, libraw_render

    rows: dict[str, Any] = {}
    for name in PREVIEW_FILES:
        path = raws / name
        preview = embedded_preview(path) if path.is_file() else None
        if preview is None or float(np.mean(preview)) < 0.02:  # the D500's preview is almost black
            continue
        row = {}
        for style in _styles():  # a real raw renders for seconds a style: say which
            progress(f"real raw: {name}, {style}")
            row[style] = look_eval.scores(_render(path, style=style), _target(preview, style)).as_dict()
        progress(f"real raw: {name}, classical photofinish and LibRaw")
        row["classical"] = look_eval.scores(_classical(path), preview).as_dict()
        row["libraw"] = look_eval.scores(libraw_render(path), preview).as_dict()
        rows[name] = row
    return rows


def photofinish(style: str, linear: np.ndarray, auto_exposure: bool = False) -> np.ndarray:
    """The learned photofinish stage on a linear image, as the stage renders it (with ``auto_exposure``
    passed to the network)."""
    from engine.models.photofinish_net import thumbnail, to_json
    from engine.stages.photofinish import PhotofinishParams, apply_operators, only_noise
    from engine.stages.photofinish_learned import load_network

    net = load_network(style)
    with torch.no_grad():
        params = net(thumbnail(linear), auto_exposure=True) if auto_exposure else net(thumbnail(linear))
        operators = {**to_json(params), "stop_at_gamut": PhotofinishParams().stop_at_gamut}
        if only_noise(linear):
            operators["gain_ev"] = 0.0
        x = torch.from_numpy(np.ascontiguousarray(linear.transpose(2, 0, 1)))[None]
        return apply_operators(x, operators)[0].permute(1, 2, 0).numpy()


def _brightness(srgb: np.ndarray) -> float:
    """log2 of the mean linear luminance of an sRGB-encoded image."""
    y = srgb_decode(srgb) @ np.array(LUMA, dtype=np.float32)
    return float(np.log2(max(float(np.mean(y)), 1e-6)))


def brackets(progress: Progress, style: str = "natural") -> dict[str, Any]:
    """Part 3 (see the module docstring)."""
    photos = [p for p in cp.load("all", 384) if p.folder == "rawio" and p.series]
    series: dict[str, list[cp.CameraPhoto]] = {}
    for p in photos:
        series.setdefault(p.series, []).append(p)
    out: dict[str, Any] = {}
    for index, (name, frames) in enumerate(sorted(series.items())):
        if len(frames) < 2:
            continue
        progress(f"brackets: {name}")
        look = cp.CameraLook.draw(np.random.default_rng(EVAL_SEED + 1000 + index))
        jpeg = [_brightness(f.srgb) for f in frames]
        row: dict[str, Any] = {"frames": [f.name for f in frames], "held_out": name in cp.HELD_OUT_SERIES,
                               "jpeg": [round(v, 2) for v in jpeg]}
        for mode, auto in (("default", False), ("auto_exposure", True)):
            rendered = [photofinish(style, cp.unprocess(f.srgb, look), auto) for f in frames]
            levels = [_brightness(r) for r in rendered]
            order_kept = all((levels[i] - levels[j]) * (jpeg[i] - jpeg[j]) > 0 for i in range(len(frames))
                             for j in range(i) if abs(jpeg[i] - jpeg[j]) >= ORDER_TOLERANCE)
            slope = float(np.polyfit(jpeg, levels, 1)[0]) if np.ptp(jpeg) > 0.05 else float("nan")
            psnr = float(np.mean([look_eval.scores(r, f.srgb).psnr for r, f in zip(rendered, frames, strict=True)]))
            row[mode] = {"levels": [round(v, 2) for v in levels], "order_kept": bool(order_kept),
                         "spacing": round(slope, 3), "psnr": round(psnr, 2)}
        out[name] = row
    spacing = {m: round(float(np.nanmean([r[m]["spacing"] for r in out.values()])), 3)
               for m in ("default", "auto_exposure")}
    kept = {m: int(sum(r[m]["order_kept"] for r in out.values())) for m in ("default", "auto_exposure")}
    return {"series": out, "mean_spacing": spacing, "order_kept": kept, "n_series": len(out)}


def photofinish_held_out(style: str = "natural", auto_exposure: bool = False) -> dict[str, Any]:
    """Photofinishing alone on every held-out photograph (cameras, Kodak, rawio), each under one drawn camera
    rendering: a cheap check of the style (no demosaicing, noise or colour stage)."""
    results = []
    for index, photo in enumerate(cp.load("test", 384)):
        look = cp.CameraLook.draw(np.random.default_rng(EVAL_SEED + index))
        image = photofinish(style, cp.unprocess(photo.srgb, look), auto_exposure)
        results.append(look_eval.scores(image, _target(photo.srgb, style)))
    return {"mean": look_eval.mean_scores(results).as_dict(), "images": len(results)}


def speed() -> dict[str, float]:
    """Seconds of the learned photofinish stage per render (a 1024 x 683 low-resolution image) on this CPU."""
    import dataclasses

    from engine.stages.base import Context
    from engine.stages.photofinish import PhotofinishParams
    from engine.stages.photofinish_learned import LearnedPhotofinish, load_network

    @dataclasses.dataclass
    class _Ctx:  # the little of a render context the stage's ``process`` reads (a stand-in, cast to Context)
        device: str = "cpu"
        notes: dict = dataclasses.field(default_factory=dict)

    low = (np.random.default_rng(0).random((683, 1024, 3), dtype=np.float32) * 0.3).astype(np.float32)
    load_network("natural")
    stage = LearnedPhotofinish()

    def render() -> None:
        stage.process(low, {"params": PhotofinishParams()}, cast(Context, _Ctx()))

    seconds = look_eval.time_per_megapixel(render, 1.0)
    return {"photofinish_seconds_per_render": round(seconds, 3), "threads": torch.get_num_threads()}


def run(raws: Path | None = None, weights: Path | None = None, progress: Progress = lambda _: None,
        limit: int | None = None, draws: int = 1) -> dict[str, Any]:
    """Every part of the module docstring, as one JSON-ready report (``draws``: see :func:`held_out_cameras`)."""
    from engine.training.loop import machine
    from engine.training.pipeline_eval import check_raws_folder

    check_raws_folder(raws)
    with models.using_weights(weights):
        models.read_manifest()  # a folder that is none of hostplug's is one line before any work
        report: dict[str, Any] = {
            "machine": machine(), "seed": EVAL_SEED, "split_seed": cp.SPLIT_SEED,
            "held_out_cameras_split": list(cp.HELD_OUT_CAMERAS), "long_edge": EVAL_LONG_EDGE,
            "weights": str(weights) if weights else "installed"}
        report["held_out_cameras"] = held_out_cameras(progress, limit, draws=draws)
        rs = raws or RAWSAMPLES
        report["real_raws"] = real_raws(rs, progress) if rs.is_dir() else {}
        report["brackets"] = brackets(progress)
        report["speed"] = speed()
    return report


def _row(name: str, s: dict[str, float]) -> str:
    return f"| {name:<32} | {s['psnr']:>9.2f} | {s['ssim']:>6.3f} | {s['de2000']:>9.2f} |"


HEAD = "| {:<32} | PSNR (dB) | SSIM   | CIEDE2000 |\n|{}|-----------|--------|-----------|".format("", "-" * 34)


def tables(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    h = report["held_out_cameras"]
    wins = h["natural_beats_libraw"]
    lines = [f"Machine: {report['machine']}; weights: {report['weights']}; seed {report['seed']}, split seed "
             f"{report['split_seed']}", "",
             f"Held-out cameras ({wins['images']} ISO {EVAL_ISO} DNGs of {RAW_LONG_EDGE} px made of camera JPEGs, "
             f"scored at {EVAL_LONG_EDGE} px, "
             "whole pipeline; styles against their targets, others against the JPEG):", HEAD]
    lines += [_row(k, v) for k, v in h["mean"].items()]
    lines += [f"natural beats LibRaw on {100 * wins['psnr']:.0f} % of images in PSNR, {100 * wins['de2000']:.0f} % "
              f"in CIEDE2000, {100 * wins['both']:.0f} % in both"]
    for name, row in report["real_raws"].items():
        lines += ["", f"{name} against its embedded camera JPEG:", HEAD]
        lines += [_row(k, v) for k, v in row.items()]
    b = report["brackets"]
    lines += ["", f"Brackets ({b['n_series']} rawio series, natural, photofinishing alone): order kept in "
              f"{b['order_kept']['default']} (auto-exposure: {b['order_kept']['auto_exposure']}); mean spacing "
              f"{b['mean_spacing']['default']} (auto-exposure: {b['mean_spacing']['auto_exposure']}; 1 = the "
              "camera's)"]
    for name, row in b["series"].items():
        lines.append(f"- {name}{' (held out)' if row['held_out'] else ''}: JPEG {row['jpeg']}, render "
                     f"{row['default']['levels']} (spacing {row['default']['spacing']}, PSNR {row['default']['psnr']}"
                     f"), auto {row['auto_exposure']['levels']} (spacing {row['auto_exposure']['spacing']})")
    lines += ["", f"Speed: {report['speed']}"]
    return "\n".join(lines)
