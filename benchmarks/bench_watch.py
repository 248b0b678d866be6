"""The watch daemon against one ``hostplug render`` process per file, and a ``kill -9`` in the middle.

    python benchmarks/bench_watch.py [--count 200] [--mix nikon=6,canon=3,sony=1] [--workers 1,2]
                                     [--baseline-count N] [--kill-at 0.5] [--json results.json]
    python benchmarks/bench_watch.py --cluster [--count 60] [--mix bundled=1] [--json results.json]

The files are copies, under new names (``bench_0000.dng`` ...), of the real raws in ``../shared/rawsamples``:
the Nikon D500 LinearRaw DNG (600 x 400), the Canon 550D DNG (1734 x 1156) and the Sony a7R III ARW (18 MP).
``--mix`` weights them; the default 6:3:1 keeps 200 files to a reasonable time on 2 CPU cores (most files
small, one in ten a full-size 18 MP raw). Files are assigned in a fixed interleaved order, so any ``--count``
keeps the mix. Every render writes one sRGB JPEG.

Measured in one run, on the same files:

* **daemon, N workers**: ``hostplug watch IN --out OUT --workers N`` is started and its workers become ready
  (each has imported the engine and rendered the bundled sample once: it is resident), then every file is
  renamed into the hot folder at once; throughput is files / (last done - first drop), in files per minute.
  Peak memory: the largest sampled sum of resident memory of the daemon and its workers, and the largest
  single process high-water mark (VmHWM).
* **one process per file**: ``hostplug render FILE -o OUT/NAME.jpg`` run once per file, one after another
  (``--baseline-count`` limits this to the first N files, to save time; the figure is per file either way).
  Peak memory: the largest child's high-water mark.
* **kill -9**: the daemon (the largest worker count) is killed with SIGKILL once ``--kill-at`` of the files
  are done, then started again; counted: files with exactly one output (must be all), duplicates, leftover
  temporary files, and files not done.

``--cluster`` (needs ``pip install 'hostplug[cluster]'``) measures instead the render farm of docs/cluster.md on
this machine: a Ray cluster of one node, then of two, each node on its own loopback address (127.0.0.2,
127.0.0.3) with 1 CPU, token authentication on, the daemon joining through Ray Client (``ray://``); against the
local pool with the same CPUs (1 worker, then 2, one thread each). Every worker is warm before the files are
dropped; the time to join the cluster, probe the nodes' storage and start the actors is reported apart
(``start_seconds``). Overhead per file: wall time x workers / files, less the mean time a render took inside its
worker (``seconds`` of the log's ``done`` events): what dispatching, claiming outputs and reporting cost each file.
The default files are copies of the bundled 900 x 600 sample DNG (``--mix bundled=1``, 60 files).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAWSAMPLES = REPO.parent / "shared" / "rawsamples"
SAMPLES = {
    "bundled": REPO / "engine" / "samples" / "hostplug_colorchecker.dng",
    "nikon": RAWSAMPLES / "nikon_d500_adobedngconv_lossylinear__magicknet_DSC8695.dng",
    "canon": RAWSAMPLES / "canon_eos550d_magiclantern__tinydng_colorchart.dng",
    "sony": RAWSAMPLES / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW",
}
HOSTPLUG = [sys.executable, "-c", "from hostplug.cli import main; main()"]


def parse_mix(text: str) -> dict[str, int]:
    """``nikon=6,canon=3,sony=1`` -> weights."""
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in SAMPLES or not weight.strip().isdigit():
            raise SystemExit(f"--mix: write NAME=WEIGHT with NAME in {', '.join(SAMPLES)}, not {part!r}")
        mix[name.strip()] = int(weight)
    return {k: v for k, v in mix.items() if v > 0}


def assign(count: int, mix: dict[str, int]) -> list[str]:
    """A fixed interleaved order of sample names that follows the weights (smooth weighted round robin)."""
    total, current, order = sum(mix.values()), dict.fromkeys(mix, 0), []
    for _ in range(count):
        for name, weight in mix.items():
            current[name] += weight
        chosen = max(current, key=lambda n: current[n])
        current[chosen] -= total
        order.append(chosen)
    return order


def stage(folder: Path, order: list[str]) -> list[Path]:
    """Copies of the samples under new names in ``folder`` (hard links would share an inode: copies)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(order):
        path = folder / f"bench_{i:04d}{SAMPLES[name].suffix.lower()}"
        shutil.copyfile(SAMPLES[name], path)
        paths.append(path)
    return paths


def journal_states(journal: Path) -> dict[str, int]:
    """State counts of a journal (empty while it does not exist)."""
    if not journal.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10) as db:
            return dict(db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall())
    except sqlite3.Error:
        return {}


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (one level: the daemon's workers)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def status_kb(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` value in kB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Daemon:
    """``hostplug watch`` as a child process, with memory sampling."""

    started: list[Daemon] = []

    def __init__(self, hot: Path, out: Path, workers: int, state: Path, config: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.log = state / "log.jsonl"
        self.journal = state / "journal.sqlite"
        command = [*HOSTPLUG, "watch", str(hot), "--out", str(out), "--format", "jpeg", "--workers", str(workers),
                   "--settle", "0.5", "--journal", str(self.journal), "--log-json", str(self.log)]
        if config is not None:
            command = [*HOSTPLUG, "watch", "--config", str(config)]
        self.stderr = (state / "watch.err").open("a")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                        env={**os.environ, **(env or {})})
        Daemon.started.append(self)
        self.workers = workers
        self.peak_total_kb = 0
        self.peak_process_kb = 0

    def sample(self) -> None:
        """Record resident memory of the daemon and its workers."""
        pids = process_tree(self.process.pid)
        self.peak_total_kb = max(self.peak_total_kb, sum(status_kb(p, "VmRSS") for p in pids))
        self.peak_process_kb = max([self.peak_process_kb, *(status_kb(p, "VmHWM") for p in pids)])

    def ready_workers(self) -> int:
        """How many workers have said they are ready."""
        if not self.log.exists():
            return 0
        return sum('"event": "worker_ready"' in line for line in self.log.read_text().splitlines())

    def wait_ready(self, timeout: float = 180) -> None:
        """Until every worker is ready."""
        deadline = time.monotonic() + timeout
        while self.ready_workers() < self.workers:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"the daemon did not start; see {self.stderr.name}")
            time.sleep(0.2)

    def wait_done(self, count: int, timeout: float, at_least: int | None = None) -> dict[str, int]:
        """Until ``count`` files are done or failed (or ``at_least`` are done); returns the state counts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sample()
            states = journal_states(self.journal)
            if at_least is not None and states.get("done", 0) >= at_least:
                return states
            if states.get("done", 0) + states.get("failed", 0) >= count and not states.get("queued"):
                return states
            time.sleep(0.25)
        raise SystemExit(f"timed out; journal says {journal_states(self.journal)}")

    def stop(self) -> int:
        """SIGTERM and wait."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(300)
        self.stderr.close()
        return code

    def kill(self) -> None:
        """SIGKILL, like a crash or ``kill -9``."""
        self.process.kill()
        self.process.wait(60)
        self.stderr.close()


def drop_all(staged: list[Path], hot: Path) -> float:
    """Rename every staged file into the hot folder; returns the time of the first drop."""
    start = time.monotonic()
    for path in staged:
        os.replace(path, hot / path.name)
    return start


def start_and_drop(root: Path, order: list[str], workers: int) -> tuple[Daemon, float]:
    """Make ``root``'s hot, output and state folders, start a daemon on them, and drop every file at once;
    returns the daemon and the time of the first drop."""
    hot, out, state = root / "in", root / "out", root / "state"
    for folder in (hot, out, state):
        folder.mkdir(parents=True)
    staged = stage(root / "staging", order)
    daemon = Daemon(hot, out, workers, state)
    daemon.wait_ready()
    return daemon, drop_all(staged, hot)


def run_daemon(order: list[str], workers: int, base: Path, timeout: float) -> dict:
    """Throughput and memory of the daemon with ``workers`` workers."""
    daemon, start = start_and_drop(base / f"daemon{workers}", order, workers)
    states = daemon.wait_done(len(order), timeout)
    seconds = time.monotonic() - start
    daemon.sample()
    code = daemon.stop()
    return {"mode": f"daemon, {workers} worker(s)", "files": len(order), "seconds": round(seconds, 1),
            "files_per_minute": round(len(order) * 60 / seconds, 2), "done": states.get("done", 0),
            "failed": states.get("failed", 0), "peak_total_rss_mb": round(daemon.peak_total_kb / 1024),
            "peak_process_mb": round(daemon.peak_process_kb / 1024), "exit_status": code}


def run_baseline(order: list[str], base: Path, limit: int | None) -> dict:
    """``hostplug render`` once per file, sequentially."""
    root = base / "baseline"
    out = root / "out"
    out.mkdir(parents=True)
    staged = stage(root / "in", order[:limit] if limit else order)
    failures = 0
    start = time.monotonic()
    for path in staged:
        result = subprocess.run([*HOSTPLUG, "render", str(path), "-o", str(out / (path.stem + ".jpg"))],
                                capture_output=True, text=True)
        failures += result.returncode != 0
    seconds = time.monotonic() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"mode": "hostplug render per file", "files": len(staged), "seconds": round(seconds, 1),
            "files_per_minute": round(len(staged) * 60 / seconds, 2), "done": len(staged) - failures,
            "failed": failures, "peak_total_rss_mb": round(peak / 1024), "peak_process_mb": round(peak / 1024),
            "exit_status": 0}


def run_kill(order: list[str], workers: int, base: Path, kill_at: float, timeout: float) -> dict:
    """Kill the daemon with SIGKILL part-way, restart it, and count each file's outputs."""
    root = base / "kill"
    hot, out, state = root / "in", root / "out", root / "state"
    daemon, start = start_and_drop(root, order, workers)
    before = daemon.wait_done(len(order), timeout, at_least=max(1, int(len(order) * kill_at)))
    daemon.kill()
    orphans = [p for p in process_tree(daemon.process.pid)[1:] if status_kb(p, "VmRSS")]
    restarted = Daemon(hot, out, workers, state)
    after = restarted.wait_done(len(order), timeout)
    seconds = time.monotonic() - start
    code = restarted.stop()
    outputs = [p.name for p in out.iterdir()]
    temporaries = [n for n in outputs if n.startswith(".")]
    per_file = {f"bench_{i:04d}": 0 for i in range(len(order))}
    for name in outputs:
        stem = Path(name).stem
        if stem in per_file and name.endswith(".jpg"):
            per_file[stem] += 1
    exactly_one = sum(n == 1 for n in per_file.values())
    return {"mode": f"kill -9 at {kill_at:.0%} and restart, {workers} worker(s)", "files": len(order),
            "done_before_kill": before.get("done", 0), "rendering_at_kill": before.get("rendering", 0),
            "done": after.get("done", 0), "failed": after.get("failed", 0), "exactly_one_output": exactly_one,
            "duplicates_or_extra_files": len(outputs) - len(temporaries) - exactly_one,
            "temporary_files_left": len(temporaries), "orphan_workers": len(orphans), "seconds": round(seconds, 1),
            "exit_status": code}


def cluster_config(root: Path, workers: int, cluster: str | None) -> Path:
    """A studio.toml for the cluster comparison: one thread a worker, so N workers use N CPUs either way."""
    hot, out, state = root / "in", root / "out", root / "state"
    for folder in (hot, out, state):
        folder.mkdir(parents=True)
    daemon = {"workers": workers, "threads_per_worker": 1, "cpus_per_worker": 1, "settle_seconds": 0.5,
              "journal": str(state / "journal.sqlite"), "log_json": str(state / "log.jsonl")}
    if cluster:
        daemon["cluster"] = cluster
    lines = ["[daemon]", *(f"{k} = {json.dumps(v)}" for k, v in daemon.items()), "", "[[folder]]",
             f"path = {json.dumps(str(hot))}", "", "[[folder.output]]", f"folder = {json.dumps(str(out))}",
             'format = "jpeg"']
    config = root / "studio.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def render_seconds(log: Path) -> list[float]:
    """The time each render took inside its worker (the log's ``done`` events)."""
    found = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record.get("event") == "done" and record.get("seconds") is not None:
            found.append(float(record["seconds"]))
    return found


def run_configured(order: list[str], root: Path, workers: int, cluster: str | None, env: dict[str, str],
                   timeout: float, label: str) -> dict:
    """One throughput run of ``hostplug watch --config`` (local pool or cluster) with ``workers`` warm workers."""
    config = cluster_config(root, workers, cluster)
    staged = stage(root / "staging", order)
    begun = time.monotonic()
    daemon = Daemon(root / "in", root / "out", workers, root / "state", config=config, env=env)
    daemon.wait_ready()
    ready = time.monotonic() - begun
    start = drop_all(staged, root / "in")
    states = daemon.wait_done(len(order), timeout)
    seconds = time.monotonic() - start
    code = daemon.stop()
    renders = render_seconds(daemon.log)
    mean = sum(renders) / len(renders) if renders else float("nan")
    nodes: dict[str, int] = {}
    with sqlite3.connect(daemon.journal) as db:
        for node, count in db.execute("SELECT COALESCE(node, '?'), COUNT(*) FROM files GROUP BY node"):
            nodes[node] = count
    return {"mode": label, "files": len(order), "workers": workers, "seconds": round(seconds, 1),
            "files_per_minute": round(len(order) * 60 / seconds, 2), "done": states.get("done", 0),
            "failed": states.get("failed", 0), "start_seconds": round(ready, 1),
            "mean_render_seconds": round(mean, 3),
            "overhead_per_file_seconds": round(seconds * workers / len(order) - mean, 3),
            "files_by_node": nodes, "exit_status": code}


def run_cluster(order: list[str], base: Path, timeout: float) -> list[dict]:
    """The local pool with 1 and 2 one-thread workers, then a loopback Ray cluster of 1 and 2 one-CPU nodes."""
    from hostplug.daemon import cluster as hc

    results = []
    for workers in (1, 2):
        results.append(run_configured(order, base / f"local{workers}", workers, None, {}, timeout,
                                      f"local pool, {workers} worker(s) x 1 thread"))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    for count in (1, 2):
        temp = Path(tempfile.mkdtemp(prefix="hpbench", dir="/tmp"))  # short: Ray's socket paths are limited
        env = hc.node_env(hc.make_token(temp / "auth_token"))
        gcs, client = free_port("127.0.0.2"), free_port("127.0.0.2")
        try:
            hc.start_node(hc.node_command(bind="127.0.0.2", head_port=gcs, head=True, num_cpus=1, client_port=client,
                                          temp_dir=temp, object_store_mb=100), env)
            for i in range(1, count):
                hc.start_node(hc.node_command(bind=f"127.0.0.{2 + i}", head_port=gcs, head=False,
                                              head_address=f"127.0.0.2:{gcs}", num_cpus=1, temp_dir=temp,
                                              object_store_mb=100), env)
            auth = {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH") if k in env}
            results.append(run_configured(order, base / f"cluster{count}", count, f"ray://127.0.0.2:{client}",
                                          auth, timeout, f"Ray cluster, {count} node(s) x 1 CPU"))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        finally:
            hc.stop_nodes(temp)
            shutil.rmtree(temp, ignore_errors=True)
    return results


def free_port(host: str) -> int:
    """A TCP port nothing listens on at ``host``."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def cluster_table(results: list[dict]) -> str:
    """The cluster comparison as a Markdown table."""
    lines = ["| mode | files | files/min | s/file | mean render (s) | overhead/file (s) | start (s) | files by node |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        nodes = ", ".join(f"{n}: {c}" for n, c in sorted(r["files_by_node"].items()))
        lines.append(f"| {r['mode']} | {r['files']} | {r['files_per_minute']} | {60 / r['files_per_minute']:.2f} | "
                     f"{r['mean_render_seconds']} | {r['overhead_per_file_seconds']} | {r['start_seconds']} | "
                     f"{nodes} |")
    return "\n".join(lines)


def table(results: list[dict]) -> str:
    """The throughput rows as a Markdown table."""
    lines = ["| mode | files | seconds | files/min | s/file | peak RSS total (MB) | peak process (MB) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "files_per_minute" in r:
            lines.append(f"| {r['mode']} | {r['files']} | {r['seconds']} | {r['files_per_minute']} | "
                         f"{60 / r['files_per_minute']:.2f} | {r['peak_total_rss_mb']} | {r['peak_process_mb']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--mix", default="nikon=6,canon=3,sony=1")
    parser.add_argument("--workers", default="1,2", help="Worker counts to measure, comma-separated.")
    parser.add_argument("--baseline-count", type=int, help="Run the per-file baseline on the first N files only.")
    parser.add_argument("--kill-at", type=float, default=0.5, help="Fraction done when the daemon is killed.")
    parser.add_argument("--no-kill", action="store_true", help="Skip the kill -9 run.")
    parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds allowed for each run.")
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (default: a temporary one).")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument("--cluster", action="store_true",
                        help="Compare the local pool with a loopback Ray cluster of 1 and 2 nodes (see above).")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below still stops the daemons
    if args.cluster:
        main_cluster(args)
        return
    missing = [str(p) for p in SAMPLES.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"shared samples not found: {', '.join(missing)}")
    mix = parse_mix(args.mix)
    order = assign(args.count, mix)
    worker_counts = [int(w) for w in args.workers.split(",")]
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_watch_"))
    base.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for workers in worker_counts:
            results.append(run_daemon(order, workers, base, args.timeout))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        results.append(run_baseline(order, base, args.baseline_count))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        if not args.no_kill:
            results.append(run_kill(order, max(worker_counts), base, args.kill_at, args.timeout))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    finally:
        for daemon in Daemon.started:
            if daemon.process.poll() is None:
                daemon.process.kill()
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    report = {"count": args.count, "mix": mix, "files_by_sample": {n: order.count(n) for n in mix},
              "cpus": os.cpu_count(), "machine": platform.platform(), "results": results}
    print(table(results))
    kill = next((r for r in results if r["mode"].startswith("kill")), None)
    if kill:
        print(f"\nkill -9: {kill['exactly_one_output']} of {kill['files']} files have exactly one output "
              f"({kill['duplicates_or_extra_files']} extra, {kill['temporary_files_left']} temporaries left, "
              f"{kill['orphan_workers']} orphan workers; {kill['done_before_kill']} done and "
              f"{kill['rendering_at_kill']} rendering when killed)")
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def main_cluster(args: argparse.Namespace) -> None:
    """``--cluster``: local pool against a Ray cluster on this machine."""
    count = args.count if args.count != 200 else 60
    mix = parse_mix(args.mix if args.mix != "nikon=6,canon=3,sony=1" else "bundled=1")
    missing = [str(SAMPLES[n]) for n in mix if not SAMPLES[n].is_file()]
    if missing:
        raise SystemExit(f"samples not found: {', '.join(missing)}")
    order = assign(count, mix)
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_watch_"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        results = run_cluster(order, base, args.timeout)
    finally:
        for daemon in Daemon.started:
            if daemon.process.poll() is None:
                daemon.process.kill()
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    report = {"count": count, "mix": mix, "cpus": os.cpu_count(), "machine": platform.platform(),
              "results": results}
    print(cluster_table(results))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
