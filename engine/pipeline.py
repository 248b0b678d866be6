"""The pipeline: the stages in order, at the resolution each one needs.

demosaic -> denoise -> white_balance -> colour   (full resolution, linear)
         -> photofinish                          (reduced resolution, differentiable operators)
         -> upsample -> detail                   (full resolution, display-referred)

It owns what no stage should: resolution changes, which implementation runs, stages switched off, progress,
saving intermediate results, and orientation. On the torch path (``--device cuda``) the full-resolution image is a
tensor that stays on the device from demosaic to detail; the reduced-resolution stages work on the host (a 1024 px
image: the style network reads it there, and the copies are small).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine import kernels, tiling
from engine.devices import check_device
from engine.errors import OutputError, RecipeError
from engine.io.source import Source, check_sensor, check_source_argument, open_source
from engine.orientation import Orientation, applied
from engine.recipe import Recipe
from engine.results import ProgressCallback, Rendered
from engine.stage_cache import StageCache, stage_keys
from engine.stages.base import Context, Stage, params_dict
from engine.stages.catalogue import DEFAULT_IMPLEMENTATIONS
from engine.stages.colour_matrix import ColourMatrix
from engine.stages.demosaic import Demosaic
from engine.stages.denoise import ClassicalDenoise
from engine.stages.denoise_learned import AutoDenoise, LearnedDenoise
from engine.stages.detail import UnsharpMask
from engine.stages.detail_learned import LearnedDetail
from engine.stages.photofinish import Photofinish
from engine.stages.photofinish_learned import LearnedPhotofinish
from engine.stages.upsample import BilateralGuidedUpsample, BilinearUpsample
from engine.stages.white_balance import WhiteBalance

STAGE_ORDER = ("demosaic", "denoise", "white_balance", "colour", "photofinish", "upsample", "detail")
LOW_RES_LONG_EDGE = 1024

# Every implementation of every stage. Which one a recipe gets by default is a declared fact
# (engine.stages.catalogue.DEFAULT_IMPLEMENTATIONS), not the order of this table.
IMPLEMENTATIONS: dict[str, dict[str, type[Stage]]] = {}


def register(stage: type[Stage]) -> type[Stage]:
    """Add a stage implementation to the registry (usable as a class decorator)."""
    IMPLEMENTATIONS.setdefault(stage.name, {})[stage.implementation] = stage
    return stage


for _stage in (Demosaic, AutoDenoise, ClassicalDenoise, LearnedDenoise, WhiteBalance, ColourMatrix, LearnedPhotofinish,
               Photofinish, BilateralGuidedUpsample, BilinearUpsample, UnsharpMask, LearnedDetail):
    register(_stage)


def stage_for(name: str, recipe: Recipe) -> Stage:
    """The implementation of stage ``name`` that the recipe asks for."""
    choices = IMPLEMENTATIONS[name]
    wanted = recipe.stage(name).implementation
    if wanted is None:
        return choices[DEFAULT_IMPLEMENTATIONS[name]]()
    if wanted not in choices:
        raise RecipeError(f"stage {name!r} has no implementation {wanted!r} (known: {', '.join(choices)})")
    return choices[wanted]()


def switched_params(name: str, implementation: str | None, params: Mapping[str, Any], to: str | None) -> dict[str, Any]:
    """Stage ``name``'s fixed ``params`` of ``implementation`` (None: the default) as a change to implementation
    ``to`` keeps them. Params stored with a version (an older one read from a file, or what
    :func:`engine.stages.catalogue.pin_former_defaults` pinned: ``{"version": 4}`` for "auto" in a recipe of
    version 7 or 8) are of the old implementation's params version, which means nothing to another
    implementation: they are brought up to date by the old implementation's ``migrate`` and keep the values the
    new one has a parameter for (as current params). So ``--use denoise=classical`` on an older recipe or sidecar
    keeps its strength and how it follows the render's size, and ``--use denoise=learned`` the network its "auto"
    ran. Current params (no version), an unchanged implementation, or an unknown stage, implementation or version
    are left as they are, for validation to name what is wrong."""
    params = dict(params)
    choices = IMPLEMENTATIONS.get(name, {})
    default = DEFAULT_IMPLEMENTATIONS.get(name)
    old, new = choices.get(implementation or default or ""), choices.get(to or default or "")
    if "version" not in params or old is None or new is None or old is new:
        return params
    version = params["version"]
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= old.Params.VERSION:
        return params
    del params["version"]
    current = old.migrate(params, version) if version < old.Params.VERSION else params
    names = {f.name for f in dataclasses.fields(new.Params)}
    return {key: value for key, value in current.items() if key in names}


def check_recipe(recipe: Recipe) -> None:
    """Refuse stage settings that name an unknown stage or switch off one that cannot be switched off."""
    for name, settings in recipe.stages.items():
        if name not in IMPLEMENTATIONS:
            raise RecipeError(f"unknown stage {name!r} (stages: {', '.join(STAGE_ORDER)})")
        if not settings.enabled and not stage_for(name, recipe).can_disable:
            raise RecipeError(f"stage {name!r} cannot be switched off")


def render(
    source: Source | str | Path,
    recipe: Recipe | None = None,
    *,
    device: str = "cpu",
    stages_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    preview: int | None = None,
    cache: StageCache | None = None,
    orientation: Orientation | None = None,
) -> Rendered:
    """Render an opened source (or the file at a path) with a recipe (default: ``Recipe()``) on ``device``
    (``"cpu"``, or ``"cuda"`` for a GPU). ``stages_dir`` receives every stage's output and params; ``progress`` is
    called with each stage's name, index and the stage count. ``orientation`` turns the pixels upright (default:
    the file's own EXIF orientation; :func:`engine.render_file` passes the one the raw's sidecar sets); the notes
    record it.

    Raises the :mod:`engine.errors` exceptions: RecipeError for a bad recipe or argument, OptionError for a device
    that is not there, InputNotFoundError / UnsupportedInputError / CorruptInputError for the file, ModelError for
    missing or altered weights, OutputError when ``stages_dir`` cannot be written.

    ``preview`` (a long edge in pixels) scales the image down right after the first stage (demosaic), so every
    later stage works at preview size. ``cache`` keeps each stage's output and resumes after the last stage whose
    inputs are unchanged (:mod:`engine.stage_cache`; the last stage's output is not kept); ``timings`` then lists
    only the stages that ran, and ``stages_dir`` receives only their outputs.
    """
    check_source_argument(source)
    if not isinstance(source, Source):  # a path is opened here, as engine.render_file does
        source = open_source(source)
    _check_arguments(recipe, device, preview, orientation, progress, cache, stages_dir)
    recipe = recipe or Recipe()
    check_recipe(recipe)
    ctx = Context(source=source, recipe=recipe, device=device)
    stages = [stage_for(name, recipe) for name in STAGE_ORDER]
    # Every stage's params are checked before any stage prepares (loads a model) or touches a pixel.
    params = {stage.name: stage.resolve_params(recipe) for stage in stages}
    check_sensor(source)
    stages_dir = _stages_folder(stages_dir) if stages_dir else None  # "" is none, as engine.render_file takes it
    ctx.binning = binning(source, preview)
    keys = stage_keys(source, stages, params, recipe, device, preview) if cache is not None else None
    first, resumed = cache.resume(keys, ctx) if cache is not None and keys else (0, None)
    if not kernels.on_torch(device):
        kernels.load_compiled()  # numba's start-up, lighter than a kernel's first call makes it (see there)
    datas = {stage.name: stage.prepare(params[stage.name], ctx) for stage in stages}
    timings: dict[str, float] = {}
    image: Any = resumed if resumed is not None else np.empty((0, 0, 3), dtype=np.float32)
    on_device = kernels.on_torch(device)
    for index, stage in enumerate(stages):
        if index < first:
            continue
        if progress:
            progress(stage.name, index, len(stages))
        start = time.perf_counter()
        if stage.resolution == "low" and ctx.low_input is None:
            ctx.full_input = image  # kept for the stage that brings the result back to full resolution
            ctx.low_input = image = kernels.to_host(downsample(image, low_res_long_edge(source, preview)))
        if recipe.stage(stage.name).enabled:
            image = tiling.process(stage, image, datas[stage.name], ctx)  # in bands where that is exact
        if on_device and stage.resolution == "full" and isinstance(image, np.ndarray):
            image = kernels.to_device(image, device)  # from a stage that works on the host (LibRaw's demosaic)
        if preview and index == 0:  # the first stage decodes the sensor; all later ones work at preview size
            image = downsample(image, preview)
        if on_device:
            kernels.synchronize(device)
        timings[stage.name] = time.perf_counter() - start
        if cache is not None and keys and index < len(stages) - 1:  # the last output is the caller's to keep
            cache.store(keys[index], image, ctx, stage.name)
        if stages_dir is not None:
            save_stage(stages_dir, index, stage, image, recipe, ctx)
    if progress:
        progress("done", len(stages), len(stages))
    image = kernels.to_host(image)
    turn = orientation or applied(source.orientation, None)
    ctx.notes["orientation"] = turn.note()
    pixels = apply_orientation(np.clip(image, 0.0, 1.0, out=image), turn.value)
    return Rendered(pixels=pixels, recipe=recipe, source=source, notes=ctx.notes, timings=timings, orientation=turn)


def _check_arguments(recipe: Any, device: str, preview: int | None, orientation: Any, progress: Any = None,
                     cache: Any = None, stages_dir: Any = None) -> None:
    """RecipeError for what a script may pass wrongly (the command line's options never do)."""
    if stages_dir is not None and not isinstance(stages_dir, (str, os.PathLike)):
        raise RecipeError(f"stages_dir must be a folder's path, not {type(stages_dir).__name__}")
    if progress is not None and not callable(progress):
        raise RecipeError(f"progress must be a function of (stage, index, count), not {type(progress).__name__}")
    if cache is not None and not isinstance(cache, StageCache):
        raise RecipeError(f"the cache must be an engine.stage_cache.StageCache, not {type(cache).__name__}")
    if recipe is not None and not isinstance(recipe, Recipe):
        raise RecipeError(f"the recipe must be an engine.Recipe, not {type(recipe).__name__}")
    if orientation is not None and not isinstance(orientation, Orientation):
        raise RecipeError("the orientation must be an engine.orientation.Orientation, not "
                          f"{type(orientation).__name__}")
    check_device(device)
    if preview is not None and (isinstance(preview, bool) or not isinstance(preview, numbers.Integral)
                                or preview < 16):
        raise RecipeError(f"preview {preview!r} is not a whole number of pixels of at least 16")


def binning(source: Source, preview: int | None) -> float:
    """How many sensor pixels lie across one pixel of a ``preview``'s image (1: full size)."""
    full = max(source.sensor.shape[:2])
    return full / preview if preview and preview < full else 1.0


def low_res_long_edge(source: Source, preview: int | None) -> int:
    """The long edge of the reduced-resolution stages: ``LOW_RES_LONG_EDGE``; for a preview, the same fraction
    of the preview's long edge as of the full image's (at least 256), so a preview is the full render in small."""
    full = max(source.size)
    if not preview or preview >= full:
        return LOW_RES_LONG_EDGE
    return min(LOW_RES_LONG_EDGE, max(256, round(LOW_RES_LONG_EDGE * preview / full)))


def downsample(image: Any, long_edge: int) -> Any:
    """Area-averaged copy whose long side is at most ``long_edge`` pixels (a tensor stays on its device)."""
    h, w = image.shape[:2]
    scale = long_edge / max(h, w)
    if scale >= 1.0:
        return image.copy() if isinstance(image, np.ndarray) else image.clone()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if not isinstance(image, np.ndarray):
        return kernels.area_resize_torch(image, size)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda im: im[:, ::-1],
    3: lambda im: im[::-1, ::-1],
    4: lambda im: im[::-1],
    5: lambda im: im.transpose(1, 0, 2),
    6: lambda im: np.rot90(im, -1),
    7: lambda im: np.rot90(im.transpose(1, 0, 2), 2),
    8: lambda im: np.rot90(im, 1),
}


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/mirror pixels as the EXIF orientation tag (1-8) says, so viewers need no tag: a view of ``image``,
    not a copy (a 61 MP copy is 737 MB more at the render's peak; the writer reads the view band by band)."""
    turn = _ORIENT.get(orientation)
    return turn(image) if turn else image


def _stages_folder(folder: str | Path) -> Path:
    """The folder for the stages' images, made before any stage runs, so that one that cannot be made costs
    no render."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot write the stages to {folder}: {error.strerror or error}") from error
    return folder


STAGE_FILE = re.compile(r"\d+_[a-z_]+\.(png|json)")  # what save_stage names its files: 4_colour.png, 4_colour.json


def save_stage(folder: Path, index: int, stage: Stage, image: Any, recipe: Recipe, ctx: Context) -> None:
    """Write a stage's output as an 8-bit PNG (linear stages shown sRGB-encoded) and its params as JSON, named as
    :data:`STAGE_FILE` says."""
    from engine.colour import srgb_encode

    stem = folder / f"{index + 1}_{stage.name}"
    image = kernels.to_host(image)
    display = image if stage.encoding == "display" else srgb_encode(image)
    bgr = (np.clip(display, 0.0, 1.0)[..., ::-1] * 255.0 + 0.5).astype(np.uint8)
    # encoded here and written by Python: OpenCV's own writer takes the name as text, and crashed the process on
    # a name that is no UTF-8 (a card copied from Windows)
    ok, png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OutputError(f"cannot encode {stem.name}.png")
    _write_whole(stem.with_name(stem.name + ".png"), png.tobytes())
    info = {
        "stage": stage.name,
        "implementation": stage.implementation,
        "enabled": recipe.stage(stage.name).enabled,
        "params": params_dict(stage.resolve_params(recipe)),
        "decided": ctx.notes.get(stage.name),
        "size": [int(image.shape[1]), int(image.shape[0])],
    }
    _write_whole(stem.with_name(stem.name + ".json"), json.dumps(info, indent=2, default=str).encode())


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` under a hidden temporary name, then give it ``path``, as every output is written
    (:mod:`engine.output.publish`): a stage image is whole or not there."""
    from engine.output.publish import write_whole

    try:
        write_whole(path, data)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error
