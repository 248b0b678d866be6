"""Hostile configuration and hot-folder contents for ``hostplug watch`` (issue 13, item 8).

Each bad configuration is refused before anything runs: a non-zero exit, exactly one ``hostplug: error:`` line,
no traceback, no hang (a FIFO as ``--config``), nothing created. The hot-folder cases run the scanner and the
daemon's pieces in process: a link out of the hot folder is never handed on (one log line), a zero-byte file
settles and is reported as failed, ``..dng`` is a raw like any other, and a 255-byte name's report is written
under a shortened name.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostplug.daemon.config import FolderConfig, OutputSpec
from hostplug.daemon.scanner import Scanner, is_temporary
from tests.hostile_inputs import SAMPLE_DNG as SAMPLE

REPO = Path(__file__).resolve().parents[1]
HEAD = '[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "out"\n'


def run_watch(*args: object, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``hostplug watch ARGS`` as a process in ``cwd``, running this checkout's code (not an installed copy)."""
    command = [sys.executable, "-c", "from hostplug.cli import main; main()", "watch", *(str(a) for a in args)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def assert_one_line(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("hostplug: error: "), lines[0]
    assert words.lower() in lines[0].lower(), (words, lines[0])


def daemon(**keys: str) -> str:
    return "[daemon]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


# (name, config bytes, words the error line holds)
BAD_CONFIGS: list[tuple[str, bytes, str]] = [
    ("workers-100000", (daemon(workers="100000") + HEAD).encode(), "'workers' = 100000 is too large"),
    ("settle-nan", (daemon(settle_seconds="nan") + HEAD).encode(), "'settle_seconds' must be a finite number"),
    ("render-timeout-nan", (daemon(render_timeout="nan") + HEAD).encode(), "'render_timeout' must be a finite"),
    ("grace-inf", (daemon(grace_seconds="inf") + HEAD).encode(), "'grace_seconds' must be a finite number"),
    ("retry-huge", (daemon(retry_seconds="1e300") + HEAD).encode(), "'retry_seconds' = 1e+300 is too large"),
    ("memory-huge", (daemon(memory_limit_mb="99999999999") + HEAD).encode(), "'memory_limit_mb' = 99999999999 is "
     "too large (at most 16777216)"),  # a tester's read 'at most 1.67772e+07'
    ("threads-huge", (daemon(threads_per_worker="99999999") + HEAD).encode(), "'threads_per_worker'"),
    ("seq-padding", (HEAD + 'template = "{seq:>99999999}"\n').encode(), "{seq:>99999999} is not allowed"),
    ("seq-char", (HEAD + 'template = "{seq:c}"\n').encode(), "{seq:c} is not allowed"),
    ("seq-wide", (HEAD + 'template = "{seq:020d}"\n').encode(), "at most 12 wide"),
    ("template-control", (HEAD + 'template = "a\\u0007{name}"\n').encode(), "control character"),
    ("invalid-utf8", HEAD.encode() + b'# caf\xe9\n', "not UTF-8"),
    ("deep-arrays", b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n" + HEAD.encode(), "nested far too deep"),
    ("deep-tables", b"x = " + b"{a = " * 100_000 + b"1" + b"}" * 100_000 + b"\n" + HEAD.encode(),
     "nested far too deep"),
    ("nul-path", b'[[folder]]\npath = "in\\u0000x"\n[[folder.output]]\nfolder = "out"\n', "NUL"),
    ("nul-output", b'[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o\\u0000"\n', "NUL"),
    ("recipe-stages-text", (HEAD.replace('path = "in"\n', 'path = "in"\nrecipe = { stages = "x" }\n')).encode(),
     "'stages' must be an object"),
    ("recipe-implementation-list", HEAD.replace('path = "in"\n', 'path = "in"\nrecipe = { stages = { demosaic = '
                                                '{ implementation = ["a"], params = { algorithm = "ahd" } } } }\n'
                                                ).encode(), "'implementation' must be a name"),
    ("recipe-version", (HEAD.replace('path = "in"\n', 'path = "in"\nrecipe = { version = 7, exposure = 0.3 }\n')
                        ).encode(), "recipe 'version'"),
    ("log-dev-full", (daemon(log_json='"/dev/full"') + HEAD).encode(), "/dev/full is not a regular file"),
]


@pytest.mark.parametrize(("name", "text", "words"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_one_line(tmp_path: Path, name: str, text: bytes, words: str) -> None:
    (tmp_path / "in").mkdir()
    config = tmp_path / "studio.toml"
    config.write_bytes(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_watch("--config", config, cwd=tmp_path)
    assert_one_line(result, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was created"
    assert not (tmp_path / "in" / ".hostplug").exists()


@pytest.mark.parametrize("kind", ["fifo", "link-to-fifo", "dev-zero", "huge", "folder"])
def test_config_that_is_not_a_small_regular_file_is_one_line(tmp_path: Path, kind: str) -> None:
    config = tmp_path / "studio.toml"
    if kind == "folder":
        config.mkdir()
    elif kind == "fifo":
        os.mkfifo(config)
    elif kind == "link-to-fifo":
        os.mkfifo(tmp_path / "pipe")
        config.symlink_to(tmp_path / "pipe")
    elif kind == "dev-zero":
        config.symlink_to("/dev/zero")
    else:
        config.write_bytes(b"# " + b"x" * (2 << 20) + b"\n" + HEAD.encode())
    words = {"fifo": "is a FIFO", "link-to-fifo": "is a FIFO", "dev-zero": "character device",
             "huge": "far too large", "folder": "the configuration is a folder, not a regular file"}[kind]
    assert_one_line(run_watch("--config", config, cwd=tmp_path, timeout=30), words)


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--workers", "100000", "'workers' = 100000 is too large"),
    ("--workers", str(4 * len(os.sched_getaffinity(0)) + 1), "4 per CPU core, and this machine has"),
    ("--journal", ".", "cannot open the journal"),
    ("--log-json", ".", "is not writable"),
    ("--settle", "nan", "Invalid value for '--settle': 'nan' is not a finite number"),
    ("--settle", "inf", "Invalid value for '--settle': 'inf' is not a finite number"),
])
def test_command_line_numbers_are_checked_too(tmp_path: Path, option: str, value: str, words: str) -> None:
    (tmp_path / "in").mkdir()
    result = run_watch(tmp_path / "in", "--out", tmp_path / "out", option, value, cwd=tmp_path)
    assert_one_line(result, words)


def test_json_log_that_fails_later_warns_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A log file that stops taking writes (disk full) gives one warning, then is no longer written."""
    from hostplug.daemon.logs import StatusLine, close_logging, setup_logging

    logger = setup_logging(tmp_path / "log.jsonl", StatusLine())
    try:
        handler = next(h for h in logger.handlers if isinstance(h, logging.FileHandler))
        handler.stream.close()
        handler.stream = open("/dev/full", "w")  # noqa: SIM115 (the handler closes it)
        for i in range(20):
            logger.info("line %d", i)
    finally:
        close_logging()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err, err
    assert err.count("cannot write the JSON log") == 1, err


# -- the hot folder ----------------------------------------------------------------------------------------------


def _scanner(hot: Path, out: Path) -> Scanner:
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=out),))
    return Scanner((folder,), settle_seconds=0.1, rescan_seconds=60, poll_seconds=0.1, watcher="polling")


def _poll(scanner: Scanner, seconds: float) -> list[Path]:
    scanner.start()
    ready: list[Path] = []

    def wanted(path: Path, st: os.stat_result) -> bool:
        return path not in ready

    for step in range(int(seconds / 0.05) + 1):
        ready += scanner.poll(wanted, now=step * 0.05)
    return ready


def _poll_logged(scanner: Scanner, seconds: float, caplog: pytest.LogCaptureFixture) -> list[Path]:
    """:func:`_poll`, with the daemon's log records in ``caplog``: its logger may not propagate (setup_logging
    turns that off), so they come through this handler alone, once each whichever tests ran before."""
    logger = logging.getLogger("hostplug.watch")
    logger.addHandler(caplog.handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        return _poll(scanner, seconds)
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = propagate


def test_links_out_of_the_hot_folder_and_fifos_are_refused_with_a_log_line(tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    hot, outside = tmp_path / "in", tmp_path / "private"
    hot.mkdir()
    outside.mkdir()
    (outside / "secret.dng").write_bytes(b"raw" * 100)
    (hot / "escape.dng").symlink_to(outside / "secret.dng")
    (hot / "etc.dng").symlink_to("/etc/passwd")
    os.mkfifo(hot / "pipe.dng")
    (hot / "good.dng").write_bytes(b"raw" * 100)
    ready = _poll_logged(_scanner(hot, tmp_path / "out"), 1.0, caplog)
    assert ready == [hot / "good.dng"]
    refused = [r.getMessage() for r in caplog.records if getattr(r, "event", "") == "refused"]
    assert len(refused) == 3, refused  # once each, not once a poll
    assert any("escape.dng: a link to" in m and "outside the hot folder" in m for m in refused), refused
    assert any("pipe.dng: not a regular file" in m for m in refused), refused


def test_a_name_that_is_no_utf8_is_left_in_place_with_a_log_line(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    # such a name (an old card, an SMB share, a zip file) crashed the daemon in the journal, at every restart
    hot = tmp_path / "in"
    hot.mkdir()
    odd = Path(os.fsdecode(bytes(hot) + b"/DSC\xe9001.dng"))
    odd.write_bytes(b"raw" * 100)
    (hot / "good.dng").write_bytes(b"raw" * 100)
    ready = _poll_logged(_scanner(hot, tmp_path / "out"), 1.0, caplog)
    assert ready == [hot / "good.dng"] and odd.exists()
    refused = [r.getMessage() for r in caplog.records if getattr(r, "event", "") == "refused"]
    assert len(refused) == 1 and "its name is not UTF-8 text" in refused[0] and "rename it" in refused[0], refused


def test_zero_byte_file_settles_and_dot_names_are_raws(tmp_path: Path) -> None:
    hot = tmp_path / "in"
    hot.mkdir()
    (hot / "empty.dng").write_bytes(b"")
    (hot / "..dng").write_bytes(b"raw" * 100)
    (hot / "....DNG").write_bytes(b"raw" * 100)
    ready = _poll(_scanner(hot, tmp_path / "out"), 2.0)
    assert sorted(p.name for p in ready) == ["....DNG", "..dng", "empty.dng"]
    assert is_temporary(".IMG_0001.dng.a1b2c3") and is_temporary(".hidden.dng") and not is_temporary("..dng")


def test_empty_file_is_reported_as_failed(tmp_path: Path) -> None:
    from engine.recipe import Recipe
    from hostplug.daemon.job import Job, run_job

    hot = tmp_path / "in"
    hot.mkdir()
    empty = hot / "empty.dng"
    empty.write_bytes(b"")
    st = empty.stat()
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=tmp_path / "out"),))
    job = Job(id=1, path=empty, folder=hot, size=0, mtime_ns=st.st_mtime_ns, content_hash="")
    outcome = run_job(job, folder, Recipe(), journal=None)  # type: ignore[arg-type]  # never reached
    assert outcome.kind == "failed" and "empty file" in outcome.message


def test_report_of_a_255_byte_name_is_written_under_a_shortened_name(tmp_path: Path) -> None:
    from hostplug.daemon.originals import report_path, restore, set_aside

    hot = tmp_path / "in"
    hot.mkdir()
    raw = hot / ("é" * 100 + "b" * 51 + ".dng")  # 255 bytes
    assert len(os.fsencode(raw.name)) == 255
    raw.write_bytes(b"raw")
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=tmp_path / "out"),))
    moved = set_aside(raw, folder, "report text")
    report = report_path(moved)
    assert report.read_text() == "report text" and len(os.fsencode(report.name)) <= 255
    assert report.name.endswith(".failed.txt") and report.parent == hot / "_failed"
    assert report_path(hot / ("x" * 250 + ".dng")) != report_path(hot / ("x" * 250 + ".nef"))
    assert restore(raw, moved) and raw.exists() and not report.exists()
    for odd in (0, 1):  # the cut falls between characters, never inside one (which left no UTF-8 name)
        name = report_path(hot / ("b" * odd + "é" * 125 + ".dng")).name
        assert len(os.fsencode(name)) <= 255 and os.fsencode(name).decode("utf-8") == name


def test_folder_recipe_with_bad_stage_settings_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    config = tmp_path / "studio.toml"
    config.write_text(HEAD.replace('path = "in"\n', 'path = "in"\n'
                                   'recipe = { stages = { denoise = { params = { strength = 1e308 } } } }\n'))
    assert_one_line(run_watch("--config", config, cwd=tmp_path), "'strength' = 1e+308 is out of range")


def test_a_file_replaced_by_a_link_out_after_the_scan_is_not_rendered(tmp_path: Path) -> None:
    from engine.recipe import Recipe
    from hostplug.daemon.job import Job, run_job

    hot, outside = tmp_path / "in", tmp_path / "private"
    hot.mkdir()
    outside.mkdir()
    (outside / "secret.dng").write_bytes(SAMPLE.read_bytes())
    link = hot / "IMG_0001.dng"
    link.symlink_to(outside / "secret.dng")
    st = link.stat()
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=tmp_path / "out"),))
    job = Job(id=1, path=link, folder=hot, size=st.st_size, mtime_ns=st.st_mtime_ns, content_hash="")
    outcome = run_job(job, folder, Recipe(), journal=None)  # type: ignore[arg-type]  # never reached
    assert outcome.kind == "failed" and "outside the hot folder" in outcome.message
    assert not (tmp_path / "out").exists()
