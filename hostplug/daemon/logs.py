"""The daemon's logs: readable lines on stderr, one JSON object a line in a file, and a status line on a TTY.

Log calls may carry structured fields with ``extra={"event": "done", "fields": {...}}``; the JSON log keeps
them as keys, the readable log shows only the message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from engine.errors import HostplugError
from hostplug.printable import PrintableFormatter

LOGGER = "hostplug.watch"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, event, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created)),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def fatal_fields(error: Exception) -> dict[str, Any]:
    """The fields of the ``fatal`` event for what stopped the daemon: the error (one not hostplug's named as
    unexpected) and the exit status the command gives."""
    said = str(error) if isinstance(error, HostplugError) else f"an unexpected error ({type(error).__name__}: {error})"
    return {"error": said, "exit_code": getattr(error, "exit_code", 1)}


def log_fatal_before_start(json_path: Path | None, error: Exception) -> None:
    """Append the ``fatal`` event for ``error`` to the JSON log when the daemon stops before its logging was set
    up (a start-up check failed): a monitor tailing the log saw nothing at all. Only into a regular file or a new
    one, never waiting on a FIFO; a log that cannot be written is passed over (the command's error line stands)."""
    if json_path is None:
        return
    fields = fatal_fields(error)
    record = logging.LogRecord(LOGGER, logging.ERROR, "", 0, f"refused to start: {fields['error']}", None, None)
    record.event = "fatal"  # type: ignore[attr-defined]
    record.fields = fields  # type: ignore[attr-defined]
    try:
        descriptor = os.open(json_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.write(descriptor, (JsonFormatter().format(record) + "\n").encode())
    except OSError:
        pass
    finally:
        os.close(descriptor)


class StatusLine:
    """A single self-overwriting line at the bottom of a terminal (nothing when the stream is not a TTY)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.text = ""

    def show(self, text: str) -> None:
        """Replace the status line."""
        if self.enabled:
            self.text = text
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()

    def clear(self) -> None:
        """Remove it (before a log line is printed)."""
        if self.enabled and self.text:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def redraw(self) -> None:
        """Put it back after a log line."""
        if self.enabled and self.text:
            self.stream.write(self.text)
            self.stream.flush()


class _TerminalHandler(logging.StreamHandler):
    """stderr lines that keep out of the status line's way."""

    def __init__(self, status: StatusLine) -> None:
        super().__init__(status.stream)
        self.status = status

    def emit(self, record: logging.LogRecord) -> None:
        self.status.clear()
        super().emit(record)
        self.status.redraw()


class _JsonFileHandler(logging.FileHandler):
    """The JSON log file; when writing it fails (disk full, file system gone), one warning on stderr and the
    file is no longer written, instead of a traceback for every record."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        logger = logging.getLogger(LOGGER)
        logger.removeHandler(self)
        error = sys.exc_info()[1]
        with contextlib.suppress(Exception):
            self.close()
        reason = getattr(error, "strerror", None) or error
        logger.warning("cannot write the JSON log %s (%s); it is no longer written", self.baseFilename, reason,
                       extra={"event": "log_file_failed"})


def setup_logging(json_path: Path | None, status: StatusLine, level: int = logging.INFO) -> logging.Logger:
    """Configure the daemon's logger: readable on stderr from ``level`` up, and every record as JSON lines in
    ``json_path`` when given."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    terminal = _TerminalHandler(status)
    terminal.setLevel(level)
    # what stopped the daemon: the command prints it as its error line, so on the terminal it would stand twice
    terminal.addFilter(lambda record: getattr(record, "event", None) != "fatal")
    terminal.setFormatter(PrintableFormatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    logger.addHandler(terminal)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = _JsonFileHandler(json_path, encoding="utf-8")
        file_handler.setFormatter(JsonFormatter())
        logger.addHandler(file_handler)
    return logger


def close_logging() -> None:
    """Flush and close the daemon's handlers."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
