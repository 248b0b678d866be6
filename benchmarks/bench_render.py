"""Render speed and peak memory on the 18 MP Sony a7R III raw, against LibRaw's own ``postprocess()``.

    python benchmarks/bench_render.py [--raw PATH] [--repeats 3] [--json results.json]

Measured in one run, on the same file:

* **render**: ``engine.open`` + ``engine.render`` in-process with the classical stages (no learned denoiser),
  against ``rawpy.imread(path).postprocess(use_camera_wb=True)``: one warm-up each, then ``--repeats``
  alternating repetitions; medians and their ratio (target: ours at most 2x LibRaw's time).
* **write**: writing the render as a 16-bit TIFF (ICC profile, EXIF, XMP), timed on its own.
* **cold CLI**: wall time of a fresh ``hostplug render RAW -o x.tif`` process against a fresh
  ``python -c 'import rawpy; rawpy.imread(f).postprocess()'`` process (imports and start-up included).
* **peak memory**: the RSS high-water mark of a child process doing one full render and write (target < 3 GB).
* **through the service**: a repeated ``hostplug render RAW -o x.tif --bits 16`` process with the render service
  running, against a LibRaw script process that also writes an uncompressed 16-bit TIFF (target: at most 1.3x;
  see ``benchmarks/bench_service.py``; ``--skip-service`` leaves it out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RAW = REPO.parent / "shared" / "rawsamples" / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW"

# The render a child process does for the cold CLI and peak-memory figures.
_CHILD_RENDER = """
import sys, engine
source = engine.open(sys.argv[1])
engine.write_image(engine.render(source, engine.Recipe(stages=dict(denoise=engine.StageSettings(
    implementation='classical')))), sys.argv[2], engine.OutputOptions(overwrite=True))
"""
_CHILD_LIBRAW = "import sys, rawpy; rawpy.imread(sys.argv[1]).postprocess(use_camera_wb=True)"


def classical_recipe():
    import engine

    return engine.Recipe(stages={"denoise": engine.StageSettings(implementation="classical")})


def time_ours(path: Path) -> tuple[float, object]:
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


def time_process(args: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of RUSAGE_CHILDREN is the largest of all children so far; only a new maximum is attributable.
    return wall, peak_kib * 1024 if peak_kib > before else -1


def peak_rss(args: list[str]) -> int:
    """Peak RSS (bytes) of a child, via a fresh grandchild so earlier children cannot mask it."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *args], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) * 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="raw file to render (default: the Sony)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions of each render (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--skip-service", action="store_true", help="leave out the render-service figures")
    args = parser.parse_args(argv)
    if not args.raw.is_file():
        parser.error(f"{args.raw} not found (the shared raw samples live in ../shared/rawsamples)")

    from engine import OutputOptions, write_image

    path = args.raw
    # Warm-up: numba's compiled kernels load from cache, torch and LibRaw initialise.
    _, rendered = time_ours(path)
    time_libraw(path)
    ours, libraw = [], []
    for _ in range(args.repeats):
        ours.append(time_ours(path)[0])
        libraw.append(time_libraw(path))

    with tempfile.TemporaryDirectory() as tmp:
        tif = Path(tmp) / "bench.tif"
        start = time.perf_counter()
        write_image(rendered, tif, OutputOptions(overwrite=True))
        write_s = time.perf_counter() - start
        del rendered

        cli = Path(tmp) / "cli.tif"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from hostplug.cli import main; main()", "render", str(path),
                        "-o", str(cli), "--use", "denoise=classical"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cold_cli_s = time.perf_counter() - start
        cold_libraw_s, _ = time_process([sys.executable, "-c", _CHILD_LIBRAW, str(path)])

        peak_ours = peak_rss([sys.executable, "-c", _CHILD_RENDER, str(path), str(Path(tmp) / "peak.tif")])
        peak_libraw = peak_rss([sys.executable, "-c", _CHILD_LIBRAW, str(path)])

    service = None
    if not args.skip_service:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_service import measure as measure_service

        service = measure_service(path, repeats=args.repeats, with_fallback=False)

    import rawpy

    with rawpy.imread(str(path)) as raw:
        megapixels = raw.sizes.width * raw.sizes.height / 1e6
    results = {
        "file": path.name,
        "megapixels": round(megapixels, 1),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "ours_render_s": [round(t, 3) for t in ours],
        "libraw_postprocess_s": [round(t, 3) for t in libraw],
        "ours_median_s": round(statistics.median(ours), 3),
        "libraw_median_s": round(statistics.median(libraw), 3),
        "ratio": round(statistics.median(ours) / statistics.median(libraw), 2),
        "write_16bit_tiff_s": round(write_s, 3),
        "cold_cli_render_tiff_s": round(cold_cli_s, 3),
        "cold_libraw_postprocess_s": round(cold_libraw_s, 3),
        "peak_rss_ours_gb": round(peak_ours / 1e9, 2),
        "peak_rss_libraw_gb": round(peak_libraw / 1e9, 2),
        "target_ratio_max": 2.0,
        "target_peak_gb_max": 3.0,
    }
    results["meets_targets"] = results["ratio"] <= 2.0 and results["peak_rss_ours_gb"] < 3.0
    if service is not None:
        results["service"] = service

    rows = [
        ("render (in-process, median)", f"{results['ours_median_s']:.2f} s", f"{results['libraw_median_s']:.2f} s"),
        ("ratio ours / LibRaw", f"{results['ratio']:.2f}x (target <= 2x)", ""),
        ("write 16-bit TIFF", f"{results['write_16bit_tiff_s']:.2f} s", "-"),
        ("cold process, raw -> image", f"{results['cold_cli_render_tiff_s']:.2f} s",
         f"{results['cold_libraw_postprocess_s']:.2f} s"),
        ("peak RSS, one render", f"{results['peak_rss_ours_gb']:.2f} GB (target < 3)",
         f"{results['peak_rss_libraw_gb']:.2f} GB"),
    ]
    if service is not None:
        rows.append(("through the service, process", f"{service['service_median_s']:.2f} s "
                     f"({service['service_ratio']:.2f}x, <= 1.3x)", f"{service['libraw_script_median_s']:.2f} s*"))
    print(f"{path.name}: {megapixels:.1f} MP, {os.cpu_count()} CPUs, {args.repeats} repeats after one warm-up")
    print(f"{'':30} {'hostplug':>26} {'LibRaw (rawpy)':>16}")
    for name, a, b in rows:
        print(f"{name:30} {a:>26} {b:>16}")
    print(f"ours: {results['ours_render_s']}  LibRaw: {results['libraw_postprocess_s']}")
    if service is not None:
        print(f"* a LibRaw script writing an uncompressed 16-bit TIFF, whole process; through the service: "
              f"{service['service_process_s']}, LibRaw script: {service['libraw_script_process_s']}; the client "
              f"imported {service['client_imports']}")
    print("targets met" if results["meets_targets"] else "TARGETS NOT MET")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
