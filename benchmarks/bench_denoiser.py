"""The whole learned pipeline (learned denoiser and learned detail) against LibRaw, in-process, in one run.

    python benchmarks/bench_denoiser.py [--raw PATH] [--repeats 3] [--json results.json]

On the 18 MP Sony a7R III raw by default: ``engine.open`` + ``engine.render`` with ``--use denoise=learned
--use detail=learned`` (their default networks: ``denoise-mid3``, ``detail-fast``), against
``rawpy.imread(path).postprocess(use_camera_wb=True)``, in a process whose memory is set up as every hostplug process
sets it up (:func:`hostplug.memory.keep_freed_memory`: without it each network tile takes fresh pages from the
system, about a third more time for the denoiser on 2 cores). One warm-up each (models load, numba's kernels come from
cache, LibRaw initialises), then ``repeats`` alternating repetitions; medians and their ratio (target: at most
5x). The render's own per-stage seconds (median over the repetitions) show where the time goes.
``benchmarks/bench_render.py`` imports :func:`measure_learned_pipeline` for its table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RAW = REPO.parent / "shared" / "rawsamples" / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW"
TARGET_RATIO = 5.0


def learned_recipe() -> Any:
    """The recipe of the whole learned pipeline: learned denoiser and learned detail, their default networks."""
    import engine

    return engine.Recipe(stages={"denoise": engine.StageSettings(implementation="learned"),
                                 "detail": engine.StageSettings(implementation="learned")})


def _default_networks() -> str:
    """The networks the learned stages use by default, as the manifest names them."""
    from engine.stages.denoise_learned import LearnedDenoiseParams
    from engine.stages.detail_learned import LearnedDetailParams

    return f"denoise-{LearnedDenoiseParams().model}, detail-{LearnedDetailParams().model}"


def _time_ours(path: Path, recipe: Any) -> tuple[float, dict[str, float]]:
    import engine

    start = time.perf_counter()
    rendered = engine.render(engine.open(path), recipe)
    return time.perf_counter() - start, rendered.timings


def _time_libraw(path: Path) -> float:
    import rawpy

    start = time.perf_counter()
    with rawpy.imread(str(path)) as raw:
        raw.postprocess(use_camera_wb=True)
    return time.perf_counter() - start


def measure_learned_pipeline(raw_path: str | Path = DEFAULT_RAW, repeats: int = 3) -> dict[str, Any]:
    """Seconds of our in-process render with the learned denoiser and detail stages, of LibRaw's in-process
    ``postprocess(use_camera_wb=True)``, alternating, after one warm-up each; medians, ratio, per-stage medians."""
    import rawpy
    import torch

    from hostplug.memory import keep_freed_memory

    keep_freed_memory()  # as every hostplug process (command, render service, watch workers) runs the engine
    path = Path(raw_path)
    recipe = learned_recipe()
    _time_ours(path, recipe)
    _time_libraw(path)
    ours, libraw, stages = [], [], []
    for _ in range(repeats):
        seconds, timings = _time_ours(path, recipe)
        ours.append(seconds)
        stages.append(timings)
        libraw.append(_time_libraw(path))
    with rawpy.imread(str(path)) as raw:
        megapixels = raw.sizes.width * raw.sizes.height / 1e6
    ratio = statistics.median(ours) / statistics.median(libraw)
    return {
        "file": path.name,
        "megapixels": round(megapixels, 1),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "repeats": repeats,
        "recipe": f"--use denoise=learned --use detail=learned ({_default_networks()})",
        "ours_learned_s": [round(t, 3) for t in ours],
        "libraw_postprocess_s": [round(t, 3) for t in libraw],
        "ours_learned_median_s": round(statistics.median(ours), 3),
        "libraw_median_s": round(statistics.median(libraw), 3),
        "ratio": round(ratio, 2),
        "stage_median_s": {name: round(statistics.median(t[name] for t in stages), 3) for name in stages[0]},
        "target_ratio_max": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="raw file to render (default: the Sony)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not args.raw.is_file():
        parser.error(f"{args.raw} not found (the shared raw samples live in ../shared/rawsamples)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = measure_learned_pipeline(args.raw, args.repeats)
    print(f"{result['file']}: {result['megapixels']} MP, {result['cpus']} CPUs, {result['torch_threads']} torch "
          f"threads, load average {result['load_average_1min']}, {result['repeats']} repeats after one warm-up")
    print(f"learned pipeline (in-process, median)  {result['ours_learned_median_s']:.2f} s")
    print(f"LibRaw postprocess (in-process, median) {result['libraw_median_s']:.2f} s")
    print(f"ratio {result['ratio']:.2f}x (target <= {TARGET_RATIO:g}x): "
          f"{'met' if result['meets_target'] else 'NOT MET'}")
    print("stages (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in result["stage_median_s"].items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
