"""A repeated ``hostplug render`` through the resident render service against a LibRaw script, process for process.

    python benchmarks/bench_service.py [--raw PATH] [--repeats 5] [--json results.json]

Measured in one run, on the same file, each a whole process timed from outside (start-up, imports, reading the
raw, rendering, writing the file):

* **through the service**: ``hostplug render RAW -o out.tif --bits 16 --overwrite`` with a service running (its
  own, in a private runtime folder, started and warmed by one render first);
* **LibRaw script**: ``rawpy.imread(RAW).postprocess(use_camera_wb=True, output_bps=16)`` written with
  ``tifffile`` as an uncompressed 16-bit TIFF;
* **in-process fallback**: the same command with ``--no-service`` (what a user gets without the service).

The repetitions alternate between the commands; medians and ratios. It also records what the client process
imports (``python -X importtime``): it must not load torch, numba or rawpy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RAW = REPO.parent / "shared" / "rawsamples" / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW"
HEAVY = ("torch", "numba", "rawpy", "cv2", "scipy")

LIBRAW_SCRIPT = """
import sys, rawpy, tifffile
with rawpy.imread(sys.argv[1]) as raw:
    rgb = raw.postprocess(use_camera_wb=True, output_bps=16)
tifffile.imwrite(sys.argv[2], rgb, photometric="rgb")
"""
HOSTPLUG = [sys.executable, "-c", "from hostplug.cli import main; main()"]


def timed(args: list[str], env: dict[str, str], inside: list[float] | None = None) -> float:
    """Wall time of one process; with ``inside``, also the render's own seconds from its ``--json`` line."""
    start = time.perf_counter()
    done = subprocess.run(args, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if inside is not None:
        inside.append(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
    return wall


def client_imports(args: list[str], env: dict[str, str]) -> dict[str, object]:
    """What the client process imports (``-X importtime``): heavy modules found and the total import time."""
    done = subprocess.run([sys.executable, "-X", "importtime", *args[1:]], env=env, capture_output=True, text=True,
                          check=True)
    modules, total_us = [], 0
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        modules.append(name.strip())
        if len(name) - len(name.lstrip()) == 1:  # a top-level import: its cumulative time counts once
            total_us += int(parts[1])
    return {"heavy_modules": sorted({m.split(".")[0] for m in modules} & set(HEAVY)),
            "modules": len(modules), "import_s": round(total_us / 1e6, 3)}


def measure(raw: Path, repeats: int = 5, with_fallback: bool = True) -> dict[str, object]:
    """Time the three commands (see the module docstring); the service is started and stopped here."""
    runtime = Path(tempfile.mkdtemp(prefix="hpb", dir="/tmp"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("HOSTPLUG_NO_SERVICE", None)
    out = Path(tempfile.mkdtemp(prefix="hostplug-bench-"))
    ours = [*HOSTPLUG, "render", str(raw), "-o", str(out / "service.tif"), "--bits", "16", "--overwrite", "--json"]
    libraw = [sys.executable, "-c", LIBRAW_SCRIPT, str(raw), str(out / "libraw.tif")]
    fallback = [*HOSTPLUG, "render", str(raw), "-o", str(out / "local.tif"), "--bits", "16", "--overwrite",
                "--no-service"]
    try:
        start = time.perf_counter()
        subprocess.run([*HOSTPLUG, "render", "--service", str(raw), "-o", str(out / "first.tif"), "--bits", "16"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        first_s = time.perf_counter() - start  # service started on demand: start-up, engine, models, render
        timed(libraw, env)  # warm the page cache and LibRaw's libraries alike
        service_s, libraw_s, fallback_s, inside_s = [], [], [], []
        for _ in range(repeats):
            service_s.append(timed(ours, env, inside_s))
            libraw_s.append(timed(libraw, env))
        if with_fallback:
            fallback_s.append(timed(fallback, env))
        imports = client_imports(ours, env)
    finally:
        subprocess.run([*HOSTPLUG, "serve", "--stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)
    service_median, libraw_median = statistics.median(service_s), statistics.median(libraw_s)
    results: dict[str, object] = {
        "service_process_s": [round(t, 3) for t in service_s],
        "libraw_script_process_s": [round(t, 3) for t in libraw_s],
        "service_median_s": round(service_median, 3),
        "service_render_inside_s": inside_s,  # what the service itself spent (open, stages, output)
        "client_overhead_median_s": round(statistics.median(
            w - i for w, i in zip(service_s, inside_s, strict=True)), 3),
        "libraw_script_median_s": round(libraw_median, 3),
        "service_ratio": round(service_median / libraw_median, 2),
        "service_first_render_s": round(first_s, 3),
        "client_imports": imports,
        "target_service_ratio_max": 1.3,
    }
    if fallback_s:
        results["no_service_process_s"] = round(fallback_s[0], 3)
        results["no_service_ratio"] = round(fallback_s[0] / libraw_median, 2)
    return results


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="raw file to render (default: the Sony)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions of each command (default 5)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not args.raw.is_file():
        parser.error(f"{args.raw} not found (the shared raw samples live in ../shared/rawsamples)")
    results = measure(args.raw, args.repeats)
    print(f"{args.raw.name}: {os.cpu_count()} CPUs, {args.repeats} alternating repeats, whole processes")
    print(f"  through the service  {results['service_median_s']:.2f} s   {results['service_process_s']}")
    print(f"  LibRaw script        {results['libraw_script_median_s']:.2f} s   {results['libraw_script_process_s']}")
    print(f"  ratio                {results['service_ratio']:.2f}x (target <= 1.3x)")
    print(f"  inside the service   {results['service_render_inside_s']} s; the client process around it: "
          f"{results['client_overhead_median_s']:.2f} s")
    if "no_service_process_s" in results:
        print(f"  --no-service         {results['no_service_process_s']:.2f} s   "
              f"({results['no_service_ratio']:.2f}x)")
    print(f"  first render, service started on demand: {results['service_first_render_s']:.2f} s")
    print(f"  client imports: {results['client_imports']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
