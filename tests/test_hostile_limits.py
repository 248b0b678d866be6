"""Limits and opening (issue 13): the command line's per-render time limit, the input opened once without
following a link swapped in later, and the partial files a stopped render leaves (none, or found by name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engine
import engine.io.source as source_module
from engine.errors import InputNotFoundError
from engine.output.write import IN_PROGRESS, is_partial_of, partial_name
from hostplug.daemon.originals import remove_partials
from tests.conftest import SAMPLE_DNG, error_lines, hostplug, hostplug_process
from tests.hostile_inputs import small_sample


def write_small(folder: Path) -> Path:
    raw = folder / "small.dng"
    raw.write_bytes(small_sample())
    return raw


def test_time_limit_stops_a_render_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = hostplug_process("render", SAMPLE_DNG, "-o", out / "x.tif", "--time-limit", "0.2", "--no-service")
    assert result.returncode == 124, result.stderr
    assert error_lines(result.stderr) == [f"hostplug: error: {SAMPLE_DNG}: stopped after 0.2 s (--time-limit / "
                                          "HOSTPLUG_TIME_LIMIT); its output was not written"]
    assert os.listdir(out) == []
    # with --json the stopped input is a record too, as a failed one is (a tester's script got no line for it)
    result = hostplug_process("render", SAMPLE_DNG, "-o", out / "x.tif", "--time-limit", "0.2", "--no-service",
                              "--json")
    assert result.returncode == 124 and [json.loads(line) for line in result.stdout.splitlines()] == [
        {"input": str(SAMPLE_DNG), "error": f"{SAMPLE_DNG}: stopped after 0.2 s (--time-limit / HOSTPLUG_TIME_LIMIT); "
         "its output was not written", "exit_code": 124}]


def test_a_batch_stopped_by_the_time_limit_says_what_it_left_undone_and_no_stage_folder(tmp_path: Path) -> None:
    # the rest of the batch was skipped without a word, and the stopped render's stage images were left half done
    raws = []
    for name in ("a", "b", "c"):
        raws.append(tmp_path / f"{name}.dng")
        raws[-1].write_bytes(SAMPLE_DNG.read_bytes())
    script = (
        "import time, sys\n"
        "import engine.pipeline as pipeline\n"
        "saved = pipeline.save_stage\n"
        "def slow(folder, index, *args):\n"
        "    saved(folder, index, *args)\n"
        "    if folder.name == 'b' and index == 2: time.sleep(60)  # b stops three stage images in\n"
        "pipeline.save_stage = slow\n"
        "from hostplug.cli import main\n"
        "sys.argv = ['hostplug', *sys.argv[1:]]\n"
        "main()\n"
    )
    args = [*raws, "--out-dir", tmp_path / "out", "--stages", tmp_path / "stages", "--long-edge", "100",
            "--time-limit", "20", "--no-service"]
    result = subprocess.run([sys.executable, "-c", script, "render", *map(str, args)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 124, result.stderr
    assert error_lines(result.stderr)[-1] == (
        f"hostplug: error: {raws[1]}: stopped after 20 s (--time-limit / HOSTPLUG_TIME_LIMIT); its output was "
        f"not written; 1 of 3 files done; not done: {raws[1]}, {raws[2]}")
    assert sorted(p.name for p in (tmp_path / "stages").iterdir()) == ["a"]  # b's begun folder removed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif"]


def test_time_limit_stops_work_stuck_in_compiled_code(tmp_path: Path) -> None:
    """A call into C that never returns to Python (here libc's sleep) is stopped all the same: the watchdog is a
    thread, and it deletes the partial files of writes in progress before ending the process. Its line reaches
    stderr even while fd 2 is silenced (a mutated-render finding: a render stuck in LibRaw exited 124 silently)."""
    partial = tmp_path / ".x.tif.0123abcd.part"
    script = (
        "import ctypes, sys; from pathlib import Path\n"
        "from engine.output.write import IN_PROGRESS\n"
        "from hostplug.commands.common import watchdog\n"
        f"partial = Path({str(partial)!r}); partial.write_bytes(b'half'); IN_PROGRESS.add(partial)\n"
        "from engine.io.limits import quiet_stderr\n"
        "with watchdog(0.5, 'stuck.dng'), quiet_stderr():  # as while LibRaw decodes: fd 2 is /dev/null\n"
        "    ctypes.CDLL(None).sleep(60)\n"
    )
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 124
    assert time.monotonic() - start < 30
    assert error_lines(result.stderr) == ["hostplug: error: stuck.dng: stopped after 0.5 s (--time-limit / "
                                          "HOSTPLUG_TIME_LIMIT); its output was not written"]
    assert not partial.exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e9", "soon"])
def test_time_limit_must_be_a_sane_number_of_seconds(tmp_path: Path, value: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    result = hostplug("render", SAMPLE_DNG, "-o", tmp_path / "x.tif", "--time-limit", value)
    assert result.exit_code == 2  # a wrong option
    assert error_lines(result.stderr) == [f"hostplug: error: --time-limit {value}: the time limit must be a number "
                                          "of seconds above 0 and at most 604800"]
    monkeypatch.setenv("HOSTPLUG_TIME_LIMIT", value)
    result = hostplug("rerender", tmp_path / "x.tif")
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [f"hostplug: error: HOSTPLUG_TIME_LIMIT={value}: the time limit must be a "
                                          "number of seconds above 0 and at most 604800"]
    assert os.listdir(tmp_path) == []


def test_a_render_within_its_time_limit_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = write_small(tmp_path)
    monkeypatch.setenv("HOSTPLUG_TIME_LIMIT", "600")
    result = hostplug("render", raw, "-o", tmp_path / "x.tif", "--no-service")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "x.tif").is_file()
    assert not IN_PROGRESS


def test_partial_names_of_long_outputs_are_found_by_remove_partials(tmp_path: Path) -> None:
    for name in ("a.tif", "x" * 240 + ".tif", "y" * 251 + ".tif"):
        partial = partial_name(name)
        assert len(os.fsencode(partial)) <= 255 and is_partial_of(partial, name)
        assert not is_partial_of(partial, "other.tif")
        (tmp_path / partial).write_bytes(b"half")
        (tmp_path / partial_name("other.tif")).write_bytes(b"someone else's")
        assert remove_partials(tmp_path / name) == 1
        assert not (tmp_path / partial).exists()
    assert len(os.listdir(tmp_path)) == 3  # the other output's partial files stay


def test_an_input_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "raw.dng"
    os.mkfifo(fifo)
    with pytest.raises(InputNotFoundError, match="refused, the input is a FIFO, not a regular file"):
        engine.open(fifo)
    with pytest.raises(InputNotFoundError, match="refused, the input is a folder"):
        engine.open(tmp_path)
    with pytest.raises(InputNotFoundError, match="no such file"):
        engine.open(tmp_path / "missing.dng")


def test_a_link_is_followed_only_when_asked(tmp_path: Path) -> None:
    raw = write_small(tmp_path)
    link = tmp_path / "link.dng"
    link.symlink_to(raw)
    assert engine.open(link).size == engine.open(raw).size
    with pytest.raises(InputNotFoundError, match="refused, the input is a symbolic link"):
        engine.open(link, follow_links=False)
    assert engine.open(raw, follow_links=False).path == raw


def test_a_link_swapped_in_while_the_input_is_read_is_not_read(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Every library reads the file opened first: replacing the path by a link to another raw after our DNG
    checks ran (before LibRaw and exiv2 open it) changes nothing."""
    raw = write_small(tmp_path)
    other = tmp_path / "other.dng"  # a different size; a copy, so no test can ever move the bundled sample
    other.write_bytes(SAMPLE_DNG.read_bytes())
    checked = source_module.read_dng_tags

    def check_then_swap(path: Path, file: Path | None = None):  # type: ignore[no-untyped-def]
        tags = checked(path, file)
        path.rename(tmp_path / "moved.dng")
        path.symlink_to(other)
        return tags

    expected, other_size = engine.open(raw).size, engine.open(other).size
    monkeypatch.setattr(source_module, "read_dng_tags", check_then_swap)  # only ``raw`` is opened from here on
    opened = engine.open(raw)
    assert opened.size == expected != other_size
    assert opened.path == raw
