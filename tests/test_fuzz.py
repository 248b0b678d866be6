"""A short, bounded run of each atheris fuzz target in ``tests/fuzz/`` (see its README for the long run).

Each target runs in its own process under libFuzzer with a time, memory and per-input limit; exit code 0 means
no crash, traceback, hang past the limit or out-of-memory was found. Skipped when atheris is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
SECONDS = int(os.environ.get("HOSTPLUG_FUZZ_SECONDS", "60"))  # per target; plus ~20 s of instrumenting each
TARGETS = ["dng", "xmp", "config", "templates", "open"]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                reason="atheris is not installed (pip install atheris, or the test extra)")


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_finds_no_crash(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    command = [sys.executable, str(FUZZ / f"fuzz_{target}.py"), f"-max_total_time={SECONDS}",
               "-rss_limit_mb=3072", "-timeout=20", f"-artifact_prefix={tmp_path}/", str(corpus)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 120, cwd=FUZZ)
    artifacts = sorted(p.name for p in tmp_path.iterdir() if p.name != "corpus")
    assert result.returncode == 0, (f"fuzz_{target} found a problem (exit {result.returncode}, reproducers "
                                    f"{artifacts}):\n{result.stderr[-4000:]}")



def test_mutated_render_inputs_are_reproducible_and_seeds_are_real_crops() -> None:
    """tests/fuzz/mutate_render.py: input N of a run is the same bytes every time (a finding can be made again
    from its number), and each cropped seed still opens, with the rows kept."""
    sys.path.insert(0, str(FUZZ))
    try:
        import mutate_render
    finally:
        sys.path.remove(str(FUZZ))
    import engine

    seeds = mutate_render.load_seeds()
    assert seeds
    for index in range(30):
        first, again = mutate_render.mutate(seeds, 13, index), mutate_render.mutate(seeds, 13, index)
        assert first[0].name == again[0].name and first[1:] == again[1:]
    for seed in seeds:
        if seed.name.endswith("rows"):
            rows = int(seed.name.rsplit("-", 1)[1].removesuffix("rows"))
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f"seed{seed.suffix}"
                path.write_bytes(seed.data)
                assert engine.open(path).size[0] <= rows
