"""Interactive re-render: a ~2 MP preview from the render service after a change, against a full-size render.

    python benchmarks/bench_preview.py [--raw PATH] [--repeats 5] [--json results.json]

In one run, with the service's own private runtime folder: one preview warms the service (engine, models, the
raw, the stage cache); then, ``--repeats`` times in turn, a preview after an exposure change, a white balance
change (custom temperature) and a style change, each timed by this client from request to the last pixel
received (``hostplug.service.client.preview``, 8-bit RGB), with the seconds the service spent inside and the
stages that ran again; and a full-size render through the same service to a 16-bit TIFF (``render``), the
re-render a user waits for without previews. Medians and the preview's ratio to the full render.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RAW = REPO.parent / "shared" / "rawsamples" / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW"
TARGET_S = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    runtime = Path(tempfile.mkdtemp(prefix="hpb", dir="/tmp"))
    # A pinned build id: an edit of the tree during the run (others' work) must not restart the service.
    os.environ.update(XDG_RUNTIME_DIR=str(runtime), HOSTPLUG_SERVICE_IDLE_TIMEOUT="120",
                      HOSTPLUG_SERVICE_BUILD="bench-preview")
    os.environ.pop("HOSTPLUG_NO_SERVICE", None)
    # The service this starts runs this checkout's code, whatever copy of hostplug is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(REPO))
    from hostplug.service import client

    raw = str(args.raw.resolve())
    # Classical noise reduction, whatever the default: it is upstream of every change measured here, so it runs
    # in the first preview only, and the figures do not depend on which denoiser is the default.
    recipe = {"style": "natural", "exposure": 0.0, "stages": {"denoise": {"implementation": "classical"}}}
    changes = {
        "exposure": lambda i: {**recipe, "exposure": 0.3 + 0.1 * i},
        "white balance": lambda i: {**recipe, "wb": "custom", "temperature": 4000.0 + 100 * i, "tint": 0.0},
        "style": lambda i: {**recipe, "style": ("vivid", "natural")[i % 2], "exposure": 0.05 * (i + 1)},
    }
    times: dict[str, list[float]] = {name: [] for name in [*changes, "full render"]}
    inside: dict[str, list[float]] = {name: [] for name in changes}
    cpu: dict[str, list[float]] = {name: [] for name in changes}
    ran: dict[str, list[str]] = {}
    try:
        start = time.perf_counter()
        first = client.preview(raw, recipe=recipe)
        assert first is not None, "the render service did not start"
        cold = time.perf_counter() - start
        size = (first["width"], first["height"])
        target = runtime / "full.tif"
        for i in range(args.repeats):
            for name, make in changes.items():
                start = time.perf_counter()
                answer = client.preview(raw, recipe=make(i))
                times[name].append(time.perf_counter() - start)
                assert answer is not None and len(answer["payload"]) == size[0] * size[1] * 3
                inside[name].append(answer["seconds"])
                cpu[name].append(answer["cpu_seconds"])
                ran[name] = answer["ran"]
                # Back to the base recipe (everything cached) so the next change starts from it.
                client.preview(raw, recipe=recipe)
            start = time.perf_counter()
            client.call("render", {"input": raw, "output": str(target), "options": {"bits": 16, "overwrite": True},
                                   "changes": {**recipe, "exposure": 0.3 + 0.1 * i}, "device": "cpu",
                                   "stages_dir": None})
            times["full render"].append(time.perf_counter() - start)
        client.stop()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    full = statistics.median(times["full render"])
    print(f"raw: {args.raw.name}; preview {size[0]} x {size[1]} ({size[0] * size[1] / 1e6:.1f} MP); "
          f"first preview (service start, engine, raw, every stage) {cold:.2f} s; load {os.getloadavg()[0]:.1f}")
    print(f"{'after a change of':<18} {'median s':>9} {'min s':>7} {'in service':>11} {'CPU s':>6} {'vs full':>8}  "
          "stages run again")
    for name in changes:
        median = statistics.median(times[name])
        print(f"{name:<18} {median:9.3f} {min(times[name]):7.3f} {statistics.median(inside[name]):11.3f} "
              f"{statistics.median(cpu[name]):6.3f} {median / full:7.1%}  {', '.join(ran[name])}")
    print(f"{'full render (TIFF)':<18} {full:9.3f} {min(times['full render']):7.3f}")
    worst = max(statistics.median(times[name]) for name in changes)
    print(f"target: a preview in {TARGET_S} s or less: {'met' if worst <= TARGET_S else 'NOT met'} "
          f"(slowest median {worst:.3f} s)")
    if args.json:
        args.json.write_text(json.dumps({"size": size, "cold_s": cold, "times": times, "inside": inside, "cpu": cpu,
                                         "ran": ran}, indent=2))


if __name__ == "__main__":
    main()
