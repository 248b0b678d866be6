"""The journal: states, crash recovery, output ownership and retries survive across connections."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hostplug.cli import main
from hostplug.daemon.errors import JournalError
from hostplug.daemon.journal import Conflict, Journal


def test_a_file_moves_through_its_states_and_survives_reopening(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    entry = journal.enqueue(tmp_path / "a.dng", tmp_path, 10, 20, "c" * 64)
    journal.start(entry.id)
    journal.finish(entry.id, "r" * 64, [str(tmp_path / "a.jpg")])
    journal.close()
    again = Journal(tmp_path / "j.sqlite").lookup(tmp_path / "a.dng")
    assert again and again.state == "done" and again.attempts == 1 and again.rendered_hash == "c" * 64
    assert again.recipe_hash == "r" * 64 and again.outputs == (str(tmp_path / "a.jpg"),)
    assert again.same_stat(10, 20) and not again.same_stat(10, 21)


def test_an_identical_redrop_keeps_the_time_of_the_render_that_made_the_outputs(tmp_path: Path) -> None:
    # a tester's queue gave the time the re-drop was skipped as the time it rendered, and counted it in the rate
    journal = Journal(tmp_path / "j.sqlite")
    entry = journal.enqueue(tmp_path / "a.dng", tmp_path, 1, 1, "same")
    journal.start(entry.id)
    journal.finish(entry.id, "recipe", ["out/a.jpg"])
    rendered_at = journal.get(entry.id).finished_at
    time.sleep(0.05)
    journal.enqueue(tmp_path / "a.dng", tmp_path, 1, 2, "same")
    journal.start(entry.id)
    journal.finish(entry.id, "recipe", ["out/a.jpg"], rendered=False)
    assert journal.get(entry.id).state == "done" and journal.get(entry.id).finished_at == rendered_at


def test_rows_left_rendering_by_a_crash_are_queued_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    entry = journal.enqueue(tmp_path / "a.dng", tmp_path, 1, 1, "h")
    journal.start(entry.id)
    journal.close()  # the daemon was killed here
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.recover() == 1
    assert [e.path.name for e in journal.due(5, set())] == ["a.dng"]


def test_re_enqueueing_keeps_what_the_last_render_used(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    entry = journal.enqueue(tmp_path / "a.dng", tmp_path, 1, 1, "old")
    journal.finish(entry.id, "recipe", ["x"])
    again = journal.enqueue(tmp_path / "a.dng", tmp_path, 2, 2, "new")
    assert again.id == entry.id and again.state == "queued" and again.content_hash == "new"
    assert again.rendered_hash == "old" and again.recipe_hash == "recipe"


def test_an_output_belongs_to_one_raw_only(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    a = journal.enqueue(tmp_path / "a" / "x.dng", tmp_path, 1, 1, "h")
    b = journal.enqueue(tmp_path / "b" / "x.dng", tmp_path, 1, 1, "h")
    assert journal.claim(a.id, ["/out/x.jpg"]) is None
    assert journal.claim(a.id, ["/out/x.jpg"]) is None  # its own again: fine
    conflict = journal.claim(b.id, ["/out/x.jpg"])
    assert conflict == Conflict(f"/out/x.jpg (already the output of {a.path})", renamed=False)
    assert pickle.loads(pickle.dumps(conflict)) == conflict  # as it crosses the cluster's claim protocol


def test_temporary_failures_wait_before_they_are_due(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    entry = journal.enqueue(tmp_path / "a.dng", tmp_path, 1, 1, "h")
    journal.start(entry.id)
    journal.requeue(entry.id, "disk full", delay=60)
    assert journal.due(5, set()) == []
    assert journal.get(entry.id).error == "disk full"


def test_queue_shows_counts_and_errors_and_retry_moves_files_back(tmp_path: Path) -> None:
    hot = tmp_path / "in"
    (hot / "_failed").mkdir(parents=True)
    journal = Journal(hot / ".hostplug" / "journal.sqlite")
    done = journal.enqueue(hot / "good.dng", hot, 1, 1, "h1")
    journal.finish(done.id, "r", ["out/good.jpg"])
    bad = journal.enqueue(hot / "bad.dng", hot, 1, 1, "h2")
    journal.start(bad.id)
    moved = hot / "_failed" / "bad.dng"
    moved.write_bytes(b"x")
    (hot / "_failed" / "bad.dng.failed.txt").write_text("why")
    journal.fail(bad.id, "the raw data cannot be read", "failed", moved)
    journal.close()

    shown = CliRunner().invoke(main, ["queue", str(hot), "--json"])
    data = json.loads(shown.stdout)
    assert data["counts"] == {"queued": 0, "rendering": 0, "done": 1, "failed": 1}
    assert data["errors"][0]["error"] == "the raw data cannot be read" and data["running_pid"] is None
    text = CliRunner().invoke(main, ["queue", "--journal", str(hot / ".hostplug" / "journal.sqlite")]).stdout
    assert "failed 1" in text and "bad.dng" in text and "daemon not running" in text

    retried = CliRunner().invoke(main, ["queue", str(hot), "--retry", "--json"])
    assert json.loads(retried.stdout)["retried"] == 1
    assert (hot / "bad.dng").exists() and not moved.exists() and not (hot / "_failed" / "bad.dng.failed.txt").exists()
    row = Journal(hot / ".hostplug" / "journal.sqlite").lookup(hot / "bad.dng")
    assert row.state == "queued" and row.attempts == 0


def test_retry_forgets_a_failed_raw_deleted_since(tmp_path: Path) -> None:
    # the photographer discarded the bad file (and its report): it stayed "failed 1" forever, and every --retry
    # said "not found"
    hot = tmp_path / "in"
    hot.mkdir()
    journal = Journal(hot / ".hostplug" / "journal.sqlite")
    bad = journal.enqueue(hot / "bad.dng", hot, 1, 1, "h2")
    assert journal.claim(bad.id, [str(tmp_path / "out" / "bad.jpg")]) is None
    journal.start(bad.id)
    journal.fail(bad.id, "the raw data cannot be read", "failed", hot / "bad.dng")  # failed = "mark": left there
    journal.enqueue(hot / "other.dng", hot, 1, 1, "h4")  # (so that the new photo below gets another id)
    journal.close()
    retried = json.loads(CliRunner().invoke(main, ["queue", str(hot), "--retry", "--json"]).stdout)
    assert retried["retried"] == 0 and "deleted since it failed" in retried["not_retried"][0]
    counts = json.loads(CliRunner().invoke(main, ["queue", str(hot), "--json"]).stdout)["counts"]
    assert counts["failed"] == 0
    journal = Journal(hot / ".hostplug" / "journal.sqlite")  # a new photo of that name may take its output's name
    new = journal.enqueue(hot / "bad.dng", hot, 2, 2, "h3")
    assert new.id != bad.id and journal.claim(new.id, [str(tmp_path / "out" / "bad.jpg")]) is None


def test_queue_without_a_journal_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["queue", str(tmp_path)])
    assert result.exit_code != 0 and "no journal here (has a daemon watched this hot folder?" in result.stderr
    assert "configuration" not in result.stderr.split("?")[0]  # none was given (it asked about "this configuration")
    missing = CliRunner().invoke(main, ["queue", str(tmp_path / "nonexist")])
    assert missing.exit_code == 2 and f"hot folder {tmp_path / 'nonexist'} does not exist" in missing.stderr


def test_a_mistyped_journal_path_is_refused_not_made(tmp_path: Path) -> None:
    # a tester's --journal /nonexistent/j.sqlite made /nonexistent/ and ran; one folder is still made (.hostplug)
    with pytest.raises(JournalError, match="the folder .*nonexistent does not exist \\(mistyped\\?\\)"):
        Journal(tmp_path / "nonexistent" / "state" / "j.sqlite")
    assert not (tmp_path / "nonexistent").exists()
    (tmp_path / "hot").mkdir()
    Journal(tmp_path / "hot" / ".hostplug" / "j.sqlite").close()
    assert (tmp_path / "hot" / ".hostplug" / "j.sqlite").is_file()


def test_sidecar_stamps_are_kept_and_a_sidecar_finds_its_raws_row(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    entry = journal.enqueue(tmp_path / "a_1.dng", tmp_path, 1, 1, "h", sidecars="[[10, 20]]")
    assert entry.same_sidecars("[[10, 20]]") and not entry.same_sidecars("[]")
    journal.update_stat(entry.id, 2, 2, "[]")
    assert journal.get(entry.id).same_sidecars("[]")
    older = journal.enqueue(tmp_path / "b.dng", tmp_path, 1, 1, "h")  # as rows from before stamps were kept
    assert older.same_sidecars("[[1, 2]]")  # unknown counts as unchanged: no re-render of everything
    assert [e.path.name for e in journal.owners_of_sidecar(tmp_path / "a_1.dng.xmp")] == ["a_1.dng"]
    assert [e.path.name for e in journal.owners_of_sidecar(tmp_path / "a_1.xmp")] == ["a_1.dng"]
    assert journal.owners_of_sidecar(tmp_path / "aX1.xmp") == []  # "_" is a name, not a LIKE wildcard


def test_a_hot_folder_is_known_once_a_file_of_it_was_seen_or_it_was_found_empty(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.enqueue(tmp_path / "in" / "a.dng", tmp_path / "in", 1, 1, "h")
    assert journal.knows_folder(tmp_path / "in") and not journal.knows_folder(tmp_path / "copies")
    journal.mark_empty(tmp_path / "copies")
    journal.close()
    assert Journal(tmp_path / "j.sqlite").knows_folder(tmp_path / "copies")


def test_a_full_journal_is_a_journal_error_that_names_it_and_says_the_disk_is_full(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.db.execute("PRAGMA max_page_count = 1")  # no page beyond those it has: SQLite's SQLITE_FULL
    with pytest.raises(JournalError, match="disk is full") as caught:
        for i in range(1000):
            journal.enqueue(tmp_path / f"{i:04d}-{'x' * 200}.dng", tmp_path, 1, 1, "h" * 64)
    assert str(tmp_path / "j.sqlite") in str(caught.value) and caught.value.exit_code == 7


def test_a_new_photo_under_an_archived_name_gets_its_own_row_and_numbered_outputs(tmp_path: Path) -> None:
    from hostplug.daemon.config import FolderConfig, OutputSpec
    from hostplug.daemon.job import Job, claim_outputs
    from hostplug.daemon.templates import TokenValues

    hot, out = tmp_path / "in", tmp_path / "out"
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=out, template="{name}", format="jpeg"),))
    journal = Journal(tmp_path / "j.sqlite")
    first = journal.enqueue(hot / "canon1.dng", hot, 1, 1, "first")
    assert claim_outputs(Job(first.id, first.path, hot, 1, 1, "first"), folder, TokenValues(name="canon1"), None,
                         journal) == ([str(out / "canon1.jpg")], None)
    journal.finish(first.id, "recipe", [str(out / "canon1.jpg")])
    journal.set_moved(first.id, tmp_path / "archive" / "canon1.dng")
    earlier = journal.lookup(hot / "canon1.dng")
    assert earlier and earlier.left_hot_folder()

    second = journal.enqueue_new_photo(earlier, 2, 2, "second")
    assert second.id != first.id and second.earlier == first.id and journal.lookup(hot / "canon1.dng") == second
    assert journal.get(first.id).outputs == (str(out / "canon1.jpg"),)  # the earlier photo's, still
    job = Job(second.id, second.path, hot, 2, 2, "second", fresh_names=second.earlier is not None)
    numbered = ([str(out / "canon1-2.jpg")], None)
    assert claim_outputs(job, folder, TokenValues(name="canon1"), None, journal) == numbered
    assert claim_outputs(job, folder, TokenValues(name="canon1"), None, journal) == numbered  # a retry: the same

    other = journal.enqueue(hot / "sub" / "canon1.dng", hot, 1, 1, "other")  # not a new photo: no numbering
    targets, refusal = claim_outputs(Job(other.id, other.path, hot, 1, 1, "other"), folder,
                                     TokenValues(name="canon1"), None, journal)
    assert refusal and "put {dir} or {seq} in the template" in refusal


def _archived(journal: Journal, path: Path, content: str, outputs: list[str]):
    """A raw rendered into ``outputs`` and archived: its row, as a new photo of its name would find it."""
    entry = journal.enqueue(path, path.parent, 1, 1, content)
    journal.claim(entry.id, outputs)
    journal.finish(entry.id, "recipe", outputs)
    journal.set_moved(entry.id, path.parent.parent / "archive" / path.name)
    return journal.get(entry.id)


def test_numbering_skips_the_names_of_raws_the_journal_knew_before(tmp_path: Path) -> None:
    from hostplug.daemon.config import FolderConfig, OutputSpec
    from hostplug.daemon.job import Job, claim_outputs
    from hostplug.daemon.templates import TokenValues

    hot, out = tmp_path / "in", tmp_path / "out"
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=out, template="{name}", format="jpeg"),))
    journal = Journal(tmp_path / "j.sqlite")
    earlier = _archived(journal, hot / "canon1.dng", "first", [str(out / "canon1.jpg")])
    named = journal.enqueue(hot / "sub" / "canon1-2.dng", hot, 1, 1, "named")  # queued, nothing claimed yet
    second = journal.enqueue_new_photo(earlier, 2, 2, "second")
    journal.enqueue(hot / "canon1-3.dng", hot, 1, 1, "later")  # came after the new photo: not left to it
    assert journal.names_before(second) == ("canon1-2",)
    job = Job(second.id, second.path, hot, 2, 2, "second", fresh_names=True,
              taken_names=journal.names_before(second))
    numbered = ([str(out / "canon1-3.jpg")], None)
    assert claim_outputs(job, folder, TokenValues(name="canon1"), None, journal) == numbered
    assert claim_outputs(job, folder, TokenValues(name="canon1"), None, journal) == numbered  # a retry: the same
    own = Job(named.id, named.path, hot, 1, 1, "named", taken_names=journal.names_before(named))
    assert claim_outputs(own, folder, TokenValues(name="canon1-2"), None, journal) == (
        [str(out / "canon1-2.jpg")], None)  # its own name, kept for it


def test_a_raw_whose_own_name_another_photo_was_numbered_to_is_numbered_in_turn(tmp_path: Path) -> None:
    from hostplug.daemon.config import FolderConfig, OutputSpec
    from hostplug.daemon.job import Job, claim_outputs
    from hostplug.daemon.templates import TokenValues

    hot, out = tmp_path / "in", tmp_path / "out"
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=out, template="{name}", format="jpeg"),))
    journal = Journal(tmp_path / "j.sqlite")
    earlier = _archived(journal, hot / "canon1.dng", "first", [str(out / "canon1.jpg")])
    second = journal.enqueue_new_photo(earlier, 2, 2, "second")
    job = Job(second.id, second.path, hot, 2, 2, "second", fresh_names=True)
    assert claim_outputs(job, folder, TokenValues(name="canon1"), None, journal)[0] == [str(out / "canon1-2.jpg")]
    named = journal.enqueue(hot / "canon1-2.dng", hot, 1, 1, "named")  # arrived after the numbering
    own = Job(named.id, named.path, hot, 1, 1, "named")
    numbered = ([str(out / "canon1-2-2.jpg")], None)
    assert claim_outputs(own, folder, TokenValues(name="canon1-2"), None, journal) == numbered
    assert claim_outputs(own, folder, TokenValues(name="canon1-2"), None, journal) == numbered  # a retry: the same
    chained = journal.enqueue(hot / "canon1-2-2.dng", hot, 1, 1, "chained")  # named like that numbering, later
    assert claim_outputs(Job(chained.id, chained.path, hot, 1, 1, "chained"), folder,
                         TokenValues(name="canon1-2-2"), None, journal) == ([str(out / "canon1-2-2-2.jpg")], None)
    # another canon1-2.dng, in a sub-folder, is numbered in turn to canon1-2-2 too, which the first one holds:
    # a raw of the same output name there, so it fails as such raws do instead of numbering on
    again = journal.enqueue(hot / "sub" / "canon1-2.dng", hot, 1, 1, "again")
    assert claim_outputs(Job(again.id, again.path, hot, 1, 1, "again"), folder, TokenValues(name="canon1-2"), None,
                         journal)[1] == (f"output {out / 'canon1-2-2.jpg'} (already the output of {named.path}); "
                                         "put {dir} or {seq} in the template, then hostplug queue --retry")


def test_raws_whose_names_the_template_makes_the_same_fail_whichever_holds_the_name(tmp_path: Path) -> None:
    # "IMG 0001" and "IMG_0001" are both IMG_0001.jpg under "{name}": the second was numbered (IMG_0001-2),
    # and a sub-folder's IMG_0001.dng numbered or failed depending on which raw held the name first
    from hostplug.daemon.config import FolderConfig, OutputSpec
    from hostplug.daemon.job import Job, claim_outputs
    from hostplug.daemon.templates import TokenValues

    hot, out = tmp_path / "in", tmp_path / "out"
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=out, template="{name}", format="jpeg"),))
    journal = Journal(tmp_path / "j.sqlite")
    first = journal.enqueue(hot / "IMG 0001.dng", hot, 1, 1, "first")
    target = str(out / "IMG_0001.jpg")
    assert claim_outputs(Job(first.id, first.path, hot, 1, 1, "first"), folder, TokenValues(name="IMG 0001"),
                         None, journal) == ([target], None)
    advice = {hot: "put {seq} in the template, or rename one of the two raws",  # {dir} is the same for both
              hot / "sub": "put {dir} or {seq} in the template"}
    for path in (hot / "IMG_0001.dng", hot / "sub" / "IMG_0001.dng"):
        entry = journal.enqueue(path, hot, 1, 1, path.name)
        assert claim_outputs(Job(entry.id, path, hot, 1, 1, path.name), folder, TokenValues(name="IMG_0001"),
                             None, journal) == ([target], f"output {target} (already the output of {first.path}); "
                                                          f"{advice[path.parent]}, then hostplug queue --retry")
    assert journal.claimed() == [Path(target)]  # nothing numbered reserved on the way


def test_a_new_photo_that_holds_its_own_name_numbers_no_other_raw(tmp_path: Path) -> None:
    # the earlier photo's outputs went elsewhere (the template changed since): the new photo has IMG_0001.jpg
    # unnumbered, and an IMG_0001.dng is another raw of the same output name, not one whose name it took
    from hostplug.daemon.config import FolderConfig, OutputSpec
    from hostplug.daemon.job import Job, claim_outputs
    from hostplug.daemon.templates import TokenValues

    hot, out = tmp_path / "in", tmp_path / "out"
    folder = FolderConfig(path=hot, outputs=(OutputSpec(folder=out, template="{name}", format="jpeg"),))
    journal = Journal(tmp_path / "j.sqlite")
    earlier = _archived(journal, hot / "IMG 0001.dng", "first", [str(tmp_path / "old" / "IMG_0001.jpg")])
    second = journal.enqueue_new_photo(earlier, 2, 2, "second")
    target = str(out / "IMG_0001.jpg")
    assert claim_outputs(Job(second.id, second.path, hot, 2, 2, "second", fresh_names=True), folder,
                         TokenValues(name="IMG 0001"), None, journal) == ([target], None)
    other = journal.enqueue(hot / "IMG_0001.dng", hot, 1, 1, "other")
    assert journal.claim(other.id, [target]) == Conflict(
        f"{target} (already the output of {second.path})", renamed=False)
    targets, refusal = claim_outputs(Job(other.id, other.path, hot, 1, 1, "other"), folder,
                                     TokenValues(name="IMG_0001"), None, journal)
    # both in one folder: {dir} cannot tell them apart (it was advised)
    assert targets == [target] and refusal and "put {seq} in the template, or rename one of the two raws" in refusal
    assert "{dir}" not in refusal and refusal.endswith("then hostplug queue --retry")


def test_an_earlier_photo_dropped_again_takes_its_row_back_from_the_later_one(tmp_path: Path) -> None:
    hot, out = tmp_path / "in", tmp_path / "out"
    journal = Journal(tmp_path / "j.sqlite")
    first = _archived(journal, hot / "canon1.dng", "first", [str(out / "canon1.jpg")])
    second = journal.enqueue_new_photo(first, 2, 2, "second")
    journal.claim(second.id, [str(out / "canon1-2.jpg")])
    journal.finish(second.id, "recipe", [str(out / "canon1-2.jpg")])
    journal.set_moved(second.id, tmp_path / "archive" / "canon1-2.dng")
    assert [e.id for e in journal.earlier_photos(hot / "canon1.dng")] == [first.id]

    again = journal.enqueue_photo_again(journal.get(second.id), first, 3, 3, "first")
    assert again.id == first.id and journal.lookup(hot / "canon1.dng") == again
    assert again.state == "queued" and again.moved_to is None and again.attempts == 0
    assert (again.rendered_hash, again.recipe_hash, again.outputs) == ("first", "recipe", (str(out / "canon1.jpg"),))
    assert [e.id for e in journal.earlier_photos(hot / "canon1.dng")] == [second.id]
    later = journal.get(second.id)
    assert later.state == "done" and later.outputs == (str(out / "canon1-2.jpg"),)  # still its own


def test_queue_tells_two_cameras_raws_of_one_name_apart_by_their_sub_folders(tmp_path: Path) -> None:
    # a tester's camA/IMG_0001.dng and camB/IMG_0001.dng were both "IMG_0001.dng ->" in the listing
    hot, out = tmp_path / "in", tmp_path / "out"
    hot.mkdir()
    journal = Journal(hot / ".hostplug" / "journal.sqlite")
    for camera in ("camA", "camB"):
        entry = journal.enqueue(hot / camera / "IMG_0001.dng", hot, 1, 1, camera)
        journal.start(entry.id)
        journal.finish(entry.id, "r", [str(out / camera / "IMG_0001.jpg")])
    failed = journal.enqueue(hot / "camC" / "IMG_0001.dng", hot, 1, 1, "camC")
    journal.fail(failed.id, "cannot be read", "damaged")
    journal.close()
    text = CliRunner().invoke(main, ["queue", str(hot)]).stdout
    assert "camA/IMG_0001.dng -> camA/IMG_0001.jpg" in text and "camB/IMG_0001.dng -> camB/IMG_0001.jpg" in text
    assert "camC/IMG_0001.dng [failed]: cannot be read" in text, text


def test_queue_json_gives_an_earlier_photos_real_path_and_says_its_name_was_taken(tmp_path: Path) -> None:
    # a tester's script read "path": ".../IMG_0001.dng#4", a file that does not exist
    hot, out = tmp_path / "in", tmp_path / "out"
    hot.mkdir()
    journal = Journal(hot / ".hostplug" / "journal.sqlite")
    first = _archived(journal, hot / "IMG_0001.dng", "first", [str(out / "IMG_0001.jpg")])
    second = journal.enqueue_new_photo(first, 2, 2, "second")
    journal.start(second.id)
    journal.finish(second.id, "recipe", [str(out / "IMG_0001-2.jpg")])
    journal.close()
    done = json.loads(CliRunner().invoke(main, ["queue", str(hot), "--json"]).stdout)["done"]
    shown = {(d["id"], d["path"], d["name_taken"], tuple(d["outputs"])) for d in done}
    assert shown == {(first.id, str(hot / "IMG_0001.dng"), True, (str(out / "IMG_0001.jpg"),)),
                     (second.id, str(hot / "IMG_0001.dng"), False, (str(out / "IMG_0001-2.jpg"),))}
    text = CliRunner().invoke(main, ["queue", str(hot)]).stdout
    assert f"IMG_0001.dng#{first.id}" in text  # the text keeps telling the two apart by the ID


def test_a_copy_the_daemon_deleted_has_left_the_hot_folder_too(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    entry = journal.enqueue(tmp_path / "a.dng", tmp_path, 1, 1, "h")
    journal.finish(entry.id, "r", ["x"])
    assert not journal.get(entry.id).left_hot_folder()  # rendered, still there (originals = "leave")
    journal.set_deleted(entry.id)
    assert journal.get(entry.id).left_hot_folder()


def _rendered(journal: Journal, path: Path, outputs: list[str]) -> None:
    entry = journal.enqueue(path, path.parent, 1, 1, path.name)
    journal.start(entry.id)
    journal.finish(entry.id, "r", outputs)


def test_queue_lists_each_rendered_raws_outputs_newest_first(tmp_path: Path) -> None:
    hot, out = tmp_path / "in", tmp_path / "out"
    hot.mkdir()
    journal = Journal(hot / ".hostplug" / "journal.sqlite")
    for name in ("IMG_0001", "IMG_0002", "IMG_0003"):
        _rendered(journal, hot / f"{name}.ARW", [str(out / "masters" / f"{name}.tif"),
                                                 str(out / "web" / "2025-03-01" / f"{name}.jpg")])
    journal.db.execute("UPDATE files SET finished_at = id")  # a known order, whatever the clock's resolution
    assert [Path(r["path"]).name for r in journal.rendered_outputs(2)] == ["IMG_0003.ARW", "IMG_0002.ARW"]
    journal.close()

    text = CliRunner().invoke(main, ["queue", str(hot), "--done", "2"]).stdout.splitlines()
    start = text.index(f"last done (outputs under {out}):")  # one line a raw: "  WHEN  NAME -> OUTPUT, ..."
    assert [line.split("  ")[2] for line in text[start + 1:start + 3]] == [
        "IMG_0003.ARW -> masters/IMG_0003.tif, web/2025-03-01/IMG_0003.jpg",
        "IMG_0002.ARW -> masters/IMG_0002.tif, web/2025-03-01/IMG_0002.jpg"]
    assert text[start + 3] == "  (1 more: --done 3 lists them all)"
    assert "last done" not in CliRunner().invoke(main, ["queue", str(hot), "--done", "0"]).stdout

    shown = json.loads(CliRunner().invoke(main, ["queue", str(hot), "--done", "0", "--json"]).stdout)
    assert [(Path(r["path"]).name, r["outputs"]) for r in shown["done"]] == [  # every one, absolute
        (f"{name}.ARW", [str(out / "masters" / f"{name}.tif"), str(out / "web" / "2025-03-01" / f"{name}.jpg")])
        for name in ("IMG_0003", "IMG_0002", "IMG_0001")]


def test_queue_shows_outputs_that_share_no_folder_as_absolute_paths_and_escapes_names(tmp_path: Path) -> None:
    hot = tmp_path / "in"
    hot.mkdir()
    journal = Journal(hot / ".hostplug" / "journal.sqlite")
    _rendered(journal, hot / "a\nfake.dng", ["/masters/a.tif", "/web/a.jpg"])  # two disks: nothing in common
    journal.close()
    text = CliRunner().invoke(main, ["queue", str(hot)]).stdout.splitlines()
    assert "last done:" in text
    assert text[text.index("last done:") + 1].endswith("  a\\nfake.dng -> /masters/a.tif, /web/a.jpg")


def _one_raw(tmp_path: Path, sample_dng: Path, output: dict | None = None, daemon: dict | None = None,
             **job_fields: object) -> tuple[Path, Any, Journal, Any]:
    """A hot folder ``in`` holding a copy of the sample as ``a.dng``, its configuration (``output``, else one JPEG
    into ``out``), a journal with its row, and the job a worker gets for it: (raw, config, journal, job)."""
    import shutil

    from hostplug.daemon.config import parse_config
    from hostplug.daemon.job import Job

    (tmp_path / "in").mkdir()
    raw = Path(shutil.copy(sample_dng, tmp_path / "in" / "a.dng"))
    config = parse_config({"daemon": daemon or {},
                           "folder": [{"path": "in", "output": [output or {"folder": "out", "format": "jpeg"}]}]},
                          tmp_path)
    for spec in config.folders[0].outputs:  # made by the daemon's start-up checks
        if spec.folder is not None:
            spec.folder.mkdir(parents=True, exist_ok=True)
    journal = Journal(tmp_path / "j.sqlite")
    st = raw.stat()
    entry = journal.enqueue(raw, raw.parent, st.st_size, st.st_mtime_ns, "h")
    return raw, config, journal, Job(entry.id, raw, raw.parent, st.st_size, st.st_mtime_ns, "h", **job_fields)


def _run(config: Any, journal: Journal, job: Any) -> Any:
    """What a worker's run of ``job`` comes back with."""
    from hostplug.daemon.job import run_job
    from hostplug.daemon.recipes import folder_recipe

    return run_job(job, config.folders[0], folder_recipe(config.folders[0]), journal)


def test_a_raw_copied_in_again_without_its_sidecar_keeps_the_archived_sidecar_s_edits(tmp_path: Path,
                                                                                       sample_dng: Path) -> None:
    """A tester re-copied a card: the identical raw came back without its sidecar, which was in the archive, and
    its outputs were rendered again without the rating and keywords they had. The archived copy's sidecar counts."""
    import shutil

    import pyexiv2

    from engine.filehash import file_sha256
    from engine.output.metadata import register_namespace
    from hostplug.daemon.config import parse_config
    from hostplug.daemon.job import Job

    (tmp_path / "in").mkdir()
    (tmp_path / "archive").mkdir()
    raw = Path(shutil.copy(sample_dng, tmp_path / "in" / "a.dng"))
    shutil.copy(sample_dng, tmp_path / "archive" / "a.dng")
    (tmp_path / "archive" / "a.dng.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="5"/></rdf:RDF>'
        '</x:xmpmeta>')
    config = parse_config({"folder": [{"path": "in", "originals": "move", "archive": "archive",
                                       "output": [{"folder": "out", "format": "jpeg", "long_edge": 64}]}]}, tmp_path)
    journal = Journal(tmp_path / "j.sqlite")
    st = raw.stat()
    entry = journal.enqueue(raw, raw.parent, st.st_size, st.st_mtime_ns, file_sha256(raw))
    outcome = _run(config, journal, Job(entry.id, raw, raw.parent, st.st_size, st.st_mtime_ns, file_sha256(raw)))
    assert outcome.kind == "done", outcome
    register_namespace()
    with pyexiv2.Image(str(tmp_path / "out" / "a.jpg")) as image:
        assert image.read_xmp()["Xmp.xmp.Rating"] == "5"
    (tmp_path / "archive" / "a.dng").write_bytes(b"another photo")  # not the same bytes: its sidecar is not read
    entry = journal.enqueue(raw, raw.parent, st.st_size, st.st_mtime_ns, file_sha256(raw))
    again = _run(config, journal, Job(entry.id, raw, raw.parent, st.st_size, st.st_mtime_ns, file_sha256(raw)))
    with pyexiv2.Image(str(again.outputs[0])) as image:
        assert "Xmp.xmp.Rating" not in image.read_xmp()
    journal.close()


def test_a_full_output_disk_keeps_the_raw_queued_without_using_up_its_attempts(tmp_path: Path, sample_dng: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A full output disk sent every raw to _failed/ within seconds (three quick retries), and freeing space
    did not bring them back: the file is not at fault, so it waits in the queue, attempts refunded."""
    import errno
    import os

    from engine.errors import OutputError
    from engine.output import export
    from hostplug.daemon.daemon import DISK_FULL_WAIT_S, Daemon

    def full(*args: object, **kwargs: object) -> None:
        raise OutputError("cannot write out/a.jpg: No space left on device") from OSError(errno.ENOSPC, "full")

    monkeypatch.setattr(export, "render_files", full)
    raw, config, journal, job = _one_raw(tmp_path, sample_dng, daemon={"max_attempts": 1})
    daemon = Daemon(config)
    daemon.journal = journal
    warned = []
    monkeypatch.setattr("hostplug.daemon.daemon._event", lambda message, event, level=20, **f: warned.append(level))
    for _ in range(3):  # more tries than max_attempts allows a temporary failure
        journal.start(job.id)
        outcome = _run(config, journal, job)
        assert outcome.kind == "disk_full"
        daemon._outcome(journal.get(job.id), outcome)
        waiting = journal.get(job.id)
        assert waiting.state == "queued" and waiting.attempts == 0
        assert waiting.not_before > time.time() + 0.5 * DISK_FULL_WAIT_S
    assert raw.exists() and not (tmp_path / "in" / "_failed").exists() and os.listdir(raw.parent) == ["a.dng"]
    assert warned == [logging.WARNING, logging.DEBUG, logging.DEBUG]  # one warning a file, not one every 30 s


def test_earlier_outputs_a_new_recipe_names_otherwise_are_kept_and_named(tmp_path: Path, sample_dng: Path) -> None:
    """With {style} in the template, a raw re-rendered in another style left its earlier output untracked and
    unmentioned: it is kept (it may be retouched) and the outcome names it for the daemon's warning."""
    earlier = tmp_path / "out" / "a_vivid.jpg"
    earlier.parent.mkdir()
    earlier.write_bytes(b"the vivid render, retouched since")
    output = {"folder": "out", "format": "jpeg", "template": "{name}_{style}", "long_edge": 64}
    _, config, journal, job = _one_raw(tmp_path, sample_dng, output, previous_content_hash="h",
                                       previous_recipe_hash="vivid", previous_outputs=(str(earlier),))
    outcome = _run(config, journal, job)
    assert outcome.kind == "done" and outcome.outputs == (str(tmp_path / "out" / "a_natural.jpg"),)
    assert f"the earlier output {earlier} kept" in outcome.message
    assert earlier.read_bytes() == b"the vivid render, retouched since"


def test_a_crop_the_raws_sidecar_sets_is_noted_by_the_daemon(tmp_path: Path, sample_dng: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A tester's: a darktable crop was dropped without a word in the daemon's log too."""
    import logging

    from hostplug.daemon.daemon import Daemon

    raw, config, journal, job = _one_raw(tmp_path, sample_dng, {"folder": "out", "format": "jpeg", "long_edge": 64})
    raw.with_name("a.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" crs:HasCrop="True"/>'
        '</rdf:RDF></x:xmpmeta>')
    import dataclasses

    from engine.filehash import file_sha256

    journal.start(job.id)
    job = dataclasses.replace(job, content_hash=file_sha256(raw))
    outcome = _run(config, journal, job)
    assert outcome.kind == "done" and outcome.notice.startswith(
        "the crop set in Lightroom/Camera Raw (a.xmp) is not applied")
    again = _run(config, journal, dataclasses.replace(job, previous_content_hash=job.content_hash,
                                                      previous_recipe_hash=outcome.recipe_hash,
                                                      previous_outputs=outcome.outputs))
    assert again.kind == "unchanged" and again.notice == outcome.notice  # a crop set later changes no recipe
    daemon = Daemon(config)
    daemon.journal = journal
    logged = []
    monkeypatch.setattr("hostplug.daemon.daemon._event",
                        lambda message, event, level=logging.INFO, **f: logged.append((event, level, message)))
    daemon._outcome(journal.get(job.id), outcome)
    assert ("notice", logging.WARNING, f"{raw}: {outcome.notice}") in logged
    journal.close()


def test_a_file_a_node_cannot_see_or_a_node_that_left_keeps_the_file_queued(tmp_path: Path, sample_dng: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A tester's cluster: a node whose mount of the share had gone reported every file it was given as gone,
    and they were dropped from the queue; a node that left mid-render used up the file's attempt, and a file with
    max_attempts 1 went to _failed/."""
    import dataclasses
    import os
    from types import SimpleNamespace

    from hostplug.daemon.daemon import Daemon
    from hostplug.daemon.job import Outcome
    from hostplug.daemon.workers import Event

    raw, config, journal, job = _one_raw(tmp_path, sample_dng, daemon={"max_attempts": 1})
    os.utime(raw, (raw.stat().st_mtime - 3600, raw.stat().st_mtime - 3600))  # long copied in
    daemon = Daemon(config)
    daemon.journal = journal
    logged = []
    monkeypatch.setattr("hostplug.daemon.daemon._event", lambda message, event, level=20, **f: logged.append(event))
    gone = Outcome(job.id, "gone", f"{raw} disappeared before it was rendered")
    journal.start(job.id)
    daemon._outcome(journal.get(job.id), gone, "127.0.0.3")  # no cluster: the daemon's own view, as before
    assert journal.get(job.id) is None and logged == ["gone"]
    entry = journal.enqueue(raw, raw.parent, raw.stat().st_size, raw.stat().st_mtime_ns, "h")
    job = dataclasses.replace(job, id=entry.id)
    daemon.config = dataclasses.replace(config, cluster="ray://127.0.0.2:10001")
    journal.start(job.id)
    daemon._outcome(journal.get(job.id), dataclasses.replace(gone, job_id=job.id), "127.0.0.3")
    entry = journal.get(job.id)
    assert entry is not None and entry.state == "queued" and entry.attempts == 0 and logged[-1] == "node_cannot_see"
    for _ in range(2):
        journal.start(job.id)
        daemon._handle(Event("node_lost", SimpleNamespace(node="127.0.0.3"), job, detail="its node 127.0.0.3 left"))
        entry = journal.get(job.id)
        assert entry is not None and entry.state == "queued" and entry.attempts == 0 and logged[-1] == "node_lost"
    assert raw.exists() and not (raw.parent / "_failed").exists()
    journal.start(job.id)  # a fourth render lost with a node: it counts now (a raw that brings its node down)
    daemon._handle(Event("node_lost", SimpleNamespace(node="127.0.0.3"), job, detail="its node 127.0.0.3 left"))
    assert journal.get(job.id).state == "failed"
    journal.close()


def test_what_stops_the_daemon_is_in_its_log(tmp_path: Path, sample_dng: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A tester's: a lost cluster stopped the daemon (exit 8) and the JSON log just ended."""
    from hostplug.daemon.daemon import Daemon
    from hostplug.daemon.errors import ClusterLostError

    _, config, journal, _ = _one_raw(tmp_path, sample_dng)
    journal.close()
    daemon = Daemon(config)
    logged = []
    monkeypatch.setattr("hostplug.daemon.daemon._event",
                        lambda message, event, level=20, **f: logged.append((event, level, f.get("exit_code"))))

    def lost() -> None:
        raise ClusterLostError("lost the Ray cluster at ray://127.0.0.2:10001")

    monkeypatch.setattr(daemon, "_tick", lost)
    with pytest.raises(ClusterLostError):
        daemon.run()
    assert ("fatal", 40, ClusterLostError.exit_code) in logged


def test_an_output_replaced_by_another_file_is_not_taken_for_the_raws_render(tmp_path: Path,
                                                                             sample_dng: Path) -> None:
    """A tester's: an output replaced by a darktable TIFF made the identical raw "identical to its last render",
    and nobody was told; a retouch of the output still counts as the render (nothing to render again)."""
    import dataclasses

    import cv2
    import numpy as np
    import pyexiv2

    from engine.filehash import file_sha256
    from engine.output.metadata import register_namespace

    raw, config, journal, job = _one_raw(tmp_path, sample_dng, {"folder": "out", "format": "jpeg", "long_edge": 64})
    job = dataclasses.replace(job, content_hash=file_sha256(raw))
    first = _run(config, journal, job)
    assert first.kind == "done"
    again = dataclasses.replace(job, previous_content_hash=job.content_hash, previous_recipe_hash=first.recipe_hash,
                                previous_outputs=first.outputs)
    assert _run(config, journal, again).kind == "unchanged"
    output = Path(first.outputs[0])
    output.write_bytes(output.read_bytes() + b"\0")  # a retouch: still this raw's render
    assert _run(config, journal, again).kind == "unchanged"
    output.write_bytes(b"an editor's save without our record")  # still the retouch of this raw's render
    assert _run(config, journal, again).kind == "unchanged"
    edited = _run(config, journal, dataclasses.replace(again, previous_recipe_hash="another recipe"))
    assert edited.kind == "failed" and "was changed since hostplug rendered it" in edited.message  # a retouch,
    assert edited.outputs_at_fault  # the raw is fine (its report said "permanent (the file itself)")
    assert output.read_bytes() == b"an editor's save without our record"  # not "a stranger's file" (a tester's)
    tiny = np.full((8, 8, 3), 90, np.uint8)
    cv2.imwrite(str(output), tiny)
    register_namespace()
    with pyexiv2.Image(str(output)) as image:  # another program's export put at the output's name
        image.modify_xmp({"Xmp.xmp.CreatorTool": "darktable 4.2.1"})
    outcome = _run(config, journal, again)
    assert outcome.kind == "failed" and "is not a hostplug render of this raw; it is left alone" in outcome.message
    assert cv2.imread(str(output)).shape == (8, 8, 3)
    journal.close()


def test_a_file_too_large_to_be_a_raw_is_refused_without_reading_it(tmp_path: Path, sample_dng: Path) -> None:
    """A tester's 20 GB file of zeros was hashed on the daemon's loop first, holding up every other file for 45 s."""
    import dataclasses
    import time

    from hostplug.daemon.daemon import Daemon
    from hostplug.daemon.job import MAX_RAW_BYTES

    raw, config, journal, job = _one_raw(tmp_path, sample_dng)
    huge = raw.with_name("huge.dng")
    with huge.open("wb") as f:
        f.truncate(MAX_RAW_BYTES + 1)  # sparse: no disk spent
    daemon = Daemon(config)
    daemon.journal = journal
    started = time.monotonic()
    daemon._settled(huge)
    assert time.monotonic() - started < 3  # not read whole (about 10 s at disk speed)
    entry = journal.lookup(huge)
    assert entry is not None and entry.state == "queued"
    st = huge.stat()
    outcome = _run(config, journal, dataclasses.replace(job, id=entry.id, path=huge, size=st.st_size,
                                                         mtime_ns=st.st_mtime_ns))
    assert outcome.kind == "failed" and "larger than any raw hostplug renders" in outcome.message
    journal.close()


def test_a_full_output_disk_is_seen_before_a_render_is_spent(tmp_path: Path, sample_dng: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # every try of a waiting raw rendered the whole picture before failing at the write
    from collections import namedtuple

    from engine.output import export
    from hostplug.daemon import job as job_module

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(job_module.shutil, "disk_usage", lambda path: usage(1 << 30, (1 << 30) - 4096, 4096))
    monkeypatch.setattr(export, "render_files", lambda *a, **k: pytest.fail("rendered onto a full disk"))
    outcome = _run(*_one_raw(tmp_path, sample_dng)[1:])
    assert outcome.kind == "disk_full" and "No space left on device" in outcome.message


def test_a_raw_replaced_mid_render_stops_it_before_its_outputs_are_written(tmp_path: Path, sample_dng: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the old picture's outputs were published and shown until the new file rendered
    from engine.output import export

    raw, config, journal, job = _one_raw(tmp_path, sample_dng)
    real = export.render_files

    def replaced_midway(*args: object, progress: Any = None, **kwargs: Any) -> object:
        def stage(name: str, index: int, count: int) -> None:
            if index == 3:
                raw.with_name("other").write_bytes(sample_dng.read_bytes() + b"another picture")
                raw.with_name("other").replace(raw)
            progress(name, index, count)

        return real(*args, progress=stage, **kwargs)

    monkeypatch.setattr(export, "render_files", replaced_midway)
    outcome = _run(config, journal, job)
    assert outcome.kind == "changed" and not list((tmp_path / "out").iterdir())


def test_names_a_raw_no_longer_uses_are_free_for_others_once_it_rendered(tmp_path: Path) -> None:
    # "IMG 0002.dng" rendered as IMG_0002.tif before beside-original renders took their original's exact name: its
    # journal row kept that claim, and "IMG_0002.dng" beside it could never render
    journal = Journal(tmp_path / "journal.sqlite")
    spaced = journal.enqueue(tmp_path / "IMG 0002.dng", tmp_path, 1, 1, "a")
    old, new = str(tmp_path / "IMG_0002.tif"), str(tmp_path / "IMG 0002.tif")
    assert journal.claim(spaced.id, [old]) is None
    journal.finish(spaced.id, "r", [old])
    assert journal.claim(spaced.id, [new]) is None  # rendered again under its exact name
    journal.finish(spaced.id, "r", [new])
    underscored = journal.enqueue(tmp_path / "IMG_0002.dng", tmp_path, 1, 1, "b")
    assert journal.claim(underscored.id, [old]) is None
    assert journal.claim(underscored.id, [new]) is not None  # the other raw's current name stays its own


def test_a_raw_deleted_while_it_renders_is_gone_not_still_changing(tmp_path: Path, sample_dng: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # the log said "is still changing; waiting for it to settle", then "went away"
    from engine.output import export

    raw, config, journal, job = _one_raw(tmp_path, sample_dng)
    real = export.render_files

    def deleted_midway(*args: object, progress: Any = None, **kwargs: Any) -> object:
        def stage(name: str, index: int, count: int) -> None:
            if index == 3:
                raw.unlink()
            progress(name, index, count)

        return real(*args, progress=stage, **kwargs)

    monkeypatch.setattr(export, "render_files", deleted_midway)
    outcome = _run(config, journal, job)
    assert outcome.kind == "gone" and "went away" in outcome.message
    journal.close()


def _unmounted(monkeypatch: pytest.MonkeyPatch, mount_point: Path) -> None:
    """Model a share unmounted from ``mount_point``: the folder stays, on another device than at start."""
    from hostplug.daemon import job as job_module

    real = job_module._device
    monkeypatch.setattr(job_module, "_device", lambda path: (real(path) or 0) + 1 if path == mount_point
                        else real(path))


def test_an_output_folder_on_an_unmounted_share_is_not_made_again_on_the_local_disk(
        tmp_path: Path, sample_dng: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The share's mount point stays, an empty local folder: the output folder below it was made again there, and
    the renders filled the local disk. It waits, and is made again once the share is back."""
    from hostplug.daemon.job import output_devices, run_job
    from hostplug.daemon.recipes import folder_recipe

    nas = tmp_path / "nas"
    nas.mkdir()
    _raw, config, journal, job = _one_raw(tmp_path, sample_dng, {"folder": str(nas / "out"), "format": "jpeg"})
    folder = config.folders[0]
    devices = output_devices(config.folders)
    (nas / "out").rmdir()
    with monkeypatch.context() as patch:
        _unmounted(patch, nas)
        outcome = run_job(job, folder, folder_recipe(folder), journal, devices=devices)
    assert outcome.kind == "no_output" and "another device" in outcome.message and outcome.place == str(nas / "out")
    assert not (nas / "out").exists()
    (nas / "out").mkdir()  # the share mounted as its own output folder, then unmounted: an empty local folder
    with monkeypatch.context() as patch:
        _unmounted(patch, nas / "out")
        assert run_job(job, folder, folder_recipe(folder), journal, devices=devices).kind == "no_output"
    assert list((nas / "out").iterdir()) == []


def test_template_folders_are_made_only_below_an_output_folder_that_is_there(tmp_path: Path,
                                                                             sample_dng: Path) -> None:
    """Rendering made the template's folders with parents=True seconds after the output folder was checked: a
    share unmounted meanwhile had its output folder made on the local disk."""
    from hostplug.daemon.job import _make_subfolders, _NoOutputFolderError, output_devices

    _raw, config, _journal, _job = _one_raw(tmp_path, sample_dng,
                                            {"folder": "out", "template": "{date}/{name}", "format": "jpeg"})
    folder, out = config.folders[0], tmp_path / "out"
    devices = output_devices(config.folders)
    _make_subfolders(folder, [str(out / "2026-12-07" / "a.jpg")], devices)
    assert (out / "2026-12-07").is_dir()
    shutil.rmtree(out)
    with pytest.raises(_NoOutputFolderError):
        _make_subfolders(folder, [str(out / "2026-12-07" / "a.jpg")], devices)
    assert not out.exists()
    # an output folder reached by a link (a node's mount of the share): the targets are the resolved paths
    (tmp_path / "real").mkdir()
    out.symlink_to(tmp_path / "real")
    _make_subfolders(folder, [str(tmp_path / "real" / "2026-12-08" / "a.jpg")], output_devices(config.folders))
    assert (tmp_path / "real" / "2026-12-08").is_dir()


def test_running_out_of_memory_names_the_setting_that_decides_it(tmp_path: Path, sample_dng: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # a fuzzer's: an 18 MP raw under memory_limit_mb = 1200 failed with "MemoryError: Unable to allocate 30.4 MiB",
    # which looked like a crash: the render's MemoryError now reaches the worker, which names the limit it set
    from hostplug.daemon.workers import out_of_memory

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError("Unable to allocate 30.4 MiB for an array")

    _raw, config, journal, job = _one_raw(tmp_path, sample_dng)
    monkeypatch.setattr("engine.output.export.render_files", no_memory)
    with pytest.raises(MemoryError):
        _run(config, journal, job)
    said = out_of_memory(1200, MemoryError("Unable to allocate 30.4 MiB for an array"))
    assert said.startswith("out of memory under memory_limit_mb = 1200 (the configuration's [daemon] table")
