"""The scripts in examples/ run as a user would run them, and write valid images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tifffile
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))
SAMPLE_DNG = REPO / "engine" / "samples" / "hostplug_colorchecker.dng"


def run_example(script: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter from ``cwd``; fail with its output when it exits non-zero."""
    result = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout}\n{result.stderr}"
    return result


def image_size(path: Path) -> tuple[int, int]:
    """Width and height of a written image, read back by a decoder (tifffile for 16-bit TIFFs)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        pixels = tifffile.imread(path)
        return pixels.shape[1], pixels.shape[0]
    with Image.open(path) as image:
        image.load()
        return image.size


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("script", EXAMPLES, ids=[s.stem for s in EXAMPLES])
def test_example_writes_valid_outputs(script: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_example(script, SAMPLE_DNG, out, cwd=tmp_path)
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert written, f"{script.name} wrote nothing into {out}"
    assert not [p for p in written if p.name.endswith(".part")], "a temporary file was left behind"
    for path in written:
        if path.suffix.lower() in (".tif", ".tiff", ".png", ".jpg", ".jpeg"):
            width, height = image_size(path)
            assert width > 0 and height > 0, path
        elif path.suffix == ".json":
            json.loads(path.read_text())


def test_example_defaults_to_the_bundled_sample(tmp_path: Path) -> None:
    """Without arguments a script reads the bundled sample and writes into a temporary folder it prints."""
    result = run_example(REPO / "examples" / "info.py", cwd=tmp_path)
    printed = Path(result.stdout.strip().splitlines()[-1])
    try:
        assert printed.is_file()
        assert json.loads(printed.read_text())["file"].endswith(SAMPLE_DNG.name)
    finally:
        printed.unlink(missing_ok=True)
        printed.parent.rmdir()
