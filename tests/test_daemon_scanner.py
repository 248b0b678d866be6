"""Finding complete files: temporary names, settling, start-up and periodic scans, and the polling fallback."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from hostplug.daemon.config import FolderConfig, OutputSpec
from hostplug.daemon.scanner import (
    Scanner,
    SettleTracker,
    failure_wait,
    filesystem_type,
    is_candidate,
    is_left_out,
    is_temporary,
    lone_sidecars,
    sidecar_owners,
    walk,
)


def _folder(path: Path, **changes) -> FolderConfig:
    return FolderConfig(path=path, outputs=(OutputSpec(folder=path.parent / "out"),), **changes)


@pytest.mark.parametrize("name", [".IMG_0001.CR2.Xa8f3k", "IMG_0001.CR2.part", "IMG_0001.CR2.tmp", "~IMG.CR2",
                                  "IMG_0001.CR2.crdownload", ".IMG_0001.CR2", "IMG.CR2.failed.txt"])
def test_names_copy_tools_use_while_writing_are_ignored(tmp_path: Path, name: str) -> None:
    assert is_temporary(name)
    assert not is_candidate(tmp_path / name, _folder(tmp_path))


def test_sidecars_and_other_files_are_not_inputs(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert is_candidate(tmp_path / "IMG_0001.CR2", folder) and is_candidate(tmp_path / "x.dng", folder)
    for name in ("IMG_0001.CR2.xmp", "IMG_0001.xmp", "notes.txt", "IMG_0001.jpg"):
        assert not is_candidate(tmp_path / name, folder)


def test_sub_folders_only_when_recursing_and_never_failed_or_hidden(tmp_path: Path) -> None:
    assert not is_candidate(tmp_path / "a" / "x.dng", _folder(tmp_path))
    recursing = _folder(tmp_path, recurse=True)
    assert is_candidate(tmp_path / "a" / "x.dng", recursing)
    assert not is_candidate(tmp_path / "_failed" / "x.dng", recursing)
    assert not is_candidate(tmp_path / ".hostplug" / "x.dng", recursing)


def _watching(path: Path, content: bytes) -> SettleTracker:
    """A tracker (2 s to settle) watching ``path``, just written with ``content``, from time 0."""
    path.write_bytes(content)
    tracker = SettleTracker(settle_seconds=2.0)
    st = path.stat()
    tracker.watch(path, st.st_size, st.st_mtime_ns, now=0.0)
    return tracker


def test_a_file_settles_only_after_it_stops_changing(tmp_path: Path) -> None:
    path = tmp_path / "a.dng"
    tracker = _watching(path, b"1")
    assert tracker.settled(now=1.0) == []
    path.write_bytes(b"12")  # still growing
    assert tracker.settled(now=2.5) == []  # changed: its clock restarts at 2.5
    assert tracker.settled(now=4.0) == []
    assert tracker.settled(now=4.6) == [path]
    assert path not in tracker


def _ready_after(scanner: Scanner, seconds: float, clock: list[float], wanted=None) -> list[Path]:
    """Poll for ``seconds`` of fake time; like the daemon's journal, a file once found is not wanted again."""
    found: list[Path] = []

    def not_found_yet(path: Path, st: object) -> bool:
        return path not in found

    for _ in range(int(seconds / 0.1)):
        clock[0] += 0.1
        found += scanner.poll(wanted or not_found_yet, now=clock[0])
    return found


def test_start_up_scan_finds_files_that_arrived_while_down(tmp_path: Path) -> None:
    (tmp_path / "old.dng").write_bytes(b"raw")
    scanner = Scanner((_folder(tmp_path),), settle_seconds=0.5, rescan_seconds=3600, poll_seconds=1,
                      watcher="polling")
    scanner.start()
    assert _ready_after(scanner, 1.0, [0.0]) == [tmp_path / "old.dng"]


class _DeafObserver:
    """A watcher that starts fine but never reports anything (an event missed)."""

    def schedule(self, *args, **kwargs) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass


def test_periodic_rescan_catches_what_the_watcher_missed(tmp_path: Path) -> None:
    scanner = Scanner((_folder(tmp_path),), settle_seconds=0.2, rescan_seconds=5, poll_seconds=1,
                      watcher="events", observer_factory=_DeafObserver)
    assert scanner.start() == {tmp_path: "events"}
    clock = [0.0]
    assert _ready_after(scanner, 1.0, clock) == []
    (tmp_path / "missed.dng").write_bytes(b"raw")
    assert _ready_after(scanner, 3.0, clock) == []  # no event, no rescan yet
    assert _ready_after(scanner, 2.5, clock) == [tmp_path / "missed.dng"]


def test_falls_back_to_polling_when_inotify_fails(tmp_path: Path) -> None:
    def broken() -> object:
        raise OSError(28, "inotify watch limit reached")

    scanner = Scanner((_folder(tmp_path),), settle_seconds=0.2, rescan_seconds=3600, poll_seconds=0.5,
                      watcher="auto", observer_factory=broken)
    assert scanner.start() == {tmp_path: "polling"}
    clock = [0.0]
    _ready_after(scanner, 1.0, clock)
    (tmp_path / "new.dng").write_bytes(b"raw")
    assert _ready_after(scanner, 1.5, clock) == [tmp_path / "new.dng"]


def test_polling_can_be_chosen(tmp_path: Path) -> None:
    scanner = Scanner((_folder(tmp_path),), settle_seconds=0.2, rescan_seconds=60, poll_seconds=1,
                      watcher="polling")
    assert scanner.start() == {tmp_path: "polling"} and scanner.observer is None


def test_events_point_the_scanner_at_new_files(tmp_path: Path) -> None:
    scanner = Scanner((_folder(tmp_path),), settle_seconds=0.2, rescan_seconds=3600, poll_seconds=1,
                      watcher="events")
    try:
        assert scanner.start() == {tmp_path: "events"}
        scanner.poll(lambda p, s: True)  # the start-up scan
        (tmp_path / ".x.dng.part").write_bytes(b"raw")
        os.replace(tmp_path / ".x.dng.part", tmp_path / "x.dng")
        import time

        found: list[Path] = []
        deadline = time.monotonic() + 5
        while not found and time.monotonic() < deadline:
            time.sleep(0.05)
            found = scanner.poll(lambda p, s: True)
        assert found == [tmp_path / "x.dng"]
    finally:
        scanner.stop()


def test_files_the_journal_already_has_are_not_watched(tmp_path: Path) -> None:
    (tmp_path / "done.dng").write_bytes(b"raw")
    scanner = Scanner((_folder(tmp_path),), settle_seconds=0.1, rescan_seconds=3600, poll_seconds=1,
                      watcher="polling")
    scanner.start()
    assert _ready_after(scanner, 1.0, [0.0], wanted=lambda p, s: False) == []


def test_filesystem_type_is_read_from_mountinfo() -> None:
    assert filesystem_type(Path("/proc/self")) == "proc"


def test_a_raw_settles_only_after_its_sidecar_stops_changing_too(tmp_path: Path) -> None:
    raw = tmp_path / "a.dng"
    tracker = _watching(raw, b"raw")
    (tmp_path / "a.dng.xmp").write_text("<x/>")  # the sidecar arrives while the raw settles
    assert tracker.settled(now=1.0) == []  # its clock restarts at 1.0
    assert tracker.settled(now=2.5) == []
    assert tracker.settled(now=3.1) == [raw]


def test_a_sidecar_points_at_its_raw_and_one_without_a_raw_is_noted(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    for name in ("IMG_1.CR2", "IMG_1.CR2.xmp", "IMG_2.NEF", "IMG_2.xmp", "IMG_3.xmp", "IMG_4.jpg", "IMG_4.xmp"):
        (tmp_path / name).write_bytes(b"x")
    assert sidecar_owners(tmp_path / "IMG_1.CR2.xmp", folder) == [tmp_path / "IMG_1.CR2"]  # darktable's name
    assert sidecar_owners(tmp_path / "IMG_2.xmp", folder) == [tmp_path / "IMG_2.NEF"]  # Adobe's name
    assert sidecar_owners(tmp_path / "IMG_3.xmp", folder) == []
    assert lone_sidecars(set(walk(folder, sidecars=True))) == {tmp_path / "IMG_3.xmp", tmp_path / "IMG_4.xmp"}
    assert set(walk(folder)) == {tmp_path / "IMG_1.CR2", tmp_path / "IMG_2.NEF"}


def test_a_failure_is_final_only_once_the_file_was_quiet_for_five_settle_periods() -> None:
    # a copy that paused 2.5 s ago (settle 2 s): wait until it has been quiet for 10 s
    assert failure_wait(mtime=100.0, settled_at=102.0, now=102.5, settle_seconds=2.0) == pytest.approx(7.5)
    assert failure_wait(mtime=100.0, settled_at=102.0, now=110.0, settle_seconds=2.0) == 0.0
    assert failure_wait(mtime=0.0, settled_at=None, now=3600.0, settle_seconds=2.0) == 0.0  # old: at once
    # a share whose clock runs an hour ahead: the daemon's own clock (since it settled) bounds the wait
    assert failure_wait(mtime=3700.0, settled_at=100.0, now=102.0, settle_seconds=2.0) == pytest.approx(6.0)
    assert failure_wait(mtime=3700.0, settled_at=100.0, now=108.0, settle_seconds=2.0) == 0.0


class _Records(logging.Handler):
    """The daemon logger's records, kept in a list."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_images_the_extensions_leave_out_are_reported_once_each_and_never_rendered(tmp_path: Path) -> None:
    for name in ("photo.jpg", "photo2.JPG", "scan.tiff", "a.dng", "notes.txt", ".photo3.jpg.part"):
        (tmp_path / name).write_bytes(b"x")
    logger = logging.getLogger("hostplug.watch")
    records, level = _Records(), logger.level
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)  # as the daemon sets it
    try:
        scanner = Scanner((_folder(tmp_path),), settle_seconds=0.2, rescan_seconds=3600, poll_seconds=0.5,
                          watcher="polling")
        scanner.start()
        clock = [0.0]
        assert _ready_after(scanner, 3.0, clock) == [tmp_path / "a.dng"]  # several full scans
        scanner.recheck(tmp_path / "photo.jpg")  # an event naming it again
        _ready_after(scanner, 1.0, clock)
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    skipped = [r for r in records.records if getattr(r, "event", None) == "skipped"]
    assert sorted(r.fields["path"] for r in skipped) == [str(tmp_path / n) for n in ("photo.jpg", "photo2.JPG",
                                                                                     "scan.tiff")]
    assert 'list "jpg" in the folder\'s extensions' in skipped[0].getMessage()


def test_listed_extensions_make_images_inputs(tmp_path: Path) -> None:
    folder = _folder(tmp_path, extensions=frozenset({"dng", "jpg"}))
    assert is_candidate(tmp_path / "photo.JPG", folder) and not is_left_out(tmp_path / "photo.JPG", folder)
    assert is_left_out(tmp_path / "IMG_1.CR2", folder)  # a raw left out of the list is reported too
    assert not is_left_out(tmp_path / "notes.txt", folder) and not is_left_out(tmp_path / "_failed/a.png", folder)
