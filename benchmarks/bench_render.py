"""hostplug against LibRaw, every figure of issue 12 in one run, on the 18 MP Sony a7R III raw.

    python benchmarks/bench_render.py [--raw PATH] [--repeats 3] [--json results.json]
                                      [--skip-service] [--skip-learned] [--skip-61mp] [--gimp]

Every row is a ratio against LibRaw measured in the same run, the way a user waits for it:

* **cold process**: a fresh ``hostplug render RAW -o x.tif --no-service`` (a 16-bit TIFF), with the classical
  denoiser (``--use denoise=classical``: the start-up and pipeline the 2.5x target was set for) and with the
  default recipe (whose denoiser, "auto", runs the network on this ISO 3200 raw), against a fresh LibRaw script
  process, ``rawpy`` ``postprocess(use_camera_wb=True, output_bps=16)`` written as
  an uncompressed 16-bit TIFF with ``tifffile``; alternating, medians (target: at most 2.5x).
* **through the service**: the same command with the render service running, repeated, against the same script
  (``benchmarks/bench_service.py``; target: at most 1.3x).
* **in-process**: ``engine.open`` + ``engine.render`` with the classical stages against ``postprocess()`` in one
  process, its memory set up as hostplug's processes set it up (:func:`hostplug.memory.keep_freed_memory`); one
  warm-up each, alternating, medians (target: at most 2x).
* **learned pipeline**: the same with the learned denoiser and detail stages
  (``benchmarks/bench_denoiser.py``; target: at most 5x).
* **peak memory**: a child process rendering and writing the 18 MP raw, and the 61 MP synthetic DNG
  (``benchmarks/bench_bigraw.py``; target: at most 2 GB), against LibRaw's own child process.

Also: the whole-process times of ``--help``, ``info``, ``show``, ``presets`` and ``queue`` (target: under
0.5 s each), and with ``--gimp`` GIMP 3 opening the raw through the plug-in (target: under 3 s). A row whose
benchmark is missing or fails says "not measured" and why. Every process runs this checkout (``PYTHONPATH``).
The machine's load average is printed: on a shared machine, trust the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from bench_service import HOSTPLUG, LIBRAW_SCRIPT, checkout_env  # noqa: E402

REPO = BENCHMARKS.parent
DEFAULT_RAW = REPO.parent / "shared" / "rawsamples" / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW"

# The render a child process does for the 18 MP peak-memory figure: the default recipe, in a process set up as the
# hostplug command sets up its own.
_CHILD_RENDER = """
import sys
from hostplug.memory import keep_freed_memory, no_huge_page_advice
no_huge_page_advice()
keep_freed_memory()
import engine
source = engine.open(sys.argv[1])
engine.write_image(engine.render(source), sys.argv[2], engine.OutputOptions(overwrite=True))
"""
_CHILD_LIBRAW = "import sys, rawpy; rawpy.imread(sys.argv[1]).postprocess(use_camera_wb=True)"
STARTUP_COMMANDS = ("--help", "info", "show", "presets", "queue")
TARGETS = {"cold": 2.5, "service": 1.3, "in_process": 2.0, "learned": 5.0, "peak_61mp_gb": 2.0, "startup_s": 0.5,
           "gimp_s": 3.0}


def classical_recipe() -> Any:
    import engine

    return engine.Recipe(stages={"denoise": engine.StageSettings(implementation="classical")})


def time_ours(path: Path) -> tuple[float, Any]:
    import engine

    start = time.perf_counter()
    rendered = engine.render(engine.open(path), classical_recipe())
    return time.perf_counter() - start, rendered


def time_libraw(path: Path) -> float:
    import rawpy

    start = time.perf_counter()
    with rawpy.imread(str(path)) as raw:
        raw.postprocess(use_camera_wb=True)
    return time.perf_counter() - start


def wall(args: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one whole process (its output discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def peak_rss(args: list[str]) -> int:
    """Peak RSS (bytes) of a child, via a fresh grandchild so earlier children cannot mask it."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *args], check=True, capture_output=True, text=True,
                         env=checkout_env())
    return int(out.stdout.strip()) * 1024


def measure_in_process(path: Path, repeats: int) -> dict[str, Any]:
    """The classical render in this process against ``postprocess()``, alternating, after one warm-up each."""
    from hostplug.memory import keep_freed_memory

    keep_freed_memory()  # as every hostplug process runs the engine
    time_ours(path)  # warm-up: numba's compiled kernels load from cache, torch and LibRaw initialise
    time_libraw(path)
    ours, libraw = [], []
    for _ in range(repeats):
        ours.append(time_ours(path)[0])
        libraw.append(time_libraw(path))
    return {"ours_s": [round(t, 3) for t in ours], "libraw_s": [round(t, 3) for t in libraw],
            "ours_median_s": round(statistics.median(ours), 3), "libraw_median_s": round(statistics.median(libraw), 3),
            "ratio": round(statistics.median(ours) / statistics.median(libraw), 2)}


def measure_cold(path: Path, repeats: int, tmp: Path) -> dict[str, Any]:
    """Fresh ``hostplug render --no-service`` processes, with the default recipe and with the classical denoiser
    (``--use denoise=classical``), against a fresh LibRaw script process, alternating."""
    env = checkout_env(HOSTPLUG_NO_SERVICE="1")
    ours_cmd = [*HOSTPLUG, "render", str(path), "-o", str(tmp / "cold.tif"), "--overwrite", "--no-service"]
    classical_cmd = [*ours_cmd, "--use", "denoise=classical"]
    libraw_cmd = [sys.executable, "-c", LIBRAW_SCRIPT, str(path), str(tmp / "libraw.tif")]
    wall(libraw_cmd, env)  # the page cache holds the raw for both
    ours, classical, libraw = [], [], []
    for _ in range(repeats):
        ours.append(wall(ours_cmd, env))
        classical.append(wall(classical_cmd, env))
        libraw.append(wall(libraw_cmd, env))
    libraw_median = statistics.median(libraw)
    return {"ours_s": [round(t, 3) for t in ours], "classical_s": [round(t, 3) for t in classical],
            "libraw_script_s": [round(t, 3) for t in libraw],
            "ours_median_s": round(statistics.median(ours), 3),
            "classical_median_s": round(statistics.median(classical), 3),
            "libraw_script_median_s": round(libraw_median, 3),
            "ratio": round(statistics.median(ours) / libraw_median, 2),
            "classical_ratio": round(statistics.median(classical) / libraw_median, 2)}


def measure_startup(path: Path, repeats: int) -> dict[str, float]:
    """Median whole-process seconds of each light command (no service involved)."""
    env = checkout_env(HOSTPLUG_NO_SERVICE="1")
    arguments = {"--help": [], "info": [str(path)], "show": [str(path)], "presets": [], "queue": []}
    times: dict[str, list[float]] = {name: [] for name in STARTUP_COMMANDS}
    for _ in range(repeats):
        for name in STARTUP_COMMANDS:
            command = [*HOSTPLUG, *([name] if name != "--help" else ["--help"]), *arguments[name]]
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
            times[name].append(time.perf_counter() - start)
    return {name: round(statistics.median(values), 3) for name, values in times.items()}


def optional(name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run another benchmark's measurement; a missing or failing one is recorded as not measured, with why."""
    try:
        return measure()
    except ImportError as e:
        return {"not_measured": f"{name} is not available ({e})"}
    except Exception as e:  # noqa: BLE001 - one broken benchmark must not lose the others' figures
        return {"not_measured": f"{name} failed: {type(e).__name__}: {str(e).strip()[:200]}"}


def _row(name: str, ours: str, libraw: str, ratio: float | None, target: str, met: bool | None) -> tuple[str, ...]:
    verdict = "" if met is None else ("met" if met else "NOT MET")
    return (name, ours, libraw, f"{ratio:.2f}x" if ratio is not None else "-", target, verdict)


def table(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """The printed rows: what, hostplug, LibRaw, ratio, target, verdict (a skipped or failed figure says so)."""
    rows: list[tuple[str, ...]] = []
    Figures = Callable[[dict[str, Any]], tuple[str, str, float, bool | None]]  # ours, LibRaw, ratio, met

    def add(name: str, key: str, target: str, figures: Figures) -> None:
        measured = results.get(key)
        if measured is None:
            rows.append((name, "skipped", "", "", target, ""))
        elif "not_measured" in measured:
            rows.append((name, "not measured: " + measured["not_measured"], "", "", target, ""))
        else:
            ours, libraw, ratio, met = figures(measured)
            rows.append(_row(name, ours, libraw, ratio, target, met))

    add("cold process, classical denoiser", "cold", "<= 2.5x", lambda f: (
        f"{f['classical_median_s']:.2f} s", f"{f['libraw_script_median_s']:.2f} s*", f["classical_ratio"],
        f["classical_ratio"] <= TARGETS["cold"]))
    add("cold process, default recipe", "cold", "-", lambda f: (
        f"{f['ours_median_s']:.2f} s", f"{f['libraw_script_median_s']:.2f} s*", f["ratio"], None))
    add("through the service, repeated", "service", "<= 1.3x", lambda f: (
        f"{f['service_median_s']:.2f} s", f"{f['libraw_script_median_s']:.2f} s*", f["service_ratio"],
        f["service_ratio"] <= TARGETS["service"]))
    for kind, what in (("exposure", "a new exposure"), ("unseen", "a raw not seen before")):
        add(f"through the service, {what}", "service", "-", lambda f, kind=kind: (
            f"{statistics.median(f[f'service_{kind}_process_s']):.2f} s", f"{f['libraw_script_median_s']:.2f} s*",
            f[f"service_{kind}_ratio"], None))
    add("in-process render, classical", "in_process", "<= 2x", lambda f: (
        f"{f['ours_median_s']:.2f} s", f"{f['libraw_median_s']:.2f} s", f["ratio"],
        f["ratio"] <= TARGETS["in_process"]))
    add("in-process, learned pipeline", "learned", "<= 5x", lambda f: (
        f"{f['ours_learned_median_s']:.2f} s", f"{f['libraw_median_s']:.2f} s", f["ratio"],
        f["ratio"] <= TARGETS["learned"]))
    add("peak RSS, 18 MP render + write", "peak_18mp", "-", lambda f: (
        f"{f['ours_gb']:.2f} GB", f"{f['libraw_gb']:.2f} GB", f["ours_gb"] / f["libraw_gb"], None))
    add("peak RSS, 61 MP render + write", "61mp", "<= 2 GB", lambda f: (
        f"{f['ours_peak_gb']:.2f} GB", f"{f['libraw_peak_gb']:.2f} GB", f["peak_ratio"],
        f["ours_peak_gb"] <= TARGETS["peak_61mp_gb"]))
    big = results.get("61mp")
    if big is not None and "not_measured" not in big:
        rows.append(_row("time, 61 MP render + write", f"{big['ours_s']:.2f} s", f"{big['libraw_s']:.2f} s",
                         big["time_ratio"], "as 18 MP", None))
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="raw file to render (default: the Sony)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each figure (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--skip-service", action="store_true", help="leave out the render-service figures")
    parser.add_argument("--skip-learned", action="store_true", help="leave out the learned pipeline")
    parser.add_argument("--skip-61mp", action="store_true", help="leave out the 61 MP DNG")
    parser.add_argument("--gimp", action="store_true", help="also time GIMP 3 opening the raw (needs root)")
    args = parser.parse_args(argv)
    if not args.raw.is_file():
        parser.error(f"{args.raw} not found (the shared raw samples live in ../shared/rawsamples)")
    os.environ["PYTHONPATH"] = checkout_env()["PYTHONPATH"]
    path = args.raw
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {"file": path.name, "cpus": os.cpu_count(),
                               "machine": platform.processor() or platform.machine(), "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        results["startup_s"] = measure_startup(path, args.repeats)
        results["cold"] = optional("the cold process", lambda: measure_cold(path, args.repeats, Path(tmp)))
        results["peak_18mp"] = optional("the 18 MP peak", lambda: {
            "ours_gb": round(peak_rss([sys.executable, "-c", _CHILD_RENDER, str(path), str(Path(tmp) / "p.tif")])
                             / 1e9, 2),
            "libraw_gb": round(peak_rss([sys.executable, "-c", _CHILD_LIBRAW, str(path)]) / 1e9, 2)})
        if not args.skip_61mp:
            from_bigraw = lambda: __import__("bench_bigraw").measure_61mp(tmp)  # noqa: E731
            results["61mp"] = optional("bench_bigraw.measure_61mp", from_bigraw)
    if not args.skip_service:
        from bench_service import measure as measure_service

        results["service"] = optional("bench_service.measure",
                                      lambda: measure_service(path, repeats=args.repeats, with_fallback=False))
    if args.gimp:
        from bench_service import measure_gimp

        results["gimp"] = optional("bench_service.measure_gimp", lambda: measure_gimp(path))
    results["in_process"] = optional("the in-process render", lambda: measure_in_process(path, args.repeats))
    if not args.skip_learned:
        results["learned"] = optional(
            "bench_denoiser.measure_learned_pipeline",
            lambda: __import__("bench_denoiser").measure_learned_pipeline(path, repeats=args.repeats))
    results["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]

    print(f"{path.name}, {os.cpu_count()} CPUs, {args.repeats} repeats; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    header = ("", "hostplug", "LibRaw", "ratio", "target", "")
    widths = (34, 14, 12, 8, 14, 7)
    for row in (header, *table(results)):
        if len(row[1]) > widths[1] and not row[2]:  # a "not measured" row: one long line
            print(f"{row[0]:{widths[0]}} {row[1]}")
            continue
        print(" ".join(f"{cell:>{w}}" if i else f"{cell:{w}}" for i, (cell, w) in enumerate(zip(row, widths,
                                                                                               strict=True))))
    print("* LibRaw script: rawpy postprocess(output_bps=16) + uncompressed 16-bit TIFF (tifffile), whole process")
    startup = results["startup_s"]
    print("whole process, target < 0.5 s: " + ", ".join(
        f"{name} {seconds:.2f} s{'' if seconds < TARGETS['startup_s'] else ' (NOT MET)'}"
        for name, seconds in startup.items()))
    gimp = results.get("gimp")
    if gimp is not None:
        if "not_measured" in gimp:
            print(f"GIMP 3 opening the raw: not measured ({gimp['not_measured']})")
        else:
            print(f"GIMP 3 opening the raw through the plug-in: {gimp['gimp_open_median_s']:.2f} s (target < 3 s; "
                  f"first, service started: {gimp['gimp_first_open_s']:.2f} s; GIMP reading the TIFF alone: "
                  f"{gimp['gimp_tiff_load_s']} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
