"""Originals: archived with their sidecars once rendered, set aside with a report when they fail, put back on retry."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from engine.output.publish import is_partial_of, partial_name
from hostplug.daemon.config import FolderConfig, OutputSpec
from hostplug.daemon.originals import (
    ARCHIVE_PARTIAL,
    archive,
    failure_report,
    free_name,
    remove_partials,
    restore,
    set_aside,
)


def _folder(tmp_path: Path, **changes) -> FolderConfig:
    (tmp_path / "in").mkdir(exist_ok=True)
    return FolderConfig(path=tmp_path / "in", outputs=(OutputSpec(folder=tmp_path / "out"),), **changes)


def test_archive_keeps_sub_folders_and_takes_the_sidecars_along(tmp_path: Path) -> None:
    folder = _folder(tmp_path, recurse=True, originals="move", archive=tmp_path / "archive")
    raw = folder.path / "day1" / "IMG_1.CR2"
    raw.parent.mkdir()
    raw.write_bytes(b"raw")
    (raw.parent / "IMG_1.CR2.xmp").write_text("ours")
    (raw.parent / "IMG_1.xmp").write_text("adobe")
    moved = archive(raw, folder)
    assert moved == tmp_path / "archive" / "day1" / "IMG_1.CR2" and moved.read_bytes() == b"raw"
    assert sorted(p.name for p in moved.parent.iterdir()) == ["IMG_1.CR2", "IMG_1.CR2.xmp", "IMG_1.xmp"]
    assert list(raw.parent.iterdir()) == []


def test_an_archived_sidecar_stays_its_own_raw_s_and_an_earlier_one_is_kept(tmp_path: Path) -> None:
    # a tester: photo A archived as IMG.dng + IMG.xmp; another photo B named IMG.dng became IMG-2.dng; A dropped
    # again, re-rated, gave its new IMG.xmp the free name IMG-2.xmp: B's sidecar name, so B took A's rating
    folder = _folder(tmp_path, originals="move", archive=tmp_path / "archive")
    store = tmp_path / "archive"

    def drop(content: bytes, sidecars: dict[str, str]) -> Path:
        raw = folder.path / "IMG.dng"
        raw.write_bytes(content)
        for name, text in sidecars.items():
            (folder.path / name).write_text(text)
        return archive(raw, folder)

    assert drop(b"photo A", {"IMG.xmp": "A rated 4", "IMG.dng.xmp": "A, darktable"}) == store / "IMG.dng"
    assert drop(b"photo B", {"IMG.xmp": "B", "IMG.dng.xmp": "B, darktable"}) == store / "IMG-2.dng"
    assert (store / "IMG-2.xmp").read_text() == "B" and (store / "IMG-2.dng.xmp").read_text() == "B, darktable"
    assert drop(b"photo A", {"IMG.xmp": "A rated 5"}) == store / "IMG.dng"
    assert (store / "IMG.xmp").read_text() == "A rated 5"  # the newest sidecar beside its raw
    assert (store / "IMG.xmp.1").read_text() == "A rated 4"  # the earlier one kept, under no sidecar name
    assert (store / "IMG-2.xmp").read_text() == "B" and (store / "IMG.dng.xmp").read_text() == "A, darktable"
    assert list(folder.path.iterdir()) == []


def test_a_failed_archive_move_puts_the_earlier_sidecar_back(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # a reviewer: the earlier sidecar was renamed aside before the raw's move, and stayed aside when it failed
    folder = _folder(tmp_path, originals="move", archive=tmp_path / "archive")
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "IMG.dng").write_bytes(b"photo")
    (tmp_path / "archive" / "IMG.xmp").write_text("rated 4")
    raw = folder.path / "IMG.dng"
    raw.write_bytes(b"photo")
    (folder.path / "IMG.xmp").write_text("rated 5")
    real_rename = os.rename

    def full(source: object, destination: object) -> None:
        if Path(str(source)) == raw:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", full)
    with pytest.raises(OSError):
        archive(raw, folder)
    assert (tmp_path / "archive" / "IMG.xmp").read_text() == "rated 4"
    assert sorted(p.name for p in (tmp_path / "archive").iterdir()) == ["IMG.dng", "IMG.xmp"]
    assert raw.exists() and (folder.path / "IMG.xmp").read_text() == "rated 5"


def test_a_failed_raw_set_aside_under_a_number_comes_back_with_its_sidecar_s_name(tmp_path: Path) -> None:
    # a reviewer: IMG.dng failed while _failed/ held another IMG.dng, so it went there as IMG-2.dng with IMG-2.xmp;
    # restored, its sidecar kept the name IMG-2.xmp, so the raw rendered without its edit
    folder = _folder(tmp_path)
    failed = folder.path / "_failed"
    failed.mkdir()
    (failed / "IMG.dng").write_bytes(b"another photo")
    raw = folder.path / "IMG.dng"
    raw.write_bytes(b"this photo")
    (folder.path / "IMG.xmp").write_text("its edit")
    moved = set_aside(raw, folder, "corrupt")
    assert moved == failed / "IMG-2.dng" and (failed / "IMG-2.xmp").read_text() == "its edit"
    assert restore(raw, moved)
    assert (folder.path / "IMG.xmp").read_text() == "its edit" and not (folder.path / "IMG-2.xmp").exists()


def test_moves_never_overwrite_a_different_file(tmp_path: Path) -> None:
    (tmp_path / "a.dng").write_bytes(b"old")
    (tmp_path / "new.dng").write_bytes(b"new")
    (tmp_path / "same.dng").write_bytes(b"old")
    assert free_name(tmp_path / "a.dng", tmp_path / "new.dng") == tmp_path / "a-2.dng"
    assert free_name(tmp_path / "a.dng", tmp_path / "same.dng") == tmp_path / "a.dng"  # identical: replace


def test_a_failed_file_goes_to_failed_with_its_report_and_comes_back_on_retry(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    raw = folder.path / "bad.dng"
    raw.write_bytes(b"junk")
    journal = tmp_path / "my journal.sqlite"
    report = failure_report(raw, "the raw data cannot be read", "failed", 1, journal)
    moved = set_aside(raw, folder, report)
    assert moved == folder.path / "_failed" / "bad.dng" and not raw.exists()
    text = (folder.path / "_failed" / "bad.dng.failed.txt").read_text()
    assert "the raw data cannot be read" in text and "permanent" in text
    assert f"hostplug queue --retry --journal '{journal}'" in text  # bare --retry names no journal: it failed
    assert restore(raw, moved) and raw.read_bytes() == b"junk"
    assert not (folder.path / "_failed" / "bad.dng.failed.txt").exists()


def test_marked_in_place_when_the_folder_says_so(tmp_path: Path) -> None:
    folder = _folder(tmp_path, failed="mark")
    raw = folder.path / "bad.dng"
    raw.write_bytes(b"junk")
    assert set_aside(raw, folder, "why") == raw and (folder.path / "bad.dng.failed.txt").read_text() == "why"


def test_temporaries_of_a_killed_render_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".a.jpg.0123abcd.part").write_bytes(b"half")
    (tmp_path / ".b.jpg.0123abcd.part").write_bytes(b"someone else's")
    (tmp_path / "a.jpg").write_bytes(b"whole")
    assert remove_partials(tmp_path / "a.jpg") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.jpg.0123abcd.part", "a.jpg"]


def test_a_failed_file_whose_name_is_taken_again_stays_in_failed_with_its_report(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    raw = folder.path / "bad.dng"
    raw.write_bytes(b"junk")
    moved = set_aside(raw, folder, "why")
    raw.write_bytes(b"another file of that name")
    assert not restore(raw, moved)
    assert moved.read_bytes() == b"junk" and (moved.parent / "bad.dng.failed.txt").read_text() == "why"


@pytest.fixture
def other_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rename crosses file systems (``EXDEV``), as to an archive on another disk."""
    def cross(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "rename", cross)


def _raw_with_sidecar(folder: FolderConfig, name: str = "e1.ARW") -> Path:
    raw = folder.path / name
    raw.write_bytes(os.urandom(300_000))
    (folder.path / f"{name}.xmp").write_text("look")
    return raw


def test_archiving_to_a_full_disk_leaves_the_original_and_nothing_in_the_archive(
        tmp_path: Path, other_disk: None, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path, originals="move", archive=tmp_path / "archive")
    raw = _raw_with_sidecar(folder)
    content = raw.read_bytes()

    def disk_fills(reader, writer, length=0) -> None:
        writer.write(reader.read(1000))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as full:
        full.setattr(shutil, "copyfileobj", disk_fills)
        for _ in range(3):  # the daemon tries again at every rescan
            with pytest.raises(OSError, match="No space left"):
                archive(raw, folder)
            assert raw.read_bytes() == content and (folder.path / "e1.ARW.xmp").read_text() == "look"
            assert os.listdir(tmp_path / "archive") == []  # no truncated copy, no temporary, no e1-2.ARW
    moved = archive(raw, folder)  # space freed: the raw gets its own name
    assert moved == tmp_path / "archive" / "e1.ARW" and moved.read_bytes() == content
    assert sorted(os.listdir(tmp_path / "archive")) == ["e1.ARW", "e1.ARW.xmp"]
    assert os.listdir(folder.path) == []


def test_a_copy_killed_midway_leaves_a_hidden_temporary_that_the_next_move_removes(
        tmp_path: Path, other_disk: None) -> None:
    folder = _folder(tmp_path, originals="move", archive=tmp_path / "archive")
    raw = _raw_with_sidecar(folder)
    (tmp_path / "archive").mkdir()
    left = tmp_path / "archive" / partial_name("e1.ARW", ARCHIVE_PARTIAL)  # what kill -9 during the copy leaves
    left.write_bytes(b"half")
    assert left.name.startswith(".e1.ARW.") and left.suffix == ".hostplug-part"  # hidden, not a photo's suffix
    archive(raw, folder)
    assert sorted(os.listdir(tmp_path / "archive")) == ["e1.ARW", "e1.ARW.xmp"]


def test_a_copy_already_complete_in_the_archive_is_kept_and_the_original_removed(
        tmp_path: Path, other_disk: None) -> None:
    folder = _folder(tmp_path, originals="move", archive=tmp_path / "archive")
    raw = _raw_with_sidecar(folder)
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "e1.ARW").write_bytes(raw.read_bytes())  # named, then the daemon was killed
    (tmp_path / "archive" / "other.ARW").write_bytes(b"someone else's")
    archive(raw, folder)
    assert sorted(os.listdir(tmp_path / "archive")) == ["e1.ARW", "e1.ARW.xmp", "other.ARW"]
    assert os.listdir(folder.path) == []


def test_a_long_name_still_gets_a_temporary_name_a_file_system_takes() -> None:
    name = "東" * 84 + ".ARW"  # 256 bytes in UTF-8
    partial = partial_name(name, ARCHIVE_PARTIAL)
    assert len(os.fsencode(partial)) <= 255 and is_partial_of(partial, name, ARCHIVE_PARTIAL)
    assert not is_partial_of(partial, "x" + name, ARCHIVE_PARTIAL)


def test_an_earlier_copy_that_failed_under_a_name_that_failed_again_stays_listed_and_retryable(
        tmp_path: Path) -> None:
    # the journal keeps one row per name: the later failure took it, and queue counted 1 with 2 files in _failed/
    import json

    from click.testing import CliRunner

    from hostplug.cli import main
    from hostplug.daemon.journal import Journal

    hot = tmp_path / "in"
    hot.mkdir()
    folder = _folder(tmp_path)
    journal_path = tmp_path / "journal.sqlite"
    journal = Journal(journal_path)
    for content in (b"first broken copy", b"second broken copy"):
        raw = hot / "IMG_7.dng"
        raw.write_bytes(content)
        entry = journal.enqueue(raw, hot, len(content), 0, content.hex())
        moved = set_aside(raw, folder, failure_report(raw, "not a raw", "failed", 1, journal_path))
        journal.fail(entry.id, "not a raw", "failed", moved)
    journal.close()
    assert sorted(p.name for p in (hot / "_failed").iterdir() if p.suffix == ".dng") == ["IMG_7-2.dng", "IMG_7.dng"]
    listed = CliRunner().invoke(main, ["queue", "--journal", str(journal_path)])
    assert "1 earlier failed copy" in listed.stdout
    retried = json.loads(CliRunner().invoke(main, ["queue", "--journal", str(journal_path), "--retry",
                                                   "--json"]).stdout)
    assert retried["retried"] == 1 and (hot / "IMG_7.dng").read_bytes() == b"second broken copy"
    assert "IMG_7.dng is taken" in retried["not_retried"][0]  # the earlier one waits for its name to be free
    (hot / "IMG_7.dng").unlink()  # (rendered, or removed)
    again = json.loads(CliRunner().invoke(main, ["queue", "--journal", str(journal_path), "--retry",
                                                 "--json"]).stdout)
    assert again["retried"] == 1 and (hot / "IMG_7.dng").read_bytes() == b"first broken copy"
    assert not list((hot / "_failed").glob("*.dng"))


def test_an_earlier_failed_copy_with_a_long_name_is_found_by_its_shortened_report(tmp_path: Path) -> None:
    from hostplug.daemon.originals import earlier_failures

    folder = _folder(tmp_path)
    raw = folder.path / ("n" * 250 + ".dng")  # NAME.failed.txt would pass 255 bytes: the report's name is cut
    raw.write_bytes(b"broken")
    moved = set_aside(raw, folder, failure_report(raw, "not a raw", "failed", 1, tmp_path / "journal.sqlite"))
    assert len(os.fsencode(moved.name + ".failed.txt")) > 255
    assert earlier_failures(folder.path, set()) == [(moved, raw)]
    assert earlier_failures(folder.path, {moved}) == []


def test_a_failure_report_that_a_full_disk_cuts_short_is_not_left_empty(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # the report was written in place: a full disk left a zero-byte NAME.failed.txt, never written again
    folder = _folder(tmp_path)
    raw = folder.path / "bad.dng"
    raw.write_bytes(b"raw")
    real = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        real(self, b"")  # the file is made, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        set_aside(raw, folder, "why it failed")
    failed = folder.path / "_failed"
    assert sorted(p.name for p in failed.iterdir()) == ["bad.dng"]  # the raw, and no empty or partial report
