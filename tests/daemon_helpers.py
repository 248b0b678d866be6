"""Helpers for the watch-daemon tests: hot folders, configurations, and a daemon run as a real process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DNG = REPO / "engine" / "samples" / "hostplug_colorchecker.dng"  # 900 x 600, bundled
GOPRO = REPO.parent / "shared" / "rawsamples" / "unsupported" / "gopro_hero6__gpr_GOPR0024.GPR"
COMMAND = [sys.executable, "-c", "from hostplug.cli import main; main()"]


def drop(folder: Path, name: str, source: Path = SAMPLE_DNG) -> Path:
    """Copy ``source`` into ``folder`` as ``name`` the way careful tools do: a hidden temporary, then a rename."""
    temporary = folder / f".{name}.tmp"
    shutil.copyfile(source, temporary)
    target = folder / name
    os.replace(temporary, target)
    return target


def toml_value(value: Any) -> str:
    """A Python value as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def write_config(path: Path, hot: Path, outputs: list[dict[str, Any]], daemon: dict[str, Any] | None = None,
                 **folder: Any) -> Path:
    """A one-folder configuration file with fast test timings."""
    settings = {"settle_seconds": 0.4, "poll_seconds": 0.3, "rescan_seconds": 2, "retry_seconds": 0.2,
                "progress_seconds": 1, "warm_up": False, "journal": str(path.parent / "journal.sqlite"),
                "log_json": str(path.parent / "log.jsonl"), **(daemon or {})}
    lines = ["[daemon]", *(f"{k} = {toml_value(v)}" for k, v in settings.items()), "",
             "[[folder]]", f"path = {toml_value(hot)}", *(f"{k} = {toml_value(v)}" for k, v in folder.items())]
    for output in outputs:
        lines += ["", "[[folder.output]]", *(f"{k} = {toml_value(v)}" for k, v in output.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def rows(journal: Path) -> list[dict[str, Any]]:
    """Every row of a journal, read directly with sqlite3."""
    if not journal.exists():
        return []
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10) as db:
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute("SELECT * FROM files ORDER BY id")]
        except sqlite3.OperationalError:
            return []


def states(journal: Path) -> dict[str, str]:
    """File name -> state."""
    return {Path(r["path"]).name: r["state"] for r in rows(journal)}


def events(log: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The JSON log's records (of one event kind)."""
    if not log.exists():
        return []
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in records if kind is None or r.get("event") == kind]


class WatchProcess:
    """``hostplug watch`` running as a real process, with its stderr in a file."""

    def __init__(self, *args: object, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.stderr_path = cwd / f"watch-{time.monotonic_ns()}.err"
        self.stderr = self.stderr_path.open("w")
        self.process = subprocess.Popen([*COMMAND, "watch", *(str(a) for a in args)], cwd=cwd,
                                        stdout=subprocess.DEVNULL, stderr=self.stderr,
                                        env={**os.environ, **(env or {})})

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """What it printed on stderr so far."""
        if not self.stderr.closed:
            self.stderr.flush()
        return self.stderr_path.read_text()

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.stderr.close()

    def kill(self) -> None:
        """``kill -9``."""
        self.process.kill()
        self.process.wait(30)
        self.stderr.close()

    def __enter__(self) -> WatchProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self.stderr.close()


def children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether a process exists (and is not a zombie)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return False
