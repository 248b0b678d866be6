"""Big raws: peak memory and time of a whole 61 MP render + 16-bit TIFF write, against LibRaw, in child processes.

    python benchmarks/bench_bigraw.py [--raw18 PATH] [--json results.json]

The 61 MP raw is a synthetic 9600 x 6400 DNG made with the project's own writer
(:func:`engine.training.synthetic.write_dng`): a ColorChecker scene rendered at 2400 x 1600 (ISO 1600, so the
default denoiser runs the network) and its Bayer mosaic repeated 4 x 4, which keeps the CFA phase. It is a portrait
(orientation 6, the camera held upright): the render is turned upright before it is written, the harder case
for memory. Each figure is one
fresh child process, the way a user waits for it:

* **ours**: ``engine.open`` + ``engine.render`` (the default recipe) + writing a 16-bit TIFF, in a process set up
  as the ``hostplug`` command sets up its own (:mod:`hostplug.memory`); its wall time and its own peak RSS
  (``ru_maxrss``). Target: at most 2 GB.
* **LibRaw**: ``rawpy.imread(path).postprocess(use_camera_wb=True)`` in its own process, time and peak RSS.
* **18 MP**: the same pair on the Sony a7R III raw in ``../shared/rawsamples`` (when present), so the 61 MP time
  ratio is compared with the 18 MP one measured in the same run (target: no worse).

Each child also reports its CPU seconds (user + system): on a machine shared with other work, the CPU-time ratio
shifts less than the wall-time ratio.

:func:`measure_61mp` is what ``bench_render.py`` imports.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's engine (the children run in it too), not an installed copy
DEFAULT_RAW18 = REPO.parent / "shared" / "rawsamples" / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW"
WIDTH, HEIGHT = 9600, 6400
REPEAT = 4  # the scene is rendered at WIDTH / REPEAT x HEIGHT / REPEAT and its mosaic repeated
TARGET_PEAK_GB = 2.0

# Each child prints one JSON line: its peak RSS (bytes) and the seconds its work took after the imports.
_CHILD_OURS = """
import json, resource, sys, time
start = time.perf_counter()
from hostplug.memory import keep_freed_memory, no_huge_page_advice
no_huge_page_advice()  # as the hostplug command sets up its process
keep_freed_memory()
import engine
source = engine.open(sys.argv[1])
rendered = engine.render(source)  # the default recipe: at ISO 1600 its denoiser is the learned one
del source
engine.write_image(rendered, sys.argv[2], engine.OutputOptions(overwrite=True, bits=16))
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"peak_rss": usage.ru_maxrss * 1024, "work_s": time.perf_counter() - start,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""
_CHILD_LIBRAW = """
import json, resource, sys, time
start = time.perf_counter()
import rawpy
rawpy.imread(sys.argv[1]).postprocess(use_camera_wb=True)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"peak_rss": usage.ru_maxrss * 1024, "work_s": time.perf_counter() - start,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def make_dng(path: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    """Write a big synthetic DNG (by default the 9600 x 6400 one, about 123 MB) to ``path``; ``width`` and
    ``height`` must be multiples of 2 * :data:`REPEAT`."""
    import numpy as np

    from engine.training.synthetic import camera_from_colour, illuminant, render_raw, scene_colorchecker, write_dng

    scene = scene_colorchecker(height // REPEAT, width // REPEAT)
    raw = render_raw(camera_from_colour(), illuminant("D55"), scene, iso=1600, seed=0)
    big = dataclasses.replace(raw, cfa=np.tile(raw.cfa, (REPEAT, REPEAT)), xyz=None)
    write_dng(path, big, make="hostplug", model=f"Synthetic {width * height / 1e6:.0f} MP", iso=1600,
              exposure_time=1 / 250, f_number=8.0, noise_profile=raw.noise_profile, orientation=6)
    return path


def run_child(code: str, *args: str) -> dict:
    """Wall time (whole process), peak RSS and in-process seconds of one fresh child process."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"child process failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    reported = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), "work_s": round(reported["work_s"], 2), "cpu_s": round(reported["cpu_s"], 2),
            "peak_gb": round(reported["peak_rss"] / 1e9, 2)}


def measure_file(path: Path, tmpdir: Path) -> dict:
    """Ours (render + 16-bit TIFF) and LibRaw's ``postprocess()``, each a fresh process, on one raw."""
    ours = run_child(_CHILD_OURS, str(path), str(tmpdir / f"{path.stem}.tif"))
    libraw = run_child(_CHILD_LIBRAW, str(path))
    return {
        "ours_s": ours["wall_s"], "ours_peak_gb": ours["peak_gb"],
        "libraw_s": libraw["wall_s"], "libraw_peak_gb": libraw["peak_gb"],
        "time_ratio": round(ours["wall_s"] / libraw["wall_s"], 2),
        # CPU seconds (user + system) of each process: less at the mercy of other work on a shared machine
        "ours_cpu_s": ours["cpu_s"], "libraw_cpu_s": libraw["cpu_s"],
        "cpu_time_ratio": round(ours["cpu_s"] / libraw["cpu_s"], 2),
        "peak_ratio": round(ours["peak_gb"] / libraw["peak_gb"], 2),
    }


def measure_61mp(tmpdir: str | Path) -> dict:
    """Make the 61 MP DNG in ``tmpdir`` and measure it (see the module docstring); the figures as a flat dict.

    Keys: ``megapixels``, ``ours_s``, ``ours_peak_gb``, ``libraw_s``, ``libraw_peak_gb``, ``time_ratio``,
    ``ours_cpu_s``, ``libraw_cpu_s``, ``cpu_time_ratio``, ``peak_ratio``, ``target_peak_gb_max`` and
    ``meets_peak_target``.
    """
    tmpdir = Path(tmpdir)
    dng = make_dng(tmpdir / "synthetic_61mp.dng")
    try:
        results = {"megapixels": round(WIDTH * HEIGHT / 1e6, 1), **measure_file(dng, tmpdir)}
    finally:
        dng.unlink(missing_ok=True)
        (tmpdir / f"{dng.stem}.tif").unlink(missing_ok=True)
    results["target_peak_gb_max"] = TARGET_PEAK_GB
    results["meets_peak_target"] = results["ours_peak_gb"] <= TARGET_PEAK_GB
    return results


def main(argv: list[str] | None = None) -> dict:
    """Measure the 61 MP DNG and, when present, the 18 MP raw; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw18", type=Path, default=DEFAULT_RAW18, help="the 18 MP raw to compare with")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    print(f"{'':22} {'ours s':>8} {'GB':>6} {'LibRaw s':>9} {'GB':>6} {'time ratio':>11} {'CPU-time ratio':>15}")

    def row(name: str, r: dict) -> None:
        print(f"{name:22} {r['ours_s']:8.2f} {r['ours_peak_gb']:6.2f} {r['libraw_s']:9.2f} "
              f"{r['libraw_peak_gb']:6.2f} {r['time_ratio']:10.2f}x {r['cpu_time_ratio']:14.2f}x", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        results = {"cpus": os.cpu_count(), "61mp": measure_61mp(tmp)}
        row("61 MP synthetic DNG", results["61mp"])
        if args.raw18.is_file():
            results["18mp"] = measure_file(args.raw18, Path(tmp))
            row("18 MP Sony ARW", results["18mp"])
    big = results["61mp"]
    verdict = [f"peak {big['ours_peak_gb']:.2f} GB {'<=' if big['meets_peak_target'] else '>'} {TARGET_PEAK_GB} GB"]
    if "18mp" in results:
        no_worse = big["time_ratio"] <= results["18mp"]["time_ratio"]
        results["time_ratio_no_worse_than_18mp"] = no_worse
        verdict.append(f"61 MP time ratio {'no worse than' if no_worse else 'WORSE than'} 18 MP's")
    print("; ".join(verdict))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
