"""A repeated ``hostplug render`` through the resident render service against a LibRaw script, process for process.

    python benchmarks/bench_service.py [--raw PATH] [--repeats 5] [--json results.json]

Measured in one run, on the same file, each a whole process timed from outside (start-up, imports, reading the
raw, rendering, writing the file):

* **through the service**: ``hostplug render RAW -o out.tif --bits 16 --overwrite`` with a service running (its
  own, in a private runtime folder, started and warmed by one render first), three ways: the same render again
  (the service resumes from its full-size checkpoint after upsampling), again with a new ``--exposure`` each
  time (it resumes after the colour stage), and a raw it has not seen (a fresh copy of the raw with a few bytes
  appended, new inode and other content: nothing cached, neither the opened raw nor any checkpoint, which are
  keyed by content);
* **LibRaw script**: ``rawpy.imread(RAW).postprocess(use_camera_wb=True, output_bps=16)`` written with
  ``tifffile`` as an uncompressed 16-bit TIFF;
* **in-process fallback**: the same command with ``--no-service`` (what a user gets without the service).

The repetitions alternate between the commands; medians and ratios. It also records what the client process
imports (``python -X importtime``): it must not load torch, numba or rawpy.

``--gimp`` adds GIMP 3 opening the raw through the plug-in (``Gimp.file_load``, timed inside GIMP, headless, in
the Debian 13 root of ``tests/setup-gimp.sh``; needs root): the first open starts the service, the next ones are
what a photographer opening raw after raw waits for (target: under 3 s). Also timed there: GIMP loading the
plug-in's 16-bit TIFF by itself, the share of GIMP's own TIFF reader.

Every process runs this checkout (``PYTHONPATH``), the render service it starts included.
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
GIMP_ROOT = Path(os.environ.get("HOSTPLUG_GIMP_ROOT", "/var/tmp/trixie-root"))

# Runs inside GIMP: opens the raw (through the plug-in) and the TIFF, timing each file_load.
GIMP_PROBE = r'''
import json, os, time
from gi.repository import Gimp, Gio
out = {"raw_s": [], "tiff_s": []}
opens = [("raw_s", os.environ["HP_RAW"])] * int(os.environ["HP_REPEATS"]) + [("tiff_s", os.environ["HP_TIFF"])] * 2
for key, path in opens:
    start = time.perf_counter()
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    out[key].append(round(time.perf_counter() - start, 3))
    out["size"] = [image.get_width(), image.get_height(), image.get_precision().value_nick]
    image.delete()
print("HOSTPLUG-BENCH " + json.dumps(out))
'''


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
    # The build pinned: others editing this tree during the run would make the service stale, and the client
    # would then render in its own process, which is not what this row measures.
    env = checkout_env(XDG_RUNTIME_DIR=str(runtime), HOSTPLUG_SERVICE_BUILD=f"bench-{os.getpid()}")
    env.pop("HOSTPLUG_NO_SERVICE", None)
    out = Path(tempfile.mkdtemp(prefix="hostplug-bench-"))
    ours = [*HOSTPLUG, "render", str(raw), "-o", str(out / "service.tif"), "--bits", "16", "--overwrite", "--json"]
    unseen = out / f"unseen{raw.suffix}"
    fresh = [*ours[:len(HOSTPLUG) + 1], str(unseen), *ours[len(HOSTPLUG) + 2:]]
    libraw = [sys.executable, "-c", LIBRAW_SCRIPT, str(raw), str(out / "libraw.tif")]
    fallback = [*HOSTPLUG, "render", str(raw), "-o", str(out / "local.tif"), "--bits", "16", "--overwrite",
                "--no-service"]
    try:
        start = time.perf_counter()
        subprocess.run([*HOSTPLUG, "render", "--service", str(raw), "-o", str(out / "first.tif"), "--bits", "16"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        first_s = time.perf_counter() - start  # service started on demand: start-up, engine, models, render
        timed(libraw, env)  # warm the page cache and LibRaw's libraries alike
        timed(ours, env)  # the first render through the warm service: it fills the checkpoints
        service_s, libraw_s, fallback_s, inside_s = [], [], [], []
        exposure_s, unseen_s = [], []
        for repeat in range(repeats):
            service_s.append(timed(ours, env, inside_s))
            libraw_s.append(timed(libraw, env))
            exposure_s.append(timed([*ours, "--exposure", f"{0.1 * (repeat + 1):.1f}"], env))
            unseen.unlink(missing_ok=True)
            shutil.copyfile(raw, unseen)  # another file: a raw the service has not seen
            with unseen.open("ab") as f:  # other bytes after the raw's data: other content, which the stage
                f.write(f"unseen {os.getpid()} {repeat}".encode())  # checkpoints are keyed by (a copy would hit)
            unseen_s.append(timed(fresh, env))
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
        "service_exposure_process_s": [round(t, 3) for t in exposure_s],
        "service_exposure_ratio": round(statistics.median(exposure_s) / libraw_median, 2),
        "service_unseen_process_s": [round(t, 3) for t in unseen_s],
        "service_unseen_ratio": round(statistics.median(unseen_s) / libraw_median, 2),
        "service_first_render_s": round(first_s, 3),
        "client_imports": imports,
        "target_service_ratio_max": 1.3,
    }
    if fallback_s:
        results["no_service_process_s"] = round(fallback_s[0], 3)
        results["no_service_ratio"] = round(fallback_s[0] / libraw_median, 2)
    return results


def checkout_env(**extra: str) -> dict[str, str]:
    """This environment with the checkout first on ``PYTHONPATH``: the measured code is this tree's, whatever
    copy of hostplug is installed (the service the commands start inherits it)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def measure_gimp(raw: Path, repeats: int = 3) -> dict[str, object]:
    """GIMP 3 opening ``raw`` through the plug-in, ``repeats`` times in one session (see the module docstring);
    raises RuntimeError, saying why, when GIMP cannot be run here."""
    if os.geteuid() != 0 or not (GIMP_ROOT / "usr/bin/gimp-console-3.0").exists():
        raise RuntimeError(f"needs root and GIMP 3 in {GIMP_ROOT} (tests/setup-gimp.sh)")
    mounts = Path("/proc/self/mounts").read_text().split("\n")
    if not any(line.split(" ")[1:2] == [f"{GIMP_ROOT}/tmp"] for line in mounts):  # a bind mount: ismount misses it
        raise RuntimeError(f"{GIMP_ROOT}/tmp is not mounted; run tests/setup-gimp.sh first")
    work = Path(tempfile.mkdtemp(prefix="hostplug-bench-gimp-", dir="/tmp"))  # /tmp: one path inside the root
    runtime = work / "runtime"
    runtime.mkdir(mode=0o700)
    try:
        code = work / "code"  # this checkout's packages, under /tmp so that the root sees them, and unchanging
        for package in ("engine", "hostplug"):
            shutil.copytree(REPO / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
        copy = Path(shutil.copy(raw, work / raw.name))
        tiff = work / "direct.tif"
        subprocess.run([*HOSTPLUG, "render", str(copy), "-o", str(tiff), "--no-service"], check=True,
                       env={**os.environ, "PYTHONPATH": str(code)}, stdout=subprocess.DEVNULL)
        command = work / "hostplug"  # what the plug-in runs: that copy's command line
        command.write_text(f"#!/bin/sh\nPYTHONPATH={code} exec {sys.executable} -c "
                           f"'from hostplug.cli import main; main()' \"$@\"\n")
        command.chmod(0o755)
        profile = work / "profile"
        subprocess.run([*HOSTPLUG, "integrate", "gimp", "--make-default-raw-loader"], check=True,
                       env={**os.environ, "PYTHONPATH": str(code), "GIMP3_DIRECTORY": str(profile)},
                       stdout=subprocess.DEVNULL)
        for config in profile.rglob("*.json"):
            if config.parent.name == "hostplug-raw":
                settings = json.loads(config.read_text())
                config.write_text(json.dumps({**settings, "hostplug": str(command)}))
        probe = work / "probe.py"
        probe.write_text(GIMP_PROBE)
        env = {"HOME": "/root", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "GIMP3_DIRECTORY": str(profile),
               "XDG_RUNTIME_DIR": str(runtime), "HP_RAW": str(copy), "HP_TIFF": str(tiff),
               "HP_REPEATS": str(repeats)}
        chroot = ["chroot", str(GIMP_ROOT), "env", *(f"{k}={v}" for k, v in env.items())]
        start = time.perf_counter()
        done = subprocess.run([*chroot, "gimp-console-3.0", "-i", "--batch-interpreter=python-fu-eval", "-b",
                               f"exec(open({str(probe)!r}).read())", "--quit"], capture_output=True, text=True,
                              timeout=900)
        session_s = time.perf_counter() - start
        subprocess.run([*chroot, str(command), "serve", "--stop"], capture_output=True, timeout=60, check=False)
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("HOSTPLUG-BENCH ")]
        if not lines:
            raise RuntimeError(f"GIMP printed no result (exit {done.returncode}): {done.stderr[-500:]}")
        seen = json.loads(lines[-1].split(" ", 1)[1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    opens = seen["raw_s"]
    return {"gimp_first_open_s": opens[0], "gimp_next_opens_s": opens[1:],
            "gimp_open_median_s": round(statistics.median(opens[1:] or opens), 3),
            "gimp_tiff_load_s": seen["tiff_s"], "gimp_session_s": round(session_s, 1), "gimp_image": seen["size"],
            "target_gimp_open_max_s": 3.0}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW, help="raw file to render (default: the Sony)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions of each command (default 5)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--gimp", action="store_true", help="also time GIMP 3 opening the raw (needs root)")
    args = parser.parse_args(argv)
    if not args.raw.is_file():
        parser.error(f"{args.raw} not found (the shared raw samples live in ../shared/rawsamples)")
    results = measure(args.raw, args.repeats)
    if args.gimp:
        try:
            results.update(measure_gimp(args.raw))
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            results["gimp_not_measured"] = str(e)
    print(f"{args.raw.name}: {os.cpu_count()} CPUs, {args.repeats} alternating repeats, whole processes")
    print(f"  through the service  {results['service_median_s']:.2f} s   {results['service_process_s']}  "
          f"{results['service_ratio']:.2f}x (target <= 1.3x)")
    for key, what in (("exposure", "new exposure"), ("unseen", "unseen raw")):
        times = results[f"service_{key}_process_s"]
        print(f"  ... {what:16} {statistics.median(times):.2f} s   {times}  {results[f'service_{key}_ratio']:.2f}x")
    print(f"  LibRaw script        {results['libraw_script_median_s']:.2f} s   {results['libraw_script_process_s']}")
    print(f"  inside the service   {results['service_render_inside_s']} s; the client process around it: "
          f"{results['client_overhead_median_s']:.2f} s")
    if "no_service_process_s" in results:
        print(f"  --no-service         {results['no_service_process_s']:.2f} s   "
              f"({results['no_service_ratio']:.2f}x)")
    print(f"  first render, service started on demand: {results['service_first_render_s']:.2f} s")
    print(f"  client imports: {results['client_imports']}")
    if "gimp_open_median_s" in results:
        print(f"  GIMP opens the raw   {results['gimp_open_median_s']:.2f} s (target < 3 s); first open, "
              f"service started: {results['gimp_first_open_s']:.2f} s; GIMP reading the 16-bit TIFF alone: "
              f"{results['gimp_tiff_load_s']} s")
    elif args.gimp:
        print(f"  GIMP: not measured ({results['gimp_not_measured']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
