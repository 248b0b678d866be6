"""Mutated raws through ``hostplug render`` (issue 13): byte flips, TIFF/DNG tag edits, truncations and splices of
real raws, each rendered by the real command line, checked for crashes, tracebacks, hangs, memory and leftovers.

Two ways to run each input, which must agree:

* ``fork`` (the default, for the long run): a warm parent (modules imported, models loaded, kernels compiled by
  one render of an unmutated seed) forks a child per input. The child limits its address space (``RLIMIT_AS``,
  3 GB), points its stdout and stderr (file descriptors 1 and 2, so what C libraries print is caught too) at
  files, and calls click's ``main`` with the argv a user would type (``hostplug render IN -o OUT --time-limit
  S``). A fresh ``hostplug render`` process costs seconds of start-up on a loaded 2-core machine; a fork costs
  milliseconds, and every check below is on the child's real exit status and output.
* ``fresh``: the same input rendered by a new ``python -m hostplug render`` process (same argv and limits), to
  show the fork harness agrees with what a user sees (``--fresh N`` runs both on the first N inputs).

An input passes when: the process exits by itself (no signal) within the time limit plus a grace; exit 0 means
the output exists, is a readable TIFF of the input's size and nothing else was left in the output folder; any
other status is one of hostplug's (1-6, or 124 for the time limit) with stderr exactly one line, starting
``hostplug: error:``, without "Traceback", and no file left behind; the child's peak RSS stays under 3 GB.
Anything else is a finding: the input is kept under ``WORK/findings/`` with what went wrong.

Seeds (read ``../shared/rawsamples/PROVENANCE.md``): the bundled ``hostplug_colorchecker.dng``, the Canon 550D
and Sony a7R III raws of ``../shared/rawsamples`` cropped to their first rows (their image height and strip byte
count edited, the file cut after the last row kept: a real file of the real format, only smaller), the Nikon D500
LinearRaw DNG and the GoPro VC-5 DNG whole, and the bundled sample uncropped at a low weight
(``HOSTPLUG_RAWSAMPLES`` names another folder of the shared raws). Nothing is written
to the repository; inputs and outputs live in ``WORK`` (a temporary folder by default).

Usage::

    nice -n 15 python tests/fuzz/mutate_render.py --count 10000 --work /tmp/mutate --fresh 200

The summary (counts per outcome, per seed and per mutation kind, findings, peak RSS, time) is printed at the end
and written to ``WORK/summary.json``; every input's result is a line of ``WORK/results.jsonl``.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_RAWS = Path(os.environ.get("HOSTPLUG_RAWSAMPLES", REPO.parent / "shared" / "rawsamples"))
BUNDLED = REPO / "engine" / "samples" / "hostplug_colorchecker.dng"
MEMORY_LIMIT = 3 << 30  # bytes of address space a render may take
HOSTPLUG_EXITS = {1, 2, 3, 4, 5, 6, 124}  # engine.errors' exit codes, and the time limit's
GRACE_SECONDS = 30.0  # past the time limit, a forked render still running is a hang
# a fresh process also starts up (imports, model loading) before the time limit starts counting: a minute or
# more on a loaded machine
FRESH_GRACE_SECONDS = 180.0

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's hostplug, not an installed copy


# ----- seeds ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Seed:
    name: str
    suffix: str
    data: bytes
    weight: float


def _u16(b: bytes | bytearray, at: int, big: bool) -> int:
    return struct.unpack_from(">H" if big else "<H", b, at)[0]


def _u32(b: bytes | bytearray, at: int, big: bool) -> int:
    return struct.unpack_from(">I" if big else "<I", b, at)[0]


@dataclass(frozen=True)
class Entry:
    """One IFD entry: where it is in the file, its tag, type and count, and where its values are."""

    at: int
    tag: int
    type: int
    count: int
    values_at: int  # the entry's own 4-byte field when the values fit there, else the offset it holds


_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}


def ifd_entries(b: bytes | bytearray) -> list[Entry]:
    """Every entry of a TIFF's IFD chain, its SubIFDs and its EXIF IFD (a damaged structure ends the walk)."""
    if len(b) < 8 or b[:2] not in (b"II", b"MM"):
        return []
    big = b[:2] == b"MM"
    entries: list[Entry] = []
    todo, seen = [_u32(b, 4, big)], set()
    while todo and len(seen) < 64:
        offset = todo.pop()
        if offset in seen or offset + 2 > len(b):
            continue
        seen.add(offset)
        count = _u16(b, offset, big)
        if offset + 2 + 12 * count + 4 > len(b) or count > 1000:
            continue
        for i in range(count):
            at = offset + 2 + 12 * i
            tag, typ = _u16(b, at, big), _u16(b, at + 2, big)
            n = _u32(b, at + 4, big)
            size = _TYPE_SIZES.get(typ, 1) * n
            values_at = at + 8 if size <= 4 else _u32(b, at + 8, big)
            entries.append(Entry(at, tag, typ, n, values_at))
            if tag in (330, 34665) and typ in (4, 13):
                todo += [_u32(b, values_at + 4 * k, big) for k in range(min(n, 8)) if values_at + 4 * k + 4 <= len(b)]
        todo.append(_u32(b, offset + 2 + 12 * count, big))
    return entries


def _set_entry_value(b: bytearray, entry: Entry, value: int, big: bool) -> None:
    """Write ``value`` as the first value of a SHORT or LONG entry."""
    if entry.type == 3:
        struct.pack_into(">H" if big else "<H", b, entry.values_at, value & 0xFFFF)
    else:
        struct.pack_into(">I" if big else "<I", b, entry.values_at, value & 0xFFFFFFFF)


def crop_rows(data: bytes, rows: int) -> bytes:
    """A single-strip raw cut to its first ``rows`` rows: ImageLength, RowsPerStrip, StripByteCounts and the
    bottom of ActiveArea of the largest image edited, and the file cut after the last row kept (the strip must
    end the file)."""
    b = bytearray(data)
    big = b[:2] == b"MM"
    entries = ifd_entries(b)
    by_ifd: dict[int, dict[int, Entry]] = collections.defaultdict(dict)
    for e in entries:
        by_ifd[_ifd_of(entries, e)][e.tag] = e
    best = max((tags for tags in by_ifd.values() if {256, 257, 273, 279} <= set(tags)),
               key=lambda tags: _read_value(b, tags[279], big))
    length = _read_value(b, best[257], big)
    strip_bytes = _read_value(b, best[279], big)
    start = _read_value(b, best[273], big)
    assert start + strip_bytes == len(b), "the strip must end the file"
    row_bytes = strip_bytes // length
    for tag, value in ((257, rows), (278, rows), (279, rows * row_bytes)):
        if tag in best:
            _set_entry_value(b, best[tag], value, big)
    if 50829 in best:  # ActiveArea (top, left, bottom, right): the bottom moves up with the crop
        area = best[50829]
        size = _TYPE_SIZES[area.type]
        bottom = area.values_at + 2 * size
        struct.pack_into((">" if big else "<") + ("H" if size == 2 else "I"), b, bottom, rows)
    return bytes(b[: start + rows * row_bytes])


def _ifd_of(entries: list[Entry], entry: Entry) -> int:
    """The entries of one IFD are 12 bytes apart: the IFD is named by its first entry's position."""
    first = entry.at
    positions = {e.at for e in entries}
    while first - 12 in positions:
        first -= 12
    return first


def _read_value(b: bytes | bytearray, entry: Entry, big: bool) -> int:
    return _u16(b, entry.values_at, big) if entry.type == 3 else _u32(b, entry.values_at, big)


def load_seeds() -> list[Seed]:
    """The seeds described in the module's docstring (those whose files are present)."""
    seeds = []
    if BUNDLED.is_file():
        bundled = BUNDLED.read_bytes()
        seeds += [Seed("bundled-dng-96rows", ".dng", crop_rows(bundled, 96), 30),
                  Seed("bundled-dng-full", ".dng", bundled, 4)]
    canon = SHARED_RAWS / "canon_eos550d_magiclantern__tinydng_colorchart.dng"
    sony = SHARED_RAWS / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW"
    nikon = SHARED_RAWS / "nikon_d500_adobedngconv_lossylinear__magicknet_DSC8695.dng"
    gopro = SHARED_RAWS / "unsupported" / "gopro_hero6__gpr_GOPR0024.GPR"
    if canon.is_file():
        seeds.append(Seed("canon550d-dng-128rows", ".dng", crop_rows(canon.read_bytes(), 128), 25))
    if sony.is_file():
        seeds.append(Seed("sony-a7r3-arw-64rows", ".arw", crop_rows(sony.read_bytes(), 64), 20))
    if nikon.is_file():
        seeds.append(Seed("nikon-d500-linear-dng", ".dng", nikon.read_bytes(), 15))
    if gopro.is_file():
        seeds.append(Seed("gopro-vc5-gpr", ".gpr", gopro.read_bytes(), 6))
    return seeds


# ----- mutations ------------------------------------------------------------------------------------------------

_HOSTILE_INTS = (0, 1, 2, 3, 7, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 100000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
_HOSTILE_DOUBLES = (float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 0.0, -1.0, 5e-324, 1e-300)
# tags whose values size or place the image, or feed the colour maths
_KEY_TAGS = (256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 322, 323, 324, 325, 330, 33421, 33422, 50706, 50710,
             50711, 50713, 50714, 50717, 50718, 50719, 50720, 50721, 50722, 50727, 50728, 50730, 50778, 50779,
             50829, 50964, 50965, 51008, 51009, 51022, 51041)


def _flip(rng: random.Random, b: bytearray, _seeds: list[Seed]) -> str:
    n = rng.choice((1, 1, 2, 4, 8, 32))
    header = min(len(b), 1 << 16)
    for _ in range(n):
        at = rng.randrange(header) if rng.random() < 0.8 or len(b) <= header else rng.randrange(len(b))
        b[at] = rng.randrange(256) if rng.random() < 0.5 else b[at] ^ (1 << rng.randrange(8))
    return f"flip{n}"


def _tag(rng: random.Random, b: bytearray, _seeds: list[Seed]) -> str:
    entries = ifd_entries(b)
    if not entries:
        return _flip(rng, b, _seeds)
    key = [e for e in entries if e.tag in _KEY_TAGS]
    entry = rng.choice(key if key and rng.random() < 0.7 else entries)
    big = b[:2] == b"MM"
    pack = ">" if big else "<"
    kind = rng.choice(("count", "type", "offset", "value", "value", "value", "nan-double"))
    if kind == "count":
        struct.pack_into(pack + "I", b, entry.at + 4, rng.choice(_HOSTILE_INTS + (entry.count + 1, entry.count * 2)))
    elif kind == "type":
        struct.pack_into(pack + "H", b, entry.at + 2, rng.choice((0, 1, 2, 3, 4, 5, 7, 10, 11, 12, 13, 14, 17, 255)))
    elif kind == "offset":
        struct.pack_into(pack + "I", b, entry.at + 8, rng.choice(_HOSTILE_INTS + (len(b) - 1, len(b), len(b) + 8)))
    elif kind == "value":
        size = _TYPE_SIZES.get(entry.type, 1)
        index = rng.randrange(max(1, min(entry.count, 64)))
        at = entry.values_at + index * size
        if at + size > len(b):
            return f"tag{entry.tag}-value-out-of-file"
        if entry.type in (11, 12):
            value = rng.choice(_HOSTILE_DOUBLES)
            if entry.type == 11 and math.isfinite(value) and abs(value) > 3e38:  # past a FLOAT's range
                value = math.copysign(3e38, value)
            struct.pack_into(pack + ("f" if entry.type == 11 else "d"), b, at, value)
        elif entry.type in (5, 10):
            numerator, denominator = rng.choice(((0, 0), (1, 0), (0xFFFFFFFF, 1), (1, 0xFFFFFFFF), (0x80000000, 1),
                                                 (rng.randrange(1 << 32), rng.randrange(1 << 32))))
            struct.pack_into(pack + "II", b, at, numerator, denominator)
        elif size in (2, 4):
            value = rng.choice(_HOSTILE_INTS) & ((1 << 8 * size) - 1)
            struct.pack_into(pack + ("H" if size == 2 else "I"), b, at, value)
        else:
            b[at] = rng.choice((0, 1, 2, 3, 4, 127, 255))
    else:  # the reproducer, generalised: the entry becomes one DOUBLE pointing at a NaN or an infinity
        struct.pack_into(pack + "HI", b, entry.at + 2, 12, rng.choice((1, entry.count or 1)))
        struct.pack_into(pack + "I", b, entry.at + 8, len(b))
        b += struct.pack(pack + "d", rng.choice(_HOSTILE_DOUBLES[:5])) * max(1, min(entry.count, 16))
    return f"tag{entry.tag}-{kind}"


def _truncate(rng: random.Random, b: bytearray, _seeds: list[Seed]) -> str:
    cut = rng.randrange(1, max(2, min(len(b), 4096)))  # bytes off the end
    keep = int(len(b) * rng.random() ** 2) if rng.random() < 0.7 else len(b) - cut
    del b[max(keep, 0):]
    return "truncate"


def _splice(rng: random.Random, b: bytearray, seeds: list[Seed]) -> str:
    other = rng.choice(seeds).data
    size = rng.choice((4, 12, 64, 512, 4096))
    start = rng.randrange(max(1, len(other) - size))
    chunk = other[start : start + size]
    at = rng.randrange(max(1, min(len(b), 1 << 16)))
    if rng.random() < 0.5:
        b[at : at + len(chunk)] = chunk
        return "splice-overwrite"
    b[at:at] = chunk
    return "splice-insert"


_MUTATIONS = ((_tag, 45), (_flip, 20), (_truncate, 15), (_splice, 10))


def mutate(seeds: list[Seed], base: int, index: int) -> tuple[Seed, bytes, str]:
    """Input number ``index`` of the run seeded ``base``: the same numbers give the same bytes."""
    rng = random.Random(f"{base}-{index}")
    seed = rng.choices(seeds, weights=[s.weight for s in seeds])[0]
    b = bytearray(seed.data)
    steps = 1 if rng.random() < 0.75 else rng.choice((2, 3))
    kinds = []
    for _ in range(steps):
        function = rng.choices([m for m, _ in _MUTATIONS], weights=[w for _, w in _MUTATIONS])[0]
        kinds.append(function(rng, b, seeds))
        if not b:
            break
    return seed, bytes(b), "+".join(kinds)


# ----- running one input ----------------------------------------------------------------------------------------

@dataclass
class Outcome:
    status: str  # "rendered", "refused", "time-limit", or a finding: "crash", "traceback", "hang", ...
    exit: int | None
    signal: int | None
    seconds: float
    max_rss_mb: float
    message: str


def _argv(source: Path, target: Path, time_limit: float) -> list[str]:
    return ["render", str(source), "-o", str(target), "--time-limit", f"{time_limit:g}"]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child(argv: list[str], stdout: Path, stderr: Path) -> None:
    """In the forked child: the real command line, as ``hostplug ARGV`` would run it; never returns."""
    code = 70
    try:
        _limit_memory()
        for fd, path in ((1, stdout), (2, stderr)):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        from hostplug.cli import main

        try:
            main(argv, prog_name="hostplug", standalone_mode=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - print it as an uncaught exception would be, then report it
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait(pid: int, deadline: float) -> tuple[int | None, float]:
    """The raw wait status (None: still running at ``deadline``, then killed) and the peak RSS in MB."""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage.ru_maxrss / 1024
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return None, usage.ru_maxrss / 1024
        time.sleep(0.005)


def run_forked(argv: list[str], folder: Path, time_limit: float) -> tuple[int | None, float, float]:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(argv, folder / "stdout", folder / "stderr")
    status, rss = _wait(pid, start + time_limit + GRACE_SECONDS)
    return status, time.monotonic() - start, rss


def run_fresh(argv: list[str], folder: Path, time_limit: float) -> tuple[int | None, float, float]:
    start = time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NUMBA_THREADING_LAYER", None)  # a fresh process runs with numba's default, as a user's does
    with open(folder / "stdout", "wb") as out, open(folder / "stderr", "wb") as err:
        process = subprocess.Popen([sys.executable, "-c", "import sys; from hostplug.cli import main; "
                                    "main(sys.argv[1:], prog_name='hostplug')", *argv],
                                   stdout=out, stderr=err, preexec_fn=_limit_memory, env=env, cwd=folder)
        status, rss = _wait(process.pid, start + time_limit + FRESH_GRACE_SECONDS)
        process.returncode = 0  # reaped by _wait
    return status, time.monotonic() - start, rss


def judge(status: int | None, seconds: float, rss: float, folder: Path, target: Path,
          expected_size: tuple[int, int] | None) -> Outcome:
    """What the run of one input shows (see the module's docstring for what passes)."""
    err = (folder / "stderr").read_bytes().decode(errors="replace")
    lines = [line for line in err.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if status is None:
        return Outcome("hang", None, None, seconds, rss, first)
    if os.WIFSIGNALED(status):
        return Outcome("crash", None, os.WTERMSIG(status), seconds, rss, first)
    code = os.WEXITSTATUS(status)
    leftovers = sorted(p.name for p in target.parent.iterdir() if p != target)
    if rss > MEMORY_LIMIT / (1 << 20):
        return Outcome("over-3GB", code, None, seconds, rss, first)
    if "Traceback" in err:
        return Outcome("traceback", code, None, seconds, rss, err.strip()[-2000:])
    if leftovers:
        return Outcome("leftover-files", code, None, seconds, rss, " ".join(leftovers))
    if code == 0:
        problem = _check_output(target, expected_size)
        return Outcome("rendered" if not problem else "bad-output", 0, None, seconds, rss, problem or "")
    if target.exists():
        return Outcome("output-after-error", code, None, seconds, rss, first)
    if code not in HOSTPLUG_EXITS:
        return Outcome("unexpected-exit", code, None, seconds, rss, err.strip()[-2000:])
    if len(lines) != 1 or not first.startswith("hostplug: error: "):
        return Outcome("not-one-line", code, None, seconds, rss, err.strip()[-2000:])
    return Outcome("time-limit" if code == 124 else "refused", code, None, seconds, rss, first)


def _check_output(target: Path, expected: tuple[int, int] | None) -> str | None:
    import tifffile

    if not target.is_file():
        return "exit 0 but no output"
    try:
        with tifffile.TiffFile(target) as tif:
            shape = tif.pages[0].shape
    except Exception as e:  # noqa: BLE001 - any failure to read it back is the finding
        return f"the output cannot be read back: {type(e).__name__}: {e}"
    if len(shape) != 3 or shape[2] != 3 or min(shape[:2]) < 1:
        return f"the output has shape {shape}"
    return None


# ----- the run --------------------------------------------------------------------------------------------------

def _warm_up(seeds: list[Seed], work: Path) -> None:
    """Import everything, load the models and compile the kernels in the parent (its children inherit them)."""
    import torch

    from hostplug.cli import main

    torch.set_num_threads(1)
    folder = work / "warm"
    folder.mkdir(exist_ok=True)
    source = folder / f"seed{seeds[0].suffix}"
    source.write_bytes(seeds[0].data)
    try:  # without the time limit: this first render also loads the models and compiles the kernels
        main(["render", str(source), "-o", str(folder / "warm.tif"), "--overwrite"], prog_name="hostplug",
             standalone_mode=True)
    except SystemExit as e:
        if e.code:
            raise RuntimeError(f"the warm-up render of {seeds[0].name} failed: exit {e.code}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="mutated raws to render (default 1000)")
    parser.add_argument("--start", type=int, default=0, help="first input number (to resume or split a run)")
    parser.add_argument("--seed", type=int, default=13, help="the run's random seed")
    parser.add_argument("--time-limit", type=float, default=60.0, help="hostplug render --time-limit (default 60)")
    parser.add_argument("--fresh", type=int, default=0, help="also run the first N inputs as fresh processes")
    parser.add_argument("--mode", choices=("fork", "fresh"), default="fork", help="how to run every input")
    parser.add_argument("--work", type=Path, help="working folder (default: a new temporary folder)")
    args = parser.parse_args()

    os.environ.update(HOSTPLUG_NO_SERVICE="1", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    if args.mode == "fork":  # numba's default OpenMP layer cannot fork (the child is terminated); workqueue can
        os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    work = args.work or Path(tempfile.mkdtemp(prefix="hostplug-mutate-"))
    (work / "findings").mkdir(parents=True, exist_ok=True)
    seeds = load_seeds()
    if args.mode == "fork":
        _warm_up(seeds, work)
    counts: collections.Counter[str] = collections.Counter()
    per_seed: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    per_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    disagreements: list[dict[str, object]] = []
    peak_rss, slowest, started = 0.0, 0.0, time.monotonic()
    log = open(work / "results.jsonl", "a")  # noqa: SIM115 - one line per input, flushed as the run goes
    for index in range(args.start, args.start + args.count):
        seed, data, kinds = mutate(seeds, args.seed, index)
        folder = work / "current"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "out").mkdir(parents=True)
        source = folder / f"input{seed.suffix}"
        source.write_bytes(data)
        target = folder / "out" / "output.tif"
        argv = _argv(source, target, args.time_limit)
        run = run_forked if args.mode == "fork" else run_fresh
        outcome = judge(*run(argv, folder, args.time_limit), folder, target, None)
        record = {"index": index, "seed": seed.name, "mutation": kinds, "bytes": len(data), "mode": args.mode,
                  **outcome.__dict__}
        if index - args.start < args.fresh and args.mode == "fork":
            shutil.rmtree(folder / "out")
            (folder / "out").mkdir()
            fresh = judge(*run_fresh(argv, folder, args.time_limit), folder, target, None)
            record["fresh"] = fresh.__dict__
            if (fresh.status, fresh.exit, fresh.message) != (outcome.status, outcome.exit, outcome.message):
                disagreements.append({"index": index, "fork": outcome.__dict__, "fresh": fresh.__dict__})
                if fresh.status not in ("rendered", "refused", "time-limit"):
                    outcome = fresh  # a finding seen only by a fresh process is a finding
        counts[outcome.status] += 1
        per_seed[seed.name][outcome.status] += 1
        per_kind[kinds.split("+")[0].split("-")[0].rstrip("0123456789") or kinds][outcome.status] += 1
        peak_rss, slowest = max(peak_rss, outcome.max_rss_mb), max(slowest, outcome.seconds)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if outcome.status not in ("rendered", "refused", "time-limit"):
            kept = work / "findings" / f"{index:06d}-{outcome.status}{seed.suffix}"
            kept.write_bytes(data)
            kept.with_suffix(".txt").write_text(json.dumps(record, indent=2))
            print(f"FINDING {index} {seed.name} {kinds}: {outcome.status} {outcome.message[:300]}", flush=True)
        done = index - args.start + 1
        if done % 100 == 0:
            print(f"{done}/{args.count} in {time.monotonic() - started:.0f} s: {dict(counts)}", flush=True)
    log.close()
    findings = sum(n for status, n in counts.items() if status not in ("rendered", "refused", "time-limit"))
    summary = {"inputs": args.count, "start": args.start, "seed": args.seed, "mode": args.mode,
               "time_limit": args.time_limit, "outcomes": dict(counts), "findings": findings,
               "per_seed": {k: dict(v) for k, v in per_seed.items()},
               "per_mutation": {k: dict(v) for k, v in per_kind.items()},
               "fresh_compared": min(args.fresh, args.count) if args.mode == "fork" else 0,
               "fresh_disagreements": disagreements, "peak_rss_mb": round(peak_rss, 1),
               "slowest_seconds": round(slowest, 2), "seconds": round(time.monotonic() - started, 1),
               "seeds": {s.name: {"bytes": len(s.data), "weight": s.weight} for s in seeds}}
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 1 if findings or disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
