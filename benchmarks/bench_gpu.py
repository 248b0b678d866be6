"""The GPU path in one short run: CPU and GPU renders agree, and how fast a 24 MP render is, first pass and warm.

    python benchmarks/bench_gpu.py [--device cuda] [--megapixels 24] [--check-megapixels 6] [--repeats 5]
                                   [--json results.json]

Made for a lent GPU machine (about 15 minutes of device time in all, start-up included), so it does only this:

1. **Agreement.** A synthetic DNG of ``--check-megapixels`` (made with the project's own writer, as in
   ``bench_bigraw.py``) is rendered on the CPU (compiled loops, OpenCV) and on ``--device``, with the classical
   stages and with the whole learned pipeline (learned denoiser, learned style, learned detail), the networks in
   float32 on both sides (:func:`engine.models.denoise_tiles.float32_only`: a CPU render runs the denoiser in
   bfloat16 where the CPU has it, a GPU render in float32). The largest difference of the display-referred pixels
   must be at most 1/255. What bfloat16 itself changes on the CPU is printed beside it.
2. **Speed.** A 24 MP synthetic DNG (6000 x 4000), opened once, rendered with the whole learned pipeline: the
   first render in the process (CUDA start, model loading, kernel selection) and ``--repeats`` warm renders
   (median), each stage's seconds of the median run, and the decode (``engine.open``) on its own; then the same
   for the classical stages, to show what the networks add. Goal on one H200: 0.3 s warm (learned pipeline).

``--device cpu`` tries the script here: the "GPU" side is then the torch path of every stage run on the CPU
(:func:`engine.kernels.torch_everywhere`), so the agreement check still compares two different code paths; use
small sizes (``--megapixels 2 --check-megapixels 0.5``). The script prints a table and one JSON object; ``$OUT``
(when set, as on the device machine) also receives ``bench_gpu.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This checkout's engine, not an installed copy; and bench_bigraw beside this file (benchmarks is no package).
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
from bench_bigraw import REPEAT, make_dng  # noqa: E402

TOLERANCE = 1.0 / 255.0
GOAL_WARM_S = 0.3


def size_for(megapixels: float) -> tuple[int, int]:
    """A 3:2 width and height of about ``megapixels``, multiples of what :func:`make_dng` needs."""
    step = 2 * REPEAT
    height = max(step, round((megapixels * 1e6 / 1.5) ** 0.5 / step) * step)
    return round(height * 1.5 / step) * step, height


def recipes(denoise_model: str | None) -> dict[str, object]:
    """The classical stages, and the whole learned pipeline (learned denoiser and detail; learned style)."""
    import engine

    learned_denoise = {"strength": 100.0, **({"model": denoise_model} if denoise_model else {})}
    return {
        "classical": engine.Recipe(stages={"denoise": engine.StageSettings(implementation="classical"),
                                           "detail": engine.StageSettings(implementation="classical")}),
        "learned": engine.Recipe(stages={"denoise": engine.StageSettings(implementation="learned",
                                                                         params=learned_denoise),
                                         "detail": engine.StageSettings(implementation="learned")}),
    }


def device_side(device: str) -> tuple[str, contextlib.AbstractContextManager]:
    """The device to render on, and the context that puts every stage on its torch path there."""
    from engine import kernels

    return (device, contextlib.nullcontext()) if device != "cpu" else ("cpu", kernels.torch_everywhere())


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def check_agreement(path: Path, device: str, denoise_model: str | None) -> dict[str, float]:
    """Largest absolute difference, CPU against ``device``, of each recipe's rendered pixels."""
    import numpy as np

    import engine
    from engine.models.denoise_tiles import float32_only

    source = engine.open(path)
    differences = {}
    for name, recipe in recipes(denoise_model).items():
        with float32_only():  # the GPU runs the networks in float32: compare like with like
            cpu = engine.render(source, recipe).pixels
            on, context = device_side(device)
            with context:
                other = engine.render(source, recipe, device=on).pixels
        differences[name] = float(np.abs(cpu - other).max())
    return differences


def bfloat16_effect(path: Path, denoise_model: str | None) -> float:
    """Largest absolute difference of the learned pipeline's pixels on the CPU, bfloat16 (what a CPU render runs
    where the CPU has it) against float32: for information, next to the agreement check."""
    import numpy as np

    import engine
    from engine.models.denoise_tiles import float32_only

    source, recipe = engine.open(path), recipes(denoise_model)["learned"]
    with float32_only():
        reference = engine.render(source, recipe).pixels
    return float(np.abs(engine.render(source, recipe).pixels - reference).max())


def time_renders(path: Path, device: str, repeats: int, denoise_model: str | None,
                 pipeline: str = "learned") -> dict[str, object]:
    """Decode once; the first render on ``device`` and ``repeats`` warm ones of a pipeline of :func:`recipes`."""
    import engine

    start = time.perf_counter()
    source = engine.open(path)
    decode_s = time.perf_counter() - start
    recipe = recipes(denoise_model)[pipeline]
    on, context = device_side(device)
    seconds, stages = [], []
    with context:
        for _ in range(1 + repeats):
            start = time.perf_counter()
            rendered = engine.render(source, recipe, device=on)
            synchronise(on)
            seconds.append(time.perf_counter() - start)
            stages.append(rendered.timings)
    warm = seconds[1:]
    median_run = 1 + warm.index(sorted(warm)[len(warm) // 2])
    return {
        "decode_s": round(decode_s, 3),
        "first_s": round(seconds[0], 3),
        "warm_s": [round(t, 3) for t in warm],
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_stages_s": {name: round(t, 4) for name, t in stages[median_run].items()},
    }


def main(argv: list[str] | None = None) -> dict:
    """Run both checks; print a table and the JSON; exit 1 if the outputs disagree by more than 1/255."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to try the script here")
    parser.add_argument("--megapixels", type=float, default=24.0, help="size of the timed render (default 24)")
    parser.add_argument("--check-megapixels", type=float, default=6.0,
                        help="size of the CPU/GPU agreement check (default 6: the CPU side is the slow one)")
    parser.add_argument("--repeats", type=int, default=5, help="warm renders after the first (default 5)")
    parser.add_argument("--denoise-model", help="learned denoiser size (default: the stage's default)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA GPU here; use --device cpu to try the script on the CPU")
    torch.set_num_threads(os.cpu_count() or 1)

    results: dict[str, object] = {"device": args.device, "torch": torch.__version__, "cpus": os.cpu_count()}
    if args.device.startswith("cuda"):
        results["gpu"] = torch.cuda.get_device_name(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        check_size, timed_size = size_for(args.check_megapixels), size_for(args.megapixels)
        check = make_dng(Path(tmp) / "check.dng", *check_size)
        start = time.perf_counter()
        differences = check_agreement(check, args.device, args.denoise_model)
        results["check"] = {"size": list(check_size), "max_abs_difference": differences,
                            "tolerance": round(TOLERANCE, 6), "seconds": round(time.perf_counter() - start, 1),
                            "agree": all(d <= TOLERANCE for d in differences.values())}
        results["check"]["cpu_bfloat16_against_float32"] = bf16 = bfloat16_effect(check, args.denoise_model)
        print(f"agreement (networks in float32 on both), {check_size[0]} x {check_size[1]}: " + ", ".join(
            f"{name} {d * 255:.3f}/255" for name, d in differences.items())
            + f"; the CPU's bfloat16 against its float32: {bf16 * 255:.3f}/255", flush=True)
        timed = make_dng(Path(tmp) / "timed.dng", *timed_size)
        results["timing"] = {"size": list(timed_size), **time_renders(timed, args.device, args.repeats,
                                                                     args.denoise_model)}
        # the classical stages alone: what the learned networks add on top of the rest
        results["timing_classical"] = time_renders(timed, args.device, args.repeats, args.denoise_model,
                                                   "classical")
    timing = results["timing"]
    assert isinstance(timing, dict)
    results["meets_goal"] = args.device.startswith("cuda") and timing["warm_median_s"] <= GOAL_WARM_S
    print(f"whole learned pipeline, {timed_size[0]} x {timed_size[1]} on {args.device}: first "
          f"{timing['first_s']:.2f} s, warm {timing['warm_median_s']:.3f} s (goal {GOAL_WARM_S} s on one H200); "
          f"decode {timing['decode_s']:.2f} s")
    print("warm stages: " + ", ".join(f"{name} {t:.3f}" for name, t in timing["warm_stages_s"].items()))
    classical = results["timing_classical"]
    assert isinstance(classical, dict)
    print(f"classical stages, same raw: first {classical['first_s']:.2f} s, warm {classical['warm_median_s']:.3f} s; "
          + ", ".join(f"{name} {t:.3f}" for name, t in classical["warm_stages_s"].items()))
    print(json.dumps(results))
    for target in [args.json, Path(os.environ["OUT"]) / "bench_gpu.json" if os.environ.get("OUT") else None]:
        if target:
            target.write_text(json.dumps(results, indent=2) + "\n")
    if not results["check"]["agree"]:  # type: ignore[index]
        print(f"CPU AND {args.device.upper()} DISAGREE by more than 1/255", file=sys.stderr)
        sys.exit(1)
    return results


if __name__ == "__main__":
    main()
