"""``hostplug watch`` end to end, as a real process: the guarantees a studio relies on.

Each test starts the daemon on a temporary hot folder with copies (under new names) of the bundled 900 x 600
sample DNG, and short settle and retry times.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyexiv2
import pytest
from daemon_helpers import (
    COMMAND,
    GOPRO,
    SAMPLE_DNG,
    WatchProcess,
    alive,
    children,
    drop,
    events,
    rows,
    states,
    wait_for,
    write_config,
)

from engine.output.metadata import XMP_PREFIX, register_namespace
from hostplug.daemon.errors import TakenError

OUTPUTS = [{"folder": "out/masters", "template": "{name}", "format": "tiff", "bits": 16},
           {"folder": "out/web", "template": "{date}/{name}_{style}", "format": "jpeg", "long_edge": 300}]


@pytest.fixture
def studio(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()  # the parent of OUTPUTS' folders: the daemon makes an output folder, never its parents
    return tmp_path


def _config(studio: Path, daemon: dict | None = None, outputs: list | None = None, **folder) -> Path:
    return write_config(studio / "studio.toml", studio / "in", outputs or OUTPUTS, daemon, **folder)


def _done(studio: Path, count: int) -> bool:
    found = states(studio / "journal.sqlite")
    return len(found) >= count and all(s in ("done", "failed") for s in found.values())


def _outputs(studio: Path) -> list[str]:
    """Every file under out/, relative, sorted (hidden temporaries included, so none may remain)."""
    return sorted(str(p.relative_to(studio / "out")) for p in (studio / "out").rglob("*") if p.is_file())


def _recipe_of(output: Path) -> dict:
    register_namespace()
    with pyexiv2.Image(str(output)) as image:
        return json.loads(image.read_xmp()[f"Xmp.{XMP_PREFIX}.recipe"])


def _expected_outputs(names: list[str]) -> list[str]:
    today = time.strftime("%Y-%m-%d")
    found = [f"masters/{n}.tif" for n in names]
    return sorted(found + [f"web/{today}/{n}_natural.jpg" for n in names])


def _stage_with_sidecar(studio: Path, name: str, **settings: float) -> tuple[Path, Path]:
    """A raw and its sidecar (holding a recipe of ours) prepared outside the hot folder."""
    sidecar_module = pytest.importorskip("engine.xmp.sidecar")
    from engine.recipe import Recipe

    staging = studio / "staging"
    staging.mkdir(exist_ok=True)
    raw = staging / name
    shutil.copyfile(SAMPLE_DNG, raw)
    sidecar = sidecar_module.write_recipe(raw, Recipe(**settings))
    return raw, sidecar


def test_dropped_raws_render_once_each_honouring_sidecars_and_skipping_identical_redrops(studio: Path) -> None:
    hot = studio / "in"
    drop(hot, "early.dng")  # arrived while the daemon was down: the start-up scan finds it
    with WatchProcess("--config", _config(studio), cwd=studio) as daemon:
        drop(hot, "b.dng")
        raw, sidecar = _stage_with_sidecar(studio, "c.dng", exposure=1.0)
        shutil.move(sidecar, hot / sidecar.name)
        shutil.move(raw, hot / "c.dng")
        wait_for(lambda: _done(studio, 3), 90, "three renders")
        assert states(studio / "journal.sqlite") == {"early.dng": "done", "b.dng": "done", "c.dng": "done"}
        assert _outputs(studio) == _expected_outputs(["b", "c", "early"])
        assert _recipe_of(studio / "out/masters/c.tif")["exposure"] == 1.0  # the sidecar's recipe
        assert _recipe_of(studio / "out/masters/b.tif")["exposure"] == 0.0
        assert not (hot / "_failed").exists()  # the sidecar was never taken for an input

        before = (studio / "out/masters/b.tif").stat().st_mtime_ns
        (hot / "b.dng").unlink()
        drop(hot, "b.dng")  # the same bytes again
        wait_for(lambda: any(e["path"].endswith("/b.dng") for e in events(studio / "log.jsonl", "unchanged")),
                 30, "the identical re-drop to be recognised")
        assert (studio / "out/masters/b.tif").stat().st_mtime_ns == before

        raw, sidecar = _stage_with_sidecar(studio, "b.dng", exposure=-1.0)  # same bytes, a new recipe
        (hot / "b.dng").unlink()
        shutil.move(sidecar, hot / sidecar.name)
        shutil.move(raw, hot / "b.dng")
        wait_for(lambda: _recipe_of(studio / "out/masters/b.tif")["exposure"] == -1.0, 30, "b re-rendered")
        assert daemon.terminate() == 0
        assert "rendered" in daemon.output() and "identical to its last render" in daemon.output()  # readable
    assert events(studio / "log.jsonl", "progress")  # the periodic progress line, as JSON too
    assert _outputs(studio) == _expected_outputs(["b", "c", "early"])
    done = [e["path"].rsplit("/", 1)[1] for e in events(studio / "log.jsonl", "done")]
    assert sorted(done) == ["b.dng", "b.dng", "c.dng", "early.dng"]


def test_a_slowly_copied_file_is_rendered_only_once_complete(studio: Path) -> None:
    hot = studio / "in"
    data = SAMPLE_DNG.read_bytes()
    config = _config(studio, {"settle_seconds": 1.5, "watcher": "polling", "poll_seconds": 0.2})
    with WatchProcess("--config", config, cwd=studio) as daemon:
        wait_for(lambda: events(studio / "log.jsonl", "start"), 30, "the daemon to start")
        rsync_temporary = hot / ".quick.dng.Xa3f9Q"  # rsync's temporary name: ignored until renamed
        rsync_temporary.write_bytes(data)
        with (hot / "slow.dng").open("wb") as f:  # a copy that takes about 4 s, in 8 pieces
            for i in range(8):
                f.write(data[i * len(data) // 8:(i + 1) * len(data) // 8])
                f.flush()
                time.sleep(0.5)
                if i == 5:  # queue tells of the file arriving (a tester's looked idle through a card's copy)
                    from click.testing import CliRunner

                    from hostplug.cli import main

                    shown = CliRunner().invoke(main, ["queue", "--config", str(config), "--json"])
                    assert json.loads(shown.stdout)["settling"] == {"count": 1, "paths": [str(hot / "slow.dng")]}
                    text = CliRunner().invoke(main, ["queue", "--config", str(config)]).stdout
                    assert "(arriving, still being copied in: 1)" in text
        finished = time.time()
        time.sleep(1.0)
        assert states(studio / "journal.sqlite") == {}  # the temporary is ignored, the slow file still settling
        os.replace(rsync_temporary, hot / "quick.dng")
        wait_for(lambda: _done(studio, 2), 60, "both renders")
        assert daemon.terminate() == 0
    by_name = {Path(r["path"]).name: r for r in rows(studio / "journal.sqlite")}
    assert set(by_name) == {"slow.dng", "quick.dng"}
    slow = by_name["slow.dng"]
    assert slow["state"] == "done" and slow["attempts"] == 1
    assert slow["content_hash"] == hashlib.sha256(data).hexdigest()
    assert (studio / "out/masters/slow.tif").stat().st_mtime > finished
    queued = [e for e in events(studio / "log.jsonl", "queued") if e["path"].endswith("slow.dng")]
    assert len(queued) == 1 and queued[0]["ts"] >= finished


def test_corrupt_and_unsupported_files_are_set_aside_with_a_report_and_never_retried(studio: Path) -> None:
    hot = studio / "in"
    (hot / "truncated.dng").write_bytes(SAMPLE_DNG.read_bytes()[:40000])
    (hot / "notes.dng").write_text("not an image at all")
    if GOPRO.is_file():
        shutil.copyfile(GOPRO, hot / "gopro.gpr")
    config = _config(studio, outputs=OUTPUTS[1:], originals="move", archive=str(studio / "archive"))
    with WatchProcess("--config", config, cwd=studio) as daemon:
        count = 3 if GOPRO.is_file() else 2
        wait_for(lambda: _done(studio, count), 90, "every file to be handled")
        found = states(studio / "journal.sqlite")
        assert set(found.values()) == {"failed"}
        for name in found:
            assert not (hot / name).exists() and (hot / "_failed" / name).exists()
            report = (hot / "_failed" / f"{name}.failed.txt").read_text()
            assert "permanent" in report and "reason:" in report
        assert {r["attempts"] for r in rows(studio / "journal.sqlite") if r["state"] == "failed"} == {1}
        assert events(studio / "log.jsonl", "retry") == []

        shutil.copyfile(SAMPLE_DNG, hot / "_failed" / "truncated.dng")  # the photographer replaces one there
        wait_for(lambda: states(studio / "journal.sqlite")["truncated.dng"] == "done", 60,
                 "the replaced file, taken back by itself")
        from click.testing import CliRunner

        from hostplug.cli import main

        result = CliRunner().invoke(main, ["queue", "--config", str(studio / "studio.toml"), "--retry", "--json"])
        assert json.loads(result.stdout)["retried"] == count - 1 and json.loads(result.stdout)["running_pid"]
        wait_for(lambda: _done(studio, count), 60, "the other retries to fail again")
        assert daemon.terminate() == 0
    assert _outputs(studio) == [f"web/{time.strftime('%Y-%m-%d')}/truncated_natural.jpg"]  # the daemon kept going
    assert (hot / "_failed" / "notes.dng").exists()
    assert (studio / "archive" / "truncated.dng").exists() and not (hot / "truncated.dng").exists()


def test_after_kill_9_and_a_restart_every_file_has_exactly_one_set_of_outputs(studio: Path) -> None:
    hot = studio / "in"
    names = [f"shot{i}" for i in range(3)]
    config = _config(studio, {"workers": 1})
    with WatchProcess("--config", config, cwd=studio) as daemon:
        for name in names:
            drop(hot, f"{name}.dng")
        wait_for(lambda: "done" in states(studio / "journal.sqlite").values()
                 and "rendering" in states(studio / "journal.sqlite").values(), 90, "renders under way")
        workers = children(daemon.pid)
        daemon.kill()
    wait_for(lambda: not any(alive(pid) for pid in workers), 10, "the workers to die with the daemon")
    assert "done" in states(studio / "journal.sqlite").values()
    with WatchProcess("--config", config, cwd=studio) as daemon:
        wait_for(lambda: _done(studio, 3), 90, "the rest after the restart")
        assert daemon.terminate() == 0
    assert set(states(studio / "journal.sqlite").values()) == {"done"}
    assert _outputs(studio) == _expected_outputs(names)  # one of each, no duplicates, no temporaries
    assert events(studio / "log.jsonl", "recovered")[0]["count"] == 1


def test_sigterm_lets_a_running_render_finish_or_leaves_it_queued_after_the_grace_period(studio: Path) -> None:
    hot = studio / "in"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(studio / "notify"))
    env = {"NOTIFY_SOCKET": str(studio / "notify"), "WATCHDOG_USEC": "1000000"}
    # the learned denoiser makes the render outlast the 0.1 s grace period (its worker first imports torch)
    slow = {"stages": {"denoise": {"implementation": "learned"}}}
    with systemd, WatchProcess("--config", _config(studio, {"grace_seconds": 0.1}, recipe=slow), cwd=studio,
                               env=env) as daemon:
        drop(hot, "a.dng")
        wait_for(lambda: states(studio / "journal.sqlite").get("a.dng") == "rendering", 60, "a rendering")
        assert daemon.terminate() == 0
        systemd.setblocking(False)
        told = []
        with contextlib.suppress(BlockingIOError):
            while True:
                told.append(systemd.recv(4096).decode())
    assert told[0] == "READY=1\nSTATUS=watching" and "WATCHDOG=1" in told and "STOPPING=1" in told
    assert "EXTEND_TIMEOUT_USEC=30100000" in told  # grace_seconds + 30 s: a long grace outlasted TimeoutStopSec
    assert any(m.startswith("STATUS=queued") for m in told)
    row = rows(studio / "journal.sqlite")[0]
    assert row["state"] == "queued" and row["attempts"] == 0  # abandoned cleanly, not counted as a failure
    assert _outputs(studio) == []
    with WatchProcess("--config", _config(studio, {"grace_seconds": 60}), cwd=studio) as daemon:
        wait_for(lambda: states(studio / "journal.sqlite").get("a.dng") == "done", 60, "a done after restart")
        drop(hot, "b.dng")
        wait_for(lambda: states(studio / "journal.sqlite").get("b.dng") == "rendering", 60, "b rendering")
        assert daemon.terminate() == 0  # b finishes within the grace period
    assert states(studio / "journal.sqlite") == {"a.dng": "done", "b.dng": "done"}
    assert _outputs(studio) == _expected_outputs(["a", "b"])


def test_a_crashed_worker_costs_only_its_file_one_attempt(studio: Path) -> None:
    hot = studio / "in"
    with WatchProcess("--config", _config(studio, {"workers": 1}), cwd=studio) as daemon:
        drop(hot, "victim.dng")
        rendering = wait_for(lambda: [e for e in events(studio / "log.jsonl", "rendering")
                                      if e["path"].endswith("victim.dng")], 60, "victim rendering")
        os.kill(rendering[0]["worker"], signal.SIGKILL)  # a decoder crash, as far as the daemon can tell
        wait_for(lambda: _done(studio, 1), 90, "the file, on a new worker")
        drop(hot, "next.dng")  # and the daemon carries on
        wait_for(lambda: _done(studio, 2), 90, "the next file")
        assert daemon.terminate() == 0
    by_name = {Path(r["path"]).name: r for r in rows(studio / "journal.sqlite")}
    assert by_name["victim.dng"]["state"] == "done" and by_name["victim.dng"]["attempts"] == 2
    assert by_name["next.dng"]["state"] == "done" and by_name["next.dng"]["attempts"] == 1
    assert "SIGKILL" in events(studio / "log.jsonl", "retry")[0]["error"]
    assert _outputs(studio) == _expected_outputs(["next", "victim"])


def test_a_render_over_its_time_limit_is_retried_a_bounded_number_of_times(studio: Path) -> None:
    hot = studio / "in"
    # The bundled sample renders in 0.15-0.4 s (the first render in a worker on the slow side): 0.3 s was a coin
    # toss on a quiet machine; no render of it takes under 0.05 s.
    config = _config(studio, {"render_timeout": 0.05, "max_attempts": 2}, failed="mark")
    with WatchProcess("--config", config, cwd=studio) as daemon:
        drop(hot, "slow.dng")
        wait_for(lambda: _done(studio, 1), 90, "the file to be given up")
        assert daemon.terminate() == 0
    row = rows(studio / "journal.sqlite")[0]
    assert row["state"] == "failed" and row["attempts"] == 2 and "longer than 0.05 s" in row["error"]
    assert (hot / "slow.dng").exists()  # failed = "mark": left in place, with its report beside it
    assert "retries used up" in (hot / "slow.dng.failed.txt").read_text()
    assert [p for p in (studio / "out").rglob("*") if p.is_file()] == []


def test_workers_run_under_a_memory_limit() -> None:
    import subprocess
    import sys

    code = ("from hostplug.daemon.workers import limit_memory\nimport numpy\nlimit_memory(1024)\n"
            "try:\n    numpy.ones(2**31, dtype='uint8')\nexcept MemoryError:\n    print('refused')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "refused", result.stderr


def _ready(studio: Path) -> None:
    """Render one file first, so that the worker is warm before a test times anything."""
    drop(studio / "in", "first.dng")
    wait_for(lambda: states(studio / "journal.sqlite").get("first.dng") == "done", 90, "the first render")


def test_a_copy_that_pauses_is_never_failed_or_set_aside_while_it_is_being_written(studio: Path) -> None:
    hot = studio / "in"
    data = SAMPLE_DNG.read_bytes()
    half = len(data) // 2
    config = _config(studio, {"settle_seconds": 0.4}, outputs=OUTPUTS[:1])  # judged for good after 2 s quiet
    with WatchProcess("--config", config, cwd=studio) as daemon:
        _ready(studio)
        with (hot / "paused.dng").open("wb") as f:  # pauses of 1 s, over twice the settle time
            for i in range(4):
                f.write(data[i * len(data) // 4:(i + 1) * len(data) // 4])
                f.flush()
                time.sleep(1.0)
        wait_for(lambda: states(studio / "journal.sqlite").get("paused.dng") == "done", 60, "the paused copy")
        assert not (hot / "_failed").exists()
        assert any(e["path"].endswith("paused.dng") for e in events(studio / "log.jsonl", "unsettled"))

        with (hot / "stalled.dng").open("wb") as f:  # a copy that stalls for longer, then goes on
            f.write(data[:half])
            f.flush()
            wait_for(lambda: (hot / "_failed" / "stalled.dng.failed.txt").exists(), 30, "the stalled copy set aside")
            f.write(data[half:])  # into the file it has open, which is now in _failed/
        wait_for(lambda: states(studio / "journal.sqlite").get("stalled.dng") == "done", 60, "the resumed copy")
        assert daemon.terminate() == 0
    by_name = {Path(r["path"]).name: r for r in rows(studio / "journal.sqlite")}
    for name in ("paused.dng", "stalled.dng"):
        assert (hot / name).read_bytes() == data  # where it was dropped, whole
        assert by_name[name]["content_hash"] == hashlib.sha256(data).hexdigest()
    assert list((hot / "_failed").iterdir()) == []  # taken back, its stale report removed
    assert [e["path"] for e in events(studio / "log.jsonl", "taken_back")] == [str(hot / "stalled.dng")]
    assert _outputs(studio) == ["masters/first.tif", "masters/paused.tif", "masters/stalled.tif"]


def test_a_sidecar_that_comes_or_changes_after_its_raw_rendered_renders_it_again(studio: Path) -> None:
    from click.testing import CliRunner

    from hostplug.cli import main

    hot = studio / "in"
    master = studio / "out/masters/late.tif"
    with WatchProcess("--config", _config(studio, outputs=OUTPUTS[:1]), cwd=studio) as daemon:
        drop(hot, "late.dng")
        wait_for(lambda: states(studio / "journal.sqlite").get("late.dng") == "done", 90, "late.dng rendered")
        assert _recipe_of(master)["exposure"] == 0.0

        _, sidecar = _stage_with_sidecar(studio, "late.dng", exposure=1.0)
        shutil.move(sidecar, hot / sidecar.name)  # the sidecar arrives after its raw rendered
        wait_for(lambda: _recipe_of(master)["exposure"] == 1.0, 60, "a render with the late sidecar")

        edited = CliRunner().invoke(main, ["edit", str(hot / "late.dng"), "--exposure", "-1"])
        assert edited.exit_code == 0, edited.output
        wait_for(lambda: _recipe_of(master)["exposure"] == -1.0, 60, "a render after hostplug edit")

        os.utime(hot / "late.dng.xmp")  # touched, the same recipe: recognised, not rendered again
        wait_for(lambda: events(studio / "log.jsonl", "unchanged"), 60, "the touched sidecar to be looked at")
        assert daemon.terminate() == 0
    assert len(events(studio / "log.jsonl", "done")) == 3
    assert _outputs(studio) == ["masters/late.tif"]


def test_a_sidecar_that_comes_after_its_raw_was_archived_is_left_with_one_warning(studio: Path) -> None:
    hot, archive = studio / "in", studio / "archive"
    config = _config(studio, outputs=OUTPUTS[:1], originals="move", archive=str(archive))
    with WatchProcess("--config", config, cwd=studio) as daemon:
        drop(hot, "gone.dng")
        wait_for(lambda: (archive / "gone.dng").exists(), 90, "gone.dng rendered and archived")
        _, sidecar = _stage_with_sidecar(studio, "gone.dng", exposure=1.0)
        shutil.move(sidecar, hot / sidecar.name)
        late = wait_for(lambda: events(studio / "log.jsonl", "late_sidecar"), 30, "the late sidecar noticed")
        time.sleep(2.5)  # a rescan later: still said once
        assert daemon.terminate() == 0
    assert [e["path"] for e in events(studio / "log.jsonl", "late_sidecar")] == [str(hot / "gone.dng.xmp")]
    assert f"archived to {archive / 'gone.dng'}" in late[0]["message"]
    assert (hot / "gone.dng.xmp").exists() and not (archive / "gone.dng.xmp").exists()  # left where it came
    assert len(events(studio / "log.jsonl", "done")) == 1
    # its output finds the archived raw again without --search (a tester's every daemon output lost its way)
    from click.testing import CliRunner

    from hostplug.cli import main

    again = CliRunner().invoke(main, ["rerender", str(studio / "out/masters/gone.tif"), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["source"] == str((archive / "gone.dng").resolve())


SONY = SAMPLE_DNG.parents[2].parent / "shared" / "rawsamples" / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW"


def test_a_raw_replaced_while_it_renders_is_rendered_again_from_its_new_content(studio: Path) -> None:
    # the render of the old bytes came back labelled with the new file's hash, and the new file never rendered
    if not SONY.is_file():
        pytest.skip(f"{SONY} is absent (../shared/rawsamples; see its PROVENANCE.md)")
    hot = studio / "in"
    outputs = [{"folder": "out", "template": "{name}", "format": "tiff", "bits": 8}]
    with WatchProcess("--config", _config(studio, {"workers": 1}, outputs), cwd=studio) as daemon:
        drop(hot, "shot.ARW", SONY)  # 18 MP: seconds of rendering
        wait_for(lambda: events(studio / "log.jsonl", "rendering"), 60, "the first render")
        time.sleep(1.5)  # past the worker's own check at its start: it has read the Sony and renders it
        replaced = drop(hot, "shot.ARW", SAMPLE_DNG)  # another picture under the same name, mid-render
        new_hash = hashlib.sha256(replaced.read_bytes()).hexdigest()
        wait_for(lambda: [r for r in rows(studio / "journal.sqlite") if r["state"] == "done"
                          and r["rendered_hash"] == new_hash], 180, "the new file rendered")
        assert daemon.terminate() == 0
    # noticed as a replacement (a worker still at its start says the file changed, which ends the same way)
    assert events(studio / "log.jsonl", "replaced") or events(studio / "log.jsonl", "changed")
    from PIL import Image

    with Image.open(studio / "out" / "shot.tif") as image:
        assert image.size == (900, 600)  # the new picture's, not the Sony's 5184 x 3464


def test_a_file_renamed_while_queued_is_not_counted_as_failed(studio: Path) -> None:
    from hostplug.daemon.journal import Journal

    journal = Journal(studio / "journal.sqlite")
    entry = journal.enqueue(studio / "in" / "r1.dng", studio / "in", 10, 1, "ab" * 32)
    journal.forget(entry.id)  # what the daemon does with a file that went away before it rendered
    assert journal.counts()["failed"] == 0 and journal.lookup(studio / "in" / "r1.dng") is None
    journal.close()


# The daemon's journal connection on a disk that fills up as the first render starts, and stays full: every
# write from then on fails with SQLite's own error
_FULL_JOURNAL_DISK = '''
import sqlite3

class _FullDisk:
    full = False

    def __init__(self, db):
        object.__setattr__(self, "db", db)

    def __getattr__(self, name):
        return getattr(self.db, name)

    def __setattr__(self, name, value):
        setattr(self.db, name, value)

    def __enter__(self):
        return self.db.__enter__()

    def __exit__(self, *exc):
        return self.db.__exit__(*exc)

    def execute(self, sql, *args):
        if sql.startswith("UPDATE files SET state = 'rendering'"):
            _FullDisk.full = True
        if _FullDisk.full and not sql.lstrip().startswith("SELECT"):
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = sqlite3.SQLITE_FULL
            raise error
        return self.db.execute(sql, *args)

_connect = sqlite3.connect
sqlite3.connect = lambda *args, **kwargs: _FullDisk(_connect(*args, **kwargs))
from hostplug.cli import main
main()
'''


def test_a_full_journal_disk_stops_the_daemon_with_one_line_and_its_files_stay_queued(studio: Path) -> None:
    import subprocess
    import sys

    config = _config(studio)
    drop(studio / "in", "a.dng")
    stopped = subprocess.run([sys.executable, "-c", _FULL_JOURNAL_DISK, "watch", "--config", str(config)],
                             cwd=studio, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 7 and "Traceback" not in stopped.stderr
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("hostplug: error:")]
    assert len(errors) == 1 and str(studio / "journal.sqlite") in errors[0] and "disk is full" in errors[0]
    assert states(studio / "journal.sqlite") == {"a.dng": "queued"}
    with WatchProcess("--config", config, cwd=studio) as daemon:  # space freed
        wait_for(lambda: _done(studio, 1), 90, "a.dng rendered after the restart")
        assert daemon.terminate() == 0
    assert _outputs(studio) == _expected_outputs(["a"])


def test_a_hot_folder_renamed_and_made_again_stops_the_daemon_with_one_line(studio: Path) -> None:
    # the daemon went on with the old folder's journal, `queue` found none, and a second daemon could start on
    # the new folder and render its files again
    config = _config(studio)
    drop(studio / "in", "a.dng")
    with WatchProcess("--config", config, cwd=studio) as daemon:
        wait_for(lambda: _done(studio, 1), 90, "a.dng rendered")
        (studio / "in").rename(studio / "in.gone")
        (studio / "in").mkdir()
        assert daemon.process.wait(30) == 7
        errors = [line for line in daemon.output().splitlines() if line.startswith("hostplug: error:")]
        assert len(errors) == 1 and f"the hot folder {studio / 'in'} was moved" in errors[0], daemon.output()
        assert "Traceback" not in daemon.output()


def test_a_new_photo_under_the_name_of_an_archived_one_never_replaces_its_outputs(studio: Path) -> None:
    hot, archive = studio / "in", studio / "archive"
    outputs = [{"folder": "out", "template": "{name}", "format": "jpeg", "long_edge": 200}]
    config = _config(studio, outputs=outputs, originals="move", archive=str(archive))
    other = studio / "IMG_0001-card2.dng"  # another photo (other bytes) the camera also named canon1.dng
    other.write_bytes(SAMPLE_DNG.read_bytes() + b"\0" * 64)
    with WatchProcess("--config", config, cwd=studio) as daemon:
        drop(hot, "canon1.dng")
        wait_for(lambda: (archive / "canon1.dng").exists(), 90, "canon1.dng rendered and archived")
        first = (studio / "out" / "canon1.jpg").read_bytes()
        drop(hot, "canon1.dng", other)
        wait_for(lambda: (archive / "canon1-2.dng").exists(), 90, "the second canon1.dng rendered and archived")
        assert daemon.terminate() == 0
    assert _outputs(studio) == ["canon1-2.jpg", "canon1.jpg"]
    assert (studio / "out" / "canon1.jpg").read_bytes() == first  # the earlier photo's output, untouched
    assert (archive / "canon1-2.dng").read_bytes() == other.read_bytes()
    new = [e for e in events(studio / "log.jsonl", "queued") if e.get("new_photo")]
    assert len(new) == 1 and "new photo" in new[0]["message"]
    assert [e["outputs"] for e in events(studio / "log.jsonl", "done")] == [
        [str(studio / "out" / "canon1.jpg")], [str(studio / "out" / "canon1-2.jpg")]]


def test_a_daemon_killed_between_recording_a_move_and_making_it_finishes_it(studio: Path) -> None:
    """The journal records where a raw goes before it is moved. Recorded after, a kill between the two left an
    archived raw's row saying it was still in the hot folder (the next photo of its name then re-rendered over its
    outputs) and a failed raw's row saying it was rendering (then forgotten as gone). Here the state a kill leaves
    is made by putting the moved files back where they were, as if the moves had not happened."""
    hot, archive = studio / "in", studio / "archive"
    outputs = [{"folder": "out", "template": "{name}", "format": "jpeg", "long_edge": 200}]
    config = _config(studio, outputs=outputs, originals="move", archive=str(archive))
    with WatchProcess("--config", config, cwd=studio) as daemon:
        drop(hot, "canon1.dng")
        (hot / "bad.dng").write_text("not a raw")
        wait_for(lambda: (archive / "canon1.dng").exists() and (hot / "_failed" / "bad.dng").exists(), 90,
                 "canon1.dng archived and bad.dng set aside")
        assert daemon.terminate() == 0
    first = (studio / "out" / "canon1.jpg").read_bytes()
    os.replace(archive / "canon1.dng", hot / "canon1.dng")
    os.replace(hot / "_failed" / "bad.dng", hot / "bad.dng")
    (hot / "_failed" / "bad.dng.failed.txt").unlink()
    other = studio / "other.dng"
    other.write_bytes(SAMPLE_DNG.read_bytes() + b"\0" * 64)
    with WatchProcess("--config", config, cwd=studio) as daemon:
        wait_for(lambda: (archive / "canon1.dng").exists() and (hot / "_failed" / "bad.dng.failed.txt").exists(),
                 90, "both moves finished")
        drop(hot, "canon1.dng", other)  # another photo of the name: outputs of its own
        wait_for(lambda: (archive / "canon1-2.dng").exists(), 90, "the other photo rendered and archived")
        assert daemon.terminate() == 0
    assert (studio / "out" / "canon1.jpg").read_bytes() == first and (studio / "out" / "canon1-2.jpg").exists()
    assert states(studio / "journal.sqlite")["bad.dng"] == "failed" and not (hot / "bad.dng").exists()


def test_a_second_daemon_on_the_same_hot_folder_is_refused_whatever_its_journal(studio: Path) -> None:
    # with another journal it rendered every file a second time (or raced the first for them), and queue showed half
    config = _config(studio)
    with WatchProcess("--config", config, cwd=studio) as first:
        wait_for(lambda: events(studio / "log.jsonl", "start"), 60, "the first daemon to start")
        for journal in (studio / "journal.sqlite", studio / "other.sqlite"):
            second = subprocess.run([*COMMAND, "watch", "--config", str(config), "--journal", str(journal)],
                                    cwd=studio, capture_output=True, text=True, timeout=60)
            lines = [line for line in second.stderr.splitlines() if line.strip()]
            assert second.returncode == 7 and len(lines) == 1, second.stderr
            assert "another hostplug watch" in lines[0] and f"pid {first.pid}" in lines[0]
        newout = studio / "newout"
        second = subprocess.run([*COMMAND, "watch", str(studio / "in"), "--out", str(newout), "--journal",
                                 str(studio / "third.sqlite")], cwd=studio, capture_output=True, text=True, timeout=60)
        assert second.returncode == 7 and "another hostplug watch" in second.stderr, second.stderr
        assert first.terminate() == 0
    assert not (studio / "other.sqlite").exists()
    # a refused start leaves nothing behind: its output folder and a lock beside its journal were made before
    assert not newout.exists() and not list(studio.glob("third.sqlite*"))


def _source_sha(output: Path) -> str:
    """The content hash of the raw an output records it was rendered from."""
    register_namespace()
    with pyexiv2.Image(str(output)) as image:
        return image.read_xmp()[f"Xmp.{XMP_PREFIX}.sourceSHA256"]


def _photos(studio: Path, *extra: int) -> list[Path]:
    """Other photos (other bytes: the sample with ``extra`` bytes added) staged outside the hot folder."""
    photos = []
    for n in extra:
        photo = studio / f"photo-{n}.dng"
        photo.write_bytes(SAMPLE_DNG.read_bytes() + b"\0" * n)
        photos.append(photo)
    return photos


def _owners(studio: Path) -> dict[str, list[str]]:
    """Which photo (by content hash) each journal row's outputs belong to, checked against every output's own
    record of its source."""
    owners = {}
    for row in rows(studio / "journal.sqlite"):
        outputs = json.loads(row["outputs"])
        assert all(_source_sha(Path(o)) == row["content_hash"] for o in outputs), row
        owners[row["content_hash"]] = [Path(o).name for o in outputs]
    return owners


def test_a_raw_named_like_another_photos_numbered_output_gets_outputs_of_its_own(studio: Path) -> None:
    # the second canon1.dng took canon1-2.jpg; a raw that is itself called canon1-2.dng failed ("already the
    # output of") and went to _failed/, or, dropped with it, lost the name to the numbering
    hot, archive = studio / "in", studio / "archive"
    outputs = [{"folder": "out", "template": "{name}", "format": "jpeg", "long_edge": 200}]
    config = _config(studio, outputs=outputs, originals="move", archive=str(archive))
    second, named = _photos(studio, 64, 128)
    with WatchProcess("--config", config, cwd=studio) as daemon:
        drop(hot, "canon1.dng")
        wait_for(lambda: (archive / "canon1.dng").exists(), 90, "canon1.dng rendered and archived")
        drop(hot, "canon1.dng", second)
        wait_for(lambda: (archive / "canon1-2.dng").exists(), 90, "the second canon1.dng rendered and archived")
        drop(hot, "canon1-2.dng", named)
        wait_for(lambda: _done(studio, 3) and not (hot / "canon1-2.dng").exists(), 90, "canon1-2.dng handled")
        assert daemon.terminate() == 0
    assert not (hot / "_failed").exists()
    assert _outputs(studio) == ["canon1-2-2.jpg", "canon1-2.jpg", "canon1.jpg"]
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (SAMPLE_DNG, second, named)}
    assert _owners(studio) == {sha[SAMPLE_DNG]: ["canon1.jpg"], sha[second]: ["canon1-2.jpg"],
                               sha[named]: ["canon1-2-2.jpg"]}
    archived = {hashlib.sha256(p.read_bytes()).hexdigest() for p in archive.iterdir()}
    assert archived == set(sha.values())  # every original kept


def test_the_first_photo_dropped_again_after_a_numbered_one_is_recognised_as_itself(studio: Path) -> None:
    # photo A (canon1.dng) rendered and archived, then photo B under its name took canon1-2; A dropped again was
    # taken for a third photo and rendered to canon1-3.jpg. An identical re-drop is not rendered again.
    hot, archive = studio / "in", studio / "archive"
    outputs = [{"folder": "out", "template": "{name}", "format": "jpeg", "long_edge": 200}]
    config = _config(studio, outputs=outputs, originals="move", archive=str(archive))
    (second,) = _photos(studio, 64)
    with WatchProcess("--config", config, cwd=studio) as daemon:
        drop(hot, "canon1.dng")
        wait_for(lambda: (archive / "canon1.dng").exists(), 90, "canon1.dng rendered and archived")
        first = (studio / "out" / "canon1.jpg").stat().st_mtime_ns
        drop(hot, "canon1.dng", second)
        wait_for(lambda: (archive / "canon1-2.dng").exists(), 90, "the second canon1.dng rendered and archived")
        drop(hot, "canon1.dng")  # photo A again
        wait_for(lambda: _done(studio, 2) and not (hot / "canon1.dng").exists(), 90, "the re-drop handled")
        assert daemon.terminate() == 0
    assert _outputs(studio) == ["canon1-2.jpg", "canon1.jpg"]
    assert (studio / "out" / "canon1.jpg").stat().st_mtime_ns == first  # not rendered again
    unchanged = events(studio / "log.jsonl", "unchanged")
    assert len(unchanged) == 1 and unchanged[0]["path"] == str(hot / "canon1.dng")
    assert [e["outputs"] for e in events(studio / "log.jsonl", "done")] == [
        [str(studio / "out" / "canon1.jpg")], [str(studio / "out" / "canon1-2.jpg")]]
    assert sorted(os.listdir(archive)) == ["canon1-2.dng", "canon1.dng"]
    assert (archive / "canon1.dng").read_bytes() == SAMPLE_DNG.read_bytes()
    assert len(rows(studio / "journal.sqlite")) == 2  # still two photos, each with its own outputs
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (SAMPLE_DNG, second)}
    assert _owners(studio) == {sha[SAMPLE_DNG]: ["canon1.jpg"], sha[second]: ["canon1-2.jpg"]}


def test_queue_lists_the_outputs_each_raw_rendered_to(studio: Path) -> None:
    """`hostplug queue` answers "where did a.dng go?": each rendered raw with its outputs (relative in the text,
    absolute in --json) and where the raw itself went, and a failed one with its error."""
    from click.testing import CliRunner

    from hostplug.cli import main

    hot, archive = studio / "in", studio / "archive"
    drop(hot, "a.dng")
    drop(hot, "b.dng")
    (hot / "bad.dng").write_text("not an image at all")
    config = _config(studio, originals="move", archive=str(archive))
    with WatchProcess("--config", config, cwd=studio) as daemon:
        wait_for(lambda: _done(studio, 3), 90, "every file to be handled")
        assert daemon.terminate() == 0

    shown = json.loads(CliRunner().invoke(main, ["queue", "--config", str(config), "--json"]).stdout)
    assert sorted(Path(r["path"]).name for r in shown["done"]) == ["a.dng", "b.dng"]
    for record in shown["done"]:
        name = Path(record["path"]).stem
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in record["outputs"])
        assert sorted(str(Path(p).relative_to(studio / "out")) for p in record["outputs"]) == _expected_outputs([name])
        assert record["moved_to"] == str(archive / f"{name}.dng")
    assert [Path(e["path"]).name for e in shown["errors"]] == ["bad.dng"]

    text = CliRunner().invoke(main, ["queue", "--config", str(config)]).stdout
    assert f"last done (outputs under {studio / 'out'}):" in text, text
    listed = {line.split("  ")[2].split(" -> ")[0]: line.split(" -> ")[1].split(", ")
              for line in text.splitlines() if " -> " in line}
    assert sorted(listed) == ["a.dng", "b.dng"], text
    for name, outputs in listed.items():
        assert sorted(outputs) == _expected_outputs([name[:-len(".dng")]])
        assert all((studio / "out" / output).is_file() for output in outputs)
    assert "  bad.dng [failed]: " in text, text


def _refused_start(studio: Path, config: Path) -> list[str]:
    """Start a daemon that must be refused at once; returns its stderr lines (exit 7 checked)."""
    started = subprocess.run([*COMMAND, "watch", "--config", str(config)], cwd=studio, capture_output=True,
                             text=True, timeout=60)
    lines = [line for line in started.stderr.splitlines() if line.strip()]
    assert started.returncode == 7 and len(lines) == 1, started.stderr
    return lines


def test_a_daemon_on_a_folder_inside_or_holding_anothers_recursive_hot_folder_is_refused(studio: Path) -> None:
    # `watch in --recurse` and `watch in/sub` both rendered in/sub's files, each journal claimed them, and the
    # outer one archived a raw while the inner one rendered it
    hot, sub = studio / "in", studio / "in" / "sub"
    sub.mkdir()
    for name in ("outer", "inner", "flat"):  # each its own journal and log
        (studio / name).mkdir()
    outer = write_config(studio / "outer" / "c.toml", hot, [{"folder": str(studio / "outA")}], recurse=True)
    inner = write_config(studio / "inner" / "c.toml", sub, [{"folder": str(studio / "outB")}])
    flat = write_config(studio / "flat" / "c.toml", hot, [{"folder": str(studio / "outC")}])
    with WatchProcess("--config", outer, cwd=studio) as first:
        wait_for(lambda: events(studio / "outer" / "log.jsonl", "start"), 60, "the outer daemon to start")
        line = _refused_start(studio, inner)[0]
        assert f"{sub} is inside {hot}" in line and f"pid {first.pid}" in line
        assert first.terminate() == 0
    assert not (studio / "outB").exists()
    shutil.rmtree(hot / ".hostplug")  # the outer daemon's lock, left as a daemon leaves it
    outer = write_config(studio / "outer" / "c.toml", hot, [{"folder": str(studio / "outD")}], recurse=True)
    with WatchProcess("--config", inner, cwd=studio) as first:
        wait_for(lambda: events(studio / "inner" / "log.jsonl", "start"), 60, "the inner daemon to start")
        line = _refused_start(studio, outer)[0]
        assert f"{hot} holds {sub}" in line and f"pid {first.pid}" in line
        # nothing made: the refused start left its output folder and a .hostplug/ of locks in in/ (a tester's)
        assert not (studio / "outD").exists() and not (hot / ".hostplug").exists()
        with WatchProcess("--config", flat, cwd=studio) as beside:  # in/'s own files only: no file in common
            wait_for(lambda: events(studio / "flat" / "log.jsonl", "start"), 60, "the flat daemon to start")
            drop(sub, "a.dng")
            wait_for(lambda: states(studio / "inner" / "journal.sqlite").get("a.dng") == "done", 90, "a rendered")
            assert beside.terminate() == 0
        assert first.terminate() == 0
    assert states(studio / "flat" / "journal.sqlite") == {}


def test_an_output_folder_outage_keeps_raws_queued_without_using_attempts_and_says_so_once(studio: Path) -> None:
    # `rm -rf out; touch out` sent good raws to _failed/ after three retries of "[Errno 17] File exists", and a
    # removed output folder was made again without a word (a share not mounted: renders on the local disk)
    hot, archive, out = studio / "in", studio / "archive", studio / "nas" / "out"
    out.parent.mkdir()
    outputs = [{"folder": str(out), "template": "{name}", "format": "jpeg", "long_edge": 200}]
    config = _config(studio, {"max_attempts": 2}, outputs=outputs, originals="move", archive=str(archive))
    log = studio / "log.jsonl"
    with WatchProcess("--config", config, cwd=studio) as daemon:
        drop(hot, "a.dng")
        wait_for(lambda: (archive / "a.dng").exists(), 90, "a rendered and archived")
        shutil.rmtree(out)
        out.touch()
        drop(hot, "b.dng")
        drop(hot, "c.dng")
        wait_for(lambda: len([e for e in events(log, "no_output_folder") if e["path"].endswith("c.dng")]) >= 2,
                 60, "c tried twice while out is a file")
        assert daemon.process.poll() is None and not (hot / "_failed").exists()
        assert {r["attempts"] for r in rows(studio / "journal.sqlite") if r["state"] == "queued"} == {0}
        waits = events(log, "no_output_folder")
        assert [e["level"] for e in waits if e["level"] != "debug"] == ["warning"]  # once for the outage
        assert f"output folder {out} is not a folder" in waits[0]["message"]
        out.unlink()
        (studio / "nas").rmdir()  # the share is gone: its folder is not made on the local disk
        wait_for(lambda: any("so is" in e["message"] for e in events(log, "no_output_folder")), 60, "nas gone")
        assert not (studio / "nas").exists()
        (studio / "nas").mkdir()  # mounted again, its folder moved away: made again, with a warning
        wait_for(lambda: (archive / "b.dng").exists() and (archive / "c.dng").exists(), 90, "b and c rendered")
        assert daemon.terminate() == 0
    assert sorted(p.name for p in out.iterdir()) == ["b.jpg", "c.jpg"]  # (a.jpg went with the first out)
    remade = events(log, "output_folder_remade")
    assert len(remade) == 1 and remade[0]["level"] == "warning" and str(out) in remade[0]["message"]
    assert len(events(log, "output_folder_back")) == 1
    assert events(log, "retry") == [] and events(log, "failed") == []


@pytest.mark.skipif(shutil.which("chattr") is None or os.geteuid() != 0, reason="needs chattr as root")
def test_an_output_folder_that_refuses_writes_keeps_raws_queued_without_using_attempts(studio: Path) -> None:
    # a tester's NAS permission change (chattr +i here: root passes permissions) failed each raw in 15 s
    hot, out = studio / "in", studio / "out"
    config = _config(studio, {"max_attempts": 2}, outputs=[{"folder": str(out), "template": "{name}",
                                                            "format": "jpeg", "long_edge": 200}])
    log = studio / "log.jsonl"
    try:
        with WatchProcess("--config", config, cwd=studio) as daemon:
            wait_for(lambda: events(log, "start"), 60, "the daemon to start")  # (it refuses to start on such a one)
            if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
                pytest.skip("this file system has no immutable flag")
            drop(hot, "a.dng")
            drop(hot, "b.dng")
            wait_for(lambda: len(events(log, "no_output_folder")) >= 4, 90, "a and b tried twice each")
            assert daemon.process.poll() is None and not (hot / "_failed").exists()
            assert {r["attempts"] for r in rows(studio / "journal.sqlite")} == {0}
            waits = events(log, "no_output_folder")
            assert [e["level"] for e in waits if e["level"] != "debug"] == ["warning"]  # once for the outage
            assert f"output folder {out} cannot be written (Operation not permitted)" in waits[0]["message"]
            subprocess.run(["chattr", "-i", str(out)], check=True)
            wait_for(lambda: (out / "a.jpg").exists() and (out / "b.jpg").exists(), 90, "a and b rendered")
            assert daemon.terminate() == 0
    finally:
        subprocess.run(["chattr", "-i", str(out)], capture_output=True)
    assert events(log, "retry") == [] and events(log, "failed") == []
    assert len(events(log, "output_folder_back")) == 1
    # one immutable output in a folder that takes new files is that file's problem, retried and counted: the raw
    # waited for ever, as if the folder refused every write (a reviewer's)
    from hostplug.daemon.config import FolderConfig, OutputSpec
    from hostplug.daemon.job import _refused_folder

    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=out, template="{name}", format="jpeg"),))
    refused = OSError(1, "Operation not permitted", str(out / ".a.jpg.0123abcd.part"))
    assert _refused_folder(refused, folder) is None
    subprocess.run(["chattr", "+i", str(out)], check=True)
    try:
        assert _refused_folder(refused, folder) == (out, f"output folder {out} cannot be written (Operation not "
                                                         "permitted)")
    finally:
        subprocess.run(["chattr", "-i", str(out)], capture_output=True)


def test_hashing_a_large_file_does_not_stop_the_loop_nor_the_watchdog(studio: Path) -> None:
    # a 3.9 GB file stopped the WATCHDOG=1 pings for 14.7 s (systemd's WatchdogSec=60 is passed on a slow share)
    # and every other file with them
    import threading

    hot = studio / "in"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(studio / "notify"))
    systemd.settimeout(0.2)
    pings: list[float] = []
    listening = threading.Event()
    listening.set()

    def listen() -> None:
        while listening.is_set():
            with contextlib.suppress(TimeoutError):
                if systemd.recv(4096) == b"WATCHDOG=1":
                    pings.append(time.monotonic())

    listener = threading.Thread(target=listen)
    listener.start()
    env = {"NOTIFY_SOCKET": str(studio / "notify"), "WATCHDOG_USEC": "1000000"}  # a ping every 0.5 s
    try:
        with WatchProcess("--config", _config(studio), cwd=studio, env=env) as daemon:
            wait_for(lambda: len(pings) >= 2, 60, "the daemon's first pings")
            big = hot / ".big.dng"
            with big.open("wb") as f:
                f.truncate(39 * 2**30 // 10)  # 3.9 GiB (under MAX_RAW_BYTES), sparse: seconds to read, no disk spent
            os.replace(big, hot / "big.dng")
            drop(hot, "a.dng")  # at once: it settles with big, and goes on while big is hashed
            wait_for(lambda: len(events(studio / "log.jsonl", "queued")) == 2, 120, "both files queued")
            running = list(pings)  # (stopping is not timed here)
            assert daemon.terminate() == 0
    finally:
        listening.clear()
        listener.join()
        systemd.close()
    queued = [Path(e["path"]).name for e in events(studio / "log.jsonl", "queued")]
    assert queued == ["a.dng", "big.dng"]  # a went on while big was hashed
    gaps = [later - earlier for earlier, later in zip(running, running[1:], strict=False)]
    assert max(gaps) < 1.5, gaps


def test_a_second_ctrl_c_abandons_running_renders_and_exits_128_plus_the_signal(studio: Path) -> None:
    # it exited 0 after abandoning the render ("it stays queued"), as if the stop had been clean
    slow = {"stages": {"denoise": {"implementation": "learned"}}}  # outlasts the signals (the worker imports torch)
    with WatchProcess("--config", _config(studio, {"grace_seconds": 600}, recipe=slow), cwd=studio) as daemon:
        drop(studio / "in", "a.dng")
        wait_for(lambda: states(studio / "journal.sqlite").get("a.dng") == "rendering", 60, "a rendering")
        daemon.process.send_signal(signal.SIGINT)
        wait_for(lambda: events(studio / "log.jsonl", "stopping"), 30, "the first Ctrl-C taken")
        daemon.process.send_signal(signal.SIGINT)
        assert daemon.process.wait(60) == 128 + signal.SIGINT
    assert states(studio / "journal.sqlite") == {"a.dng": "queued"} and events(studio / "log.jsonl", "abandoned")


def test_a_name_clash_fails_at_once_as_the_outputs_fault_with_advice_that_can_help(studio: Path) -> None:
    # "IMG 0005.dng" then "IMG_0005.dng": the second was held back as "may still be being copied", advised {dir}
    # (the same for both), its report said "permanent (the file itself)", and the log's bare `queue --retry`
    # found no journal
    hot = studio / "in"
    outputs = [{"folder": "out", "template": "{name}", "format": "jpeg", "long_edge": 200}]
    with WatchProcess("--config", _config(studio, {"settle_seconds": 1.0}, outputs=outputs), cwd=studio) as daemon:
        drop(hot, "IMG 0005.dng")
        wait_for(lambda: states(studio / "journal.sqlite").get("IMG 0005.dng") == "done", 90, "the first rendered")
        drop(hot, "IMG_0005.dng")
        wait_for(lambda: (hot / "_failed" / "IMG_0005.dng.failed.txt").exists(), 90, "the second set aside")
        assert daemon.terminate() == 0
    assert events(studio / "log.jsonl", "unsettled") == []  # a clash is no partial copy
    failed = events(studio / "log.jsonl", "failed")[0]
    assert failed["kind"] == "outputs" and "{dir}" not in failed["message"]
    assert "put {seq} in the template, or rename one of the two raws" in failed["message"]
    assert f"hostplug queue --retry --journal {studio / 'journal.sqlite'}" in failed["message"]
    report = (hot / "_failed" / "IMG_0005.dng.failed.txt").read_text()
    assert "kind:     its outputs (the raw is fine" in report


@contextlib.contextmanager
def _held_lock(folder: Path, note: str) -> Iterator[None]:
    """Another daemon's lock on ``folder``, with ``note`` in it (a flock of another open file, in this process)."""
    from hostplug.daemon.daemon import FOLDER_LOCK

    (folder / FOLDER_LOCK).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / FOLDER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, note.encode())
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _hot(path: Path, **fields: Any) -> Any:
    from hostplug.daemon.config import FolderConfig

    return FolderConfig(path=path, outputs=(), **fields)


def test_an_older_daemon_s_lock_note_never_refuses_a_folder_below_it(tmp_path: Path) -> None:
    # its one-line note, without a recurse flag, was taken for a recursive daemon's: `watch p/q` was refused
    # (systemd restarted it in a loop), saying falsely that p was watched with its sub-folders
    from hostplug.daemon.daemon import check_not_nested

    (tmp_path / "p" / "q").mkdir(parents=True)
    with _held_lock(tmp_path / "p", "pid 12 on old, journal /j.sqlite\n"):
        check_not_nested([_hot(tmp_path / "p" / "q")])
    with _held_lock(tmp_path / "p", "pid 12 on new, journal /j.sqlite, recurse = true\n"), \
            pytest.raises(TakenError, match=r"inside .*\(pid 12 on new, journal /j.sqlite\) watches with its sub"):
        check_not_nested([_hot(tmp_path / "p" / "q")])


def test_the_lock_note_is_one_line_with_its_recurse_flag_and_archive(tmp_path: Path) -> None:
    # an older daemon prints a note whole in its one-line refusal: the second line broke it in two
    from hostplug.daemon.daemon import FOLDER_LOCK, lock_folder

    (tmp_path / "in").mkdir()
    fd = lock_folder(tmp_path / "in", tmp_path / "j.sqlite", recurse=False, archive=tmp_path / "in" / "done")
    assert fd is not None
    try:
        note = (tmp_path / "in" / FOLDER_LOCK).read_text()
    finally:
        os.close(fd)
    assert note.count("\n") == 1 and note.rstrip().endswith(f", recurse = false, archive {tmp_path / 'in' / 'done'}")


def test_a_recursive_daemon_s_archive_is_no_nested_hot_folder(tmp_path: Path) -> None:
    # the scan never enters a folder's archive, but the nested-folder check did: B recursive on in/ with its
    # archive in/done was refused while C watched in/done, and C refused while B ran
    from hostplug.daemon.daemon import check_not_nested

    hot, done = tmp_path / "in", tmp_path / "in" / "done"
    done.mkdir(parents=True)
    with _held_lock(done, "pid 3 on c, journal /c.sqlite, recurse = false\n"):
        check_not_nested([_hot(hot, recurse=True, archive=done)])
        with pytest.raises(TakenError, match="holds"):
            check_not_nested([_hot(hot, recurse=True)])
    with _held_lock(hot, f"pid 2 on b, journal /b.sqlite, recurse = true, archive {done}\n"):
        check_not_nested([_hot(done)])


def test_a_folder_lock_an_instant_held_by_a_starting_neighbour_s_probe_is_taken(tmp_path: Path) -> None:
    # another daemon's start-up probe takes each lock for an instant: a neighbour restarting then was refused
    import threading

    from hostplug.daemon.daemon import FOLDER_LOCK, lock_folder

    (tmp_path / "in" / FOLDER_LOCK).parent.mkdir(parents=True)
    probe = os.open(tmp_path / "in" / FOLDER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(probe, fcntl.LOCK_EX)
    threading.Timer(0.03, os.close, (probe,)).start()
    fd = lock_folder(tmp_path / "in", tmp_path / "j.sqlite")
    assert fd is not None
    os.close(fd)


def _daemon_in(tmp_path: Path) -> Any:
    """A Daemon on ``tmp_path/in`` (not started: its loop's steps are called one by one) with its journal open."""
    from hostplug.daemon.config import parse_config
    from hostplug.daemon.daemon import Daemon
    from hostplug.daemon.journal import Journal

    (tmp_path / "in").mkdir(exist_ok=True)
    config = parse_config({"daemon": {"journal": str(tmp_path / "j.sqlite")},
                           "folder": [{"path": "in", "output": [{"folder": "out"}]}]}, tmp_path)
    daemon = Daemon(config)
    daemon.journal = Journal(config.journal)
    return daemon


def test_an_unreadable_file_is_said_once_and_left_to_the_rescan(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    # a failed hash asked the scanner to look again: the file was hashed every settle_seconds, for ever, silently
    from hostplug.daemon.hashing import Hashed

    daemon = _daemon_in(tmp_path)
    raw = drop(tmp_path / "in", "a.dng")
    looked_again: list[Path] = []
    daemon.scanner.recheck = looked_again.append
    for _ in range(2):
        daemon.hasher.finished = lambda: [Hashed(raw, raw.stat(), None, "Input/output error")]
        with caplog.at_level(logging.DEBUG, logger="hostplug.watch"):
            daemon._take_hashes()
    assert looked_again == []
    said = [r for r in caplog.records if getattr(r, "event", "") == "unreadable"]
    assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG]
    assert "Input/output error" in said[0].getMessage()
    os.utime(raw, ns=(1, 1))  # changed while it was hashed: it settles again
    daemon.hasher.finished = lambda: [Hashed(raw, os.stat_result((0,) * 10), None, "Input/output error")]
    daemon._take_hashes()
    assert looked_again == [raw]
    daemon.journal.close()


def test_files_being_hashed_are_counted_and_listed_as_arriving(tmp_path: Path) -> None:
    # a large file being hashed was in no list: not settling, not queued, and `hostplug queue` did not name it
    from concurrent.futures import Future

    daemon = _daemon_in(tmp_path)
    raw = drop(tmp_path / "in", "big.dng")
    daemon.hasher.pending[raw] = (raw.stat(), Future())
    shown: list[str] = []
    daemon.status.show = shown.append
    daemon.watchdog_every, daemon.next_progress, daemon.progress_logged = 0.0, 0.0, -1
    daemon._heartbeat()
    assert "settling 0  hashing 1" in shown[-1]
    assert daemon.journal.settling()["paths"] == [str(raw)]
    daemon.hasher.pending.clear()
    daemon.journal.close()
