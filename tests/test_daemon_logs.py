"""The daemon's logs: a file name can neither break nor fake a line of the readable log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostplug.daemon.logs import StatusLine, close_logging, setup_logging
from hostplug.printable import printable


def test_control_characters_in_a_name_are_escaped_in_the_readable_log_and_kept_in_the_json_log(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "/in/evil\n12:00:00 ERROR   fake.dng\x1b[2J\u202egpj.dng\u2028x"
    logger = setup_logging(tmp_path / "log.jsonl", StatusLine())
    try:
        logger.info("queued %s", name, extra={"event": "queued", "fields": {"path": name}})
    finally:
        close_logging()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err  # one line, no terminal escape
    assert err.rstrip("\n").endswith("queued /in/evil\\n12:00:00 ERROR   fake.dng\\x1b[2J\\u202egpj.dng\\u2028x")
    record = json.loads((tmp_path / "log.jsonl").read_text())
    assert record["message"] == f"queued {name}" and record["path"] == name  # JSON escapes by itself


def test_other_names_are_shown_as_they_are() -> None:
    for text in ("東京.dng", "Ärger über.CR2", "هذا.dng", "a\\b.dng"):
        assert printable(text) == text


def test_a_line_that_names_the_file_does_not_repeat_the_path_the_engines_message_starts_with() -> None:
    # it read "failed /in/a.dng: /in/a.dng: the file is truncated"
    from hostplug.daemon.daemon import _about

    path = Path("/in/a b.dng")
    assert _about(f"{path}: the file is truncated", path) == "the file is truncated"
    assert _about("the output disk is full", path) == "the output disk is full"


def test_a_traceback_follows_on_escaped_indented_lines() -> None:
    # a reviewer's: the service logged its traceback inside the message, which the escaping made one line; as
    # exc_info it follows on lines of its own, each indented, and a file name in it cannot fake a log line
    import logging

    from hostplug.printable import PrintableFormatter

    try:
        raise ValueError("bad\nrender done: fake.dng")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "render failed", None, __import__("sys").exc_info())
    lines = PrintableFormatter("%(message)s").format(record).splitlines()
    assert lines[0] == "render failed" and len(lines) > 2
    assert all(line.startswith("    ") for line in lines[1:]) and "Traceback" in lines[1]
    assert any("bad\\nrender done: fake.dng" in line for line in lines)
