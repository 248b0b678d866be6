"""Shared plumbing for the atheris fuzz targets in this folder (see README.md).

Each target module defines ``seeds()`` (the seed corpus, made in code) and ``one_input(data)``; ``main()`` runs
libFuzzer on it. A :class:`engine.errors.HostplugError` (the daemon's ``ConfigError`` is one) is an expected
outcome; any other exception escapes ``one_input`` and libFuzzer reports it as a crash with its reproducer.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_RAWS = REPO.parent / "shared" / "rawsamples"
BUNDLED_DNG = REPO / "engine" / "samples" / "hostplug_colorchecker.dng"
FULL_SEED_BYTES = 4 * 1024 * 1024  # larger samples are seeded by their first megabyte only
HEAD_BYTES = 1024 * 1024

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def raw_seeds(suffixes: Iterable[str] = (".dng", ".arw", ".gpr", ".nef", ".cr2")) -> list[bytes]:
    """The bundled sample and ``../shared/rawsamples`` (when present), big files cut to their head."""
    wanted = {s.lower() for s in suffixes}
    paths = [BUNDLED_DNG] if BUNDLED_DNG.is_file() else []
    if SHARED_RAWS.is_dir():
        paths += sorted(p for p in SHARED_RAWS.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
    seeds = []
    for path in paths:
        data = path.read_bytes()
        seeds.append(data if len(data) <= FULL_SEED_BYTES else data[:HEAD_BYTES])
    return seeds


def quiet() -> None:
    """Keep libraries' log lines and warnings out of the fuzzer's output."""
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")


class Scratch:
    """One temporary folder per process, reused for every input."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hostplug-fuzz-"))

    def write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path


def _prepare_corpus(argv: list[str], seeds: Callable[[], list[bytes]]) -> list[str]:
    """Fill an empty corpus folder given on the command line with the seeds, or add a fresh one if none."""
    folders = [a for a in argv[1:] if not a.startswith("-")]
    if not folders:
        folder = tempfile.mkdtemp(prefix="hostplug-fuzz-corpus-")
        argv = argv + [folder]
        folders = [folder]
    target = Path(folders[0])
    target.mkdir(parents=True, exist_ok=True)
    if not any(target.iterdir()):
        for i, seed in enumerate(seeds()):
            (target / f"seed-{i:03d}").write_bytes(seed)
    return argv


def main(one_input: Callable[[bytes], None], seeds: Callable[[], list[bytes]]) -> None:
    import atheris

    quiet()
    argv = _prepare_corpus(list(sys.argv), seeds)
    if os.environ.get("HOSTPLUG_FUZZ_NO_INSTRUMENT") != "1":
        atheris.instrument_all()  # coverage of every loaded Python function (ours and the libraries we call)
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
