"""The darktable route without Lua: darktable's "copy" export into a hot folder, the render beside the original.

The end-to-end tests use darktable-cli itself for the export (an output name ending in ``.copy`` selects the
"copy" format, and its file name pattern is expanded as in darktable's export module), with the exact path that
``hostplug integrate darktable`` prints, and run ``hostplug watch`` as a real process on the configuration that
command wrote (only its timings shortened). The rest needs no darktable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import CANON, error_lines, hostplug, hostplug_process, read_metadata
from daemon_helpers import SAMPLE_DNG, WatchProcess, states, wait_for

from engine.errors import InputNotFoundError
from engine.filehash import file_sha256
from engine.output.metadata import XMP_PREFIX
from hostplug.daemon.beside import MIRROR_PATTERN, find_original
from hostplug.daemon.config import FolderConfig, OutputSpec, load_config, parse_config
from hostplug.daemon.errors import ConfigError
from hostplug.daemon.journal import Journal
from hostplug.daemon.validate import validate

DARKTABLE_XMP = CANON.parents[1] / "sidecars" / "darktable-4.2.1-colorchart.dng.xmp"  # rating 4, red, 2 tags
needs_darktable = pytest.mark.skipif(shutil.which("darktable-cli") is None,
                                     reason="darktable-cli is not installed (tests/setup-system.sh installs it)")


def _darktable_cli(tmp: Path, *args: object) -> subprocess.CompletedProcess[str]:
    """darktable-cli with a throw-away configuration and library."""
    command = ["darktable-cli", *(str(a) for a in args), "--core", "--configdir", str(tmp / "darktable-config"),
               "--library", ":memory:"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _darktable_render(tmp: Path, raw: Path, out: Path) -> np.ndarray:
    """darktable's own small render of a raw with its sidecar, as pixels."""
    import cv2

    _darktable_cli(tmp, raw, raw.with_name(raw.name + ".xmp"), out, "--width", "300")
    return cv2.imread(str(out), cv2.IMREAD_UNCHANGED)


def _export_copy(tmp: Path, raw: Path, destination: str) -> None:
    """darktable's export module, format "copy", file on disk at ``destination`` (a darktable pattern)."""
    _darktable_cli(tmp, raw, raw.with_name(raw.name + ".xmp"), destination + ".copy")


def _film_roll(folder: Path, name: str) -> Path:
    """A photographer's raw with darktable's sidecar (rating 4, red label, keywords client-a and studio)."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / name
    shutil.copyfile(CANON, raw)
    raw.with_name(name + ".xmp").write_bytes(DARKTABLE_XMP.read_bytes())
    return raw


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@dataclass
class Route:
    tmp: Path
    hot: Path
    raw: Path
    before: dict[str, bytes]
    render_before: np.ndarray
    render_after: np.ndarray
    stdout: str
    daemon_log: str


@pytest.fixture(scope="module")
def route(tmp_path_factory: pytest.TempPathFactory) -> Route:
    """One whole round trip: darktable exports two copies, the daemon renders one and sets the other aside."""
    if shutil.which("darktable-cli") is None:
        pytest.skip("darktable-cli is not installed (tests/setup-system.sh installs it)")
    if not CANON.is_file() or not DARKTABLE_XMP.is_file():
        pytest.skip(f"shared test data not present: {CANON} and {DARKTABLE_XMP}")
    tmp = tmp_path_factory.mktemp("darktable")
    library, hot, config = tmp / "Pictures", tmp / "hot folder", tmp / "darktable.toml"
    raw = _film_roll(library / "2024 Café shoot", "IMG_0001.dng")
    before = _snapshot(raw.parent)
    render_before = _darktable_render(tmp, raw, tmp / "before.png")

    result = hostplug("integrate", "darktable", "--hot-folder", hot, "--library-root", library, "--config", config)
    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert "settle_seconds = 2.0" in text
    config.write_text(text.replace("settle_seconds = 2.0", f"settle_seconds = 0.4\npoll_seconds = 0.3\n"
                                   f"warm_up = false\nlog_json = \"{tmp / 'log.jsonl'}\""))

    _export_copy(tmp, raw, f"{hot}/{MIRROR_PATTERN}")  # the path the command printed
    lost = _film_roll(tmp / "elsewhere", "IMG_0002.dng")
    _export_copy(tmp, lost, f"{hot}/{MIRROR_PATTERN}")
    shutil.rmtree(lost.parent)  # the original went away before the daemon saw its copy
    journal = hot / ".hostplug" / "journal.sqlite"
    with WatchProcess("--config", config, cwd=tmp) as watch:
        wait_for(lambda: sorted(states(journal).values()) == ["done", "failed"], timeout=240,
                 what=f"both copies rendered or failed; {watch.output()}")
        wait_for(lambda: not (hot / raw.parent.relative_to("/")).exists(), what="the rendered copy deleted")
        assert watch.terminate() == 0
        log = watch.output()
    render_after = _darktable_render(tmp, raw, tmp / "after.png")
    return Route(tmp, hot, raw, before, render_before, render_after, result.output, log)


@needs_darktable
def test_darktable_copy_export_lands_where_the_printed_path_says(route: Route) -> None:
    assert f"{route.hot}/$(FILE_FOLDER)/$(FILE_NAME)" in route.stdout and '"copy"' in route.stdout
    failed = route.hot / "_failed" / route.tmp.relative_to("/") / "elsewhere"
    assert sorted(p.name for p in failed.iterdir()) == ["IMG_0002.dng", "IMG_0002.dng.failed.txt",
                                                       "IMG_0002.dng.xmp"]


@needs_darktable
def test_the_render_lands_beside_the_original_raw_with_the_name_darktable_groups(route: Route) -> None:
    output = route.raw.with_suffix(".tif")
    assert sorted(p.name for p in route.raw.parent.iterdir()) == ["IMG_0001.dng", "IMG_0001.dng.xmp", "IMG_0001.tif"]
    with tifffile.TiffFile(output) as tif:
        page = tif.pages[0]
        assert page.dtype == np.uint16 and page.samplesperpixel == 3
    _, xmp = read_metadata(output)
    assert xmp["Xmp.xmpMM.DerivedFrom"] == "IMG_0001.dng"
    assert xmp[f"Xmp.{XMP_PREFIX}.sourcePath"] == str(route.raw)  # the original, not the deleted copy


@needs_darktable
def test_the_render_carries_darktables_rating_colour_label_and_tags(route: Route) -> None:
    _, xmp = read_metadata(route.raw.with_suffix(".tif"))
    assert xmp["Xmp.xmp.Rating"] == "4"
    assert xmp["Xmp.xmp.Label"] == "Red"
    assert {"client-a", "studio"} <= set(xmp["Xmp.dc.subject"])


@needs_darktable
def test_darktable_reads_the_rating_colour_label_and_tags_of_the_render(route: Route) -> None:
    exported = route.tmp / "render-through-darktable.jpg"
    _darktable_cli(route.tmp, route.raw.with_suffix(".tif"), exported, "--width", "100")
    _, xmp = read_metadata(exported)  # what darktable's library made of the TIFF, as it exports it
    assert xmp["Xmp.xmp.Rating"] == "4" and xmp["Xmp.darktable.colorlabels"] == ["0"]  # 0: red
    assert {"client-a", "studio"} <= set(xmp["Xmp.dc.subject"])


@needs_darktable
def test_darktables_raw_and_history_are_untouched_and_render_the_same(route: Route) -> None:
    after = {name: data for name, data in _snapshot(route.raw.parent).items() if name != "IMG_0001.tif"}
    assert after == route.before  # byte for byte: the raw and darktable's sidecar
    assert route.render_before.shape == route.render_after.shape
    assert np.array_equal(route.render_before, route.render_after)


@needs_darktable
def test_the_copy_and_its_sidecar_are_deleted_after_the_render(route: Route) -> None:
    left = sorted(str(p.relative_to(route.hot)) for p in route.hot.rglob("*")
                  if p.is_file() and not p.is_relative_to(route.hot / ".hostplug") and "_failed" not in p.parts)
    assert left == []
    assert "cannot delete" not in route.daemon_log


@needs_darktable
def test_a_copy_whose_original_cannot_be_found_goes_to_failed_saying_where_it_looked(route: Route) -> None:
    report = next((route.hot / "_failed").rglob("IMG_0002.dng.failed.txt")).read_text()
    assert "cannot find its original" in report
    assert str(route.tmp / "elsewhere") in report  # the folder the copy's place spells
    assert f"below {route.tmp / 'Pictures'}" in report  # and the library root
    assert MIRROR_PATTERN in report  # what to change


# -- without darktable ------------------------------------------------------------------------------------------


def test_integrate_darktable_writes_a_config_the_daemon_loads(tmp_path: Path) -> None:
    library = tmp_path / "Pictures"
    library.mkdir()
    config_path = tmp_path / "conf" / "darktable.toml"
    result = hostplug("integrate", "darktable", "--hot-folder", tmp_path / "hot", "--library-root", library,
                      "--config", config_path, "--preset", "punchy")
    assert result.exit_code == 0, result.output
    config = load_config(config_path)
    (folder,) = config.folders
    assert folder.path == tmp_path / "hot" and folder.path.is_dir() and folder.recurse
    assert folder.originals == "delete" and folder.library_roots == (library,) and folder.presets == ("punchy",)
    (output,) = folder.outputs
    assert output.beside_original and output.folder is None and output.template == "{name}"
    assert (output.format, output.bits) == ("tiff", 16)
    steps = [line for line in result.output.splitlines() if line[:2] in ("1.", "2.", "3.")]
    assert len(steps) == 3
    assert f"{tmp_path / 'hot'}/$(FILE_FOLDER)/$(FILE_NAME)" in result.output
    assert f"hostplug watch --config {config_path}" in result.output
    again = hostplug("integrate", "darktable", "--hot-folder", tmp_path / "other", "--config", config_path)
    assert again.exit_code != 0 and "--force" in again.output  # an existing configuration is kept
    assert load_config(config_path).folders[0].path == tmp_path / "hot"


def test_integrate_darktable_writes_its_config_under_xdg_config_home_and_names_a_bad_root_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # as the user's presets and GIMP's folder do
    result = hostplug("integrate", "darktable", "--hot-folder", tmp_path / "hot")
    assert result.exit_code == 0, result.output
    assert load_config(tmp_path / "xdg" / "hostplug" / "darktable.toml").folders[0].path == tmp_path / "hot"
    again = hostplug("integrate", "darktable", "--hot-folder", tmp_path / "hot2", "--library-root", tmp_path / "no")
    assert again.exit_code != 0 and "is not a folder" in again.stderr  # not "exists; pass --force"


def test_integrate_darktable_refuses_an_unknown_preset_and_writes_nothing(tmp_path: Path) -> None:
    result = hostplug("integrate", "darktable", "--hot-folder", tmp_path / "hot", "--config", tmp_path / "c.toml",
                      "--preset", "no-such-preset")
    assert result.exit_code != 0 and not (tmp_path / "c.toml").exists()


@pytest.mark.parametrize(("option", "code", "words"), [
    (("--preset", "nosuch"), 2, "no preset named 'nosuch'"),  # a wrong option value, as an unknown style
    (("--style", "nosuch"), 2, "unknown style 'nosuch'"),  # a wrong option value, as for render
    (("--config", "a_file/darktable.toml"), 5, "cannot write the configuration"),  # its folder is a file
    (("--config", "/proc/hostplug.toml"), 5, "cannot write the configuration"),
])
def test_a_refused_route_leaves_no_hot_folder_and_no_configuration_behind(
        tmp_path: Path, option: tuple[str, str], code: int, words: str) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    flag, value = option
    config = (tmp_path / value) if flag == "--config" else tmp_path / "conf" / "darktable.toml"
    args = [flag, config] if flag == "--config" else [*option, "--config", config]
    before = sorted(tmp_path.rglob("*"))
    result = hostplug("integrate", "darktable", "--hot-folder", tmp_path / "new" / "hot", *args)
    assert result.exit_code == code
    (line,) = error_lines(result.stderr)  # one line, never a traceback
    assert line.startswith("hostplug: error: ") and words in line, line
    assert sorted(tmp_path.rglob("*")) == before  # checked before anything was made


def test_a_route_failing_the_daemons_start_checks_takes_back_what_it_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hostplug.daemon import validate as checks

    def refuse(_config: object) -> None:
        raise ConfigError("journal folder is not writable")

    config = tmp_path / "darktable.toml"
    config.write_text("# the user's own\n")
    monkeypatch.setattr(checks, "validate", refuse)
    result = hostplug("integrate", "darktable", "--hot-folder", tmp_path / "new" / "hot", "--config", config,
                      "--force")
    assert result.exit_code == 2 and error_lines(result.stderr) == [
        "hostplug: error: journal folder is not writable"]
    assert not (tmp_path / "new").exists() and config.read_text() == "# the user's own\n"


def _copy_folder(tmp_path: Path, roots: tuple[Path, ...] = ()) -> FolderConfig:
    hot = tmp_path / "hot"
    hot.mkdir(exist_ok=True)
    return FolderConfig(path=hot, outputs=(OutputSpec(folder=None, beside_original=True),), recurse=True,
                        originals="delete", library_roots=roots)


def _with_sidecar(path: Path, content: bytes, derived_from: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if derived_from:
        path.with_name(path.name + ".xmp").write_text(
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" '
            f'xmpMM:DerivedFrom="{derived_from}"/></rdf:RDF></x:xmpmeta>')
    return path


def test_the_mirrored_path_finds_the_original_and_content_decides(tmp_path: Path) -> None:
    folder = _copy_folder(tmp_path)
    original = _with_sidecar(tmp_path / "roll" / "IMG_1.CR2", b"raw bytes")
    copy = _with_sidecar(folder.path / tmp_path.relative_to("/") / "roll" / "IMG_1.CR2", b"raw bytes", "IMG_1.CR2")
    assert find_original(copy, folder, file_sha256(copy)) == original
    original.write_bytes(b"edited since")  # same name, other content: not this copy's original
    with pytest.raises(InputNotFoundError, match="cannot find its original"):
        find_original(copy, folder, file_sha256(copy))


def test_library_roots_find_the_original_by_darktables_derived_from(tmp_path: Path) -> None:
    library = tmp_path / "Pictures"
    folder = _copy_folder(tmp_path, (library,))
    original = _with_sidecar(library / "2023" / "IMG_7.NEF", b"nef")
    _with_sidecar(library / "2023" / "IMG_8.NEF", b"nef")  # same bytes, other name: not considered
    _with_sidecar(library / ".trash" / "IMG_7.NEF", b"nef")  # hidden folders are not searched
    copy = _with_sidecar(folder.path / "export_1.NEF", b"nef", "IMG_7.NEF")
    assert find_original(copy, folder, file_sha256(copy)) == original


def test_library_roots_never_find_the_hot_folders_own_files_and_refuse_to_guess(tmp_path: Path) -> None:
    folder = _copy_folder(tmp_path, (tmp_path,))  # the hot folder is inside the library root
    copy = _with_sidecar(folder.path / "IMG_3.ARW", b"arw", "IMG_3.ARW")
    with pytest.raises(InputNotFoundError, match=f"below {tmp_path}"):
        find_original(copy, folder, file_sha256(copy))
    _with_sidecar(tmp_path / "a" / "IMG_3.ARW", b"arw")
    _with_sidecar(tmp_path / "backup" / "IMG_3.ARW", b"arw")
    with pytest.raises(InputNotFoundError, match="2 identical originals"):
        find_original(copy, folder, file_sha256(copy))


def test_a_photographers_file_beside_the_raw_is_never_replaced(tmp_path: Path) -> None:
    from hostplug.daemon.job import Job, _left_alone

    target = tmp_path / "IMG_0001.tif"
    job = Job(1, tmp_path / "hot" / "IMG_0001.dng", tmp_path / "hot", 3, 0, "0" * 64)
    assert _left_alone(job, [str(target)]) is None  # free
    target.write_bytes(b"a TIFF the photographer made")
    assert "is not a hostplug render of this raw" in _left_alone(job, [str(target)])


def _export_again(folder: FolderConfig, original: Path, journal: Journal, rating: int) -> object:
    """darktable's copy export of ``original`` (the rating changed in darktable) and the daemon's job for it."""
    import engine
    from hostplug.daemon.job import Job, run_job

    copy = folder.path / original.parent.relative_to("/") / original.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(original, copy)
    copy.with_name(copy.name + ".xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" xmp:Rating="{rating}" '
        f'xmpMM:DerivedFrom="{original.name}"/></rdf:RDF></x:xmpmeta>')
    st, sha = copy.stat(), file_sha256(copy)
    entry = journal.enqueue(copy, folder.path, st.st_size, st.st_mtime_ns, sha)
    return run_job(Job(entry.id, copy, folder.path, st.st_size, st.st_mtime_ns, sha), folder, engine.Recipe(),
                   journal)


def _retouch(image: Path) -> None:
    """What an editor that keeps the XMP (Photoshop, Affinity, Krita) does to a render: other pixels, the same
    metadata, saved a minute after it was written."""
    import cv2
    import pyexiv2

    with pyexiv2.Image(str(image)) as meta:
        xmp = meta.read_xmp()
    pixels = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
    pixels[:8] = 255
    cv2.imwrite(str(image), pixels)
    with pyexiv2.Image(str(image)) as meta:
        meta.modify_xmp(xmp)
    later = image.stat().st_mtime + 60
    os.utime(image, (later, later))


def test_a_render_beside_the_original_that_was_retouched_since_is_never_rendered_over(tmp_path: Path) -> None:
    folder = FolderConfig(path=tmp_path / "hot", outputs=(OutputSpec(folder=None, beside_original=True, format="png",
                                                                     bits=8, long_edge=64),),
                          recurse=True, originals="delete")
    folder.path.mkdir()
    original = tmp_path / "Pictures" / "IMG_0001.dng"
    original.parent.mkdir()
    shutil.copyfile(SAMPLE_DNG, original)
    journal = Journal(tmp_path / "journal.sqlite")
    first = _export_again(folder, original, journal, rating=4)
    assert first.kind == "done", first.message
    render = original.with_suffix(".png")
    written = read_metadata(render)[1][f"Xmp.{XMP_PREFIX}.written"]  # took its name with that time already
    assert render.stat().st_mtime == int(written)
    second = _export_again(folder, original, journal, rating=5)  # untouched since: replaced by the new render
    assert second.kind == "done", second.message
    assert read_metadata(render)[1]["Xmp.xmp.Rating"] == "5"
    _retouch(render)  # an editor that keeps the XMP saved over it, a minute later
    retouched = render.read_bytes()
    third = _export_again(folder, original, journal, rating=3)
    assert third.kind == "failed" and "was changed since hostplug rendered it" in third.message, third.message
    assert render.read_bytes() == retouched


def _drop(folder: FolderConfig, raw: Path, journal: Journal, exposure: float = 0.0) -> object:
    """A raw dropped into ``folder`` (its sidecar setting ``exposure``) and the daemon's job for it."""
    import engine
    from engine.xmp.sidecar import write_recipe
    from hostplug.daemon.job import Job, run_job

    copy = folder.path / raw.name
    if not copy.exists():
        shutil.copyfile(raw, copy)
    write_recipe(copy, engine.Recipe(exposure=exposure))
    st, sha = copy.stat(), file_sha256(copy)
    entry = journal.enqueue(copy, folder.path, st.st_size, st.st_mtime_ns, sha)
    outcome = run_job(Job(entry.id, copy, folder.path, st.st_size, st.st_mtime_ns, sha,
                          previous_content_hash=entry.rendered_hash), folder, engine.Recipe(), journal)
    if outcome.kind == "done":
        journal.finish(entry.id, outcome.recipe_hash or "", list(outcome.outputs))
    return outcome


def _rendered_once(tmp_path: Path) -> tuple[FolderConfig, Journal, Path, Path]:
    """A hot folder with an output folder, and a raw dropped into it and rendered: (folder, journal, raw, render)."""
    folder = FolderConfig(path=tmp_path / "hot", outputs=(OutputSpec(folder=tmp_path / "out", format="png", bits=8,
                                                                     long_edge=64),))
    folder.path.mkdir()
    (tmp_path / "out").mkdir()
    journal = Journal(tmp_path / "journal.sqlite")
    raw = tmp_path / "IMG_0001.dng"
    shutil.copyfile(SAMPLE_DNG, raw)
    assert _drop(folder, raw, journal).kind == "done"
    return folder, journal, raw, tmp_path / "out" / "IMG_0001.png"


def test_an_output_folders_retouched_master_and_a_file_not_ours_are_never_rendered_over(tmp_path: Path) -> None:
    # a master TIFF finished in an editor was replaced by the re-render after a sidecar edit; and a JPEG of the
    # photographer's own (or another daemon's render) at an output's name was replaced without a word
    folder, journal, raw, render = _rendered_once(tmp_path)
    assert _drop(folder, raw, journal, exposure=0.5).kind == "done"  # untouched since: replaced
    with (folder.path / raw.name).open("ab") as converted_again:  # other bytes, the same photo: still its render
        converted_again.write(b"\0" * 64)
    assert _drop(folder, raw, journal, exposure=0.25).kind == "done"
    _retouch(render)
    retouched = render.read_bytes()
    again = _drop(folder, raw, journal, exposure=1.0)
    assert again.kind == "failed" and "was changed since hostplug rendered it" in again.message, again.message
    assert render.read_bytes() == retouched
    theirs = tmp_path / "out" / "IMG_0002.png"
    theirs.write_bytes(b"the photographer's own picture")
    other = tmp_path / "IMG_0002.dng"
    shutil.copyfile(SAMPLE_DNG, other)
    refused = _drop(folder, other, journal)
    assert refused.kind == "failed" and "is not a hostplug render of this raw" in refused.message, refused.message
    assert theirs.read_bytes() == b"the photographer's own picture"


def test_a_retouch_saved_while_the_raw_renders_again_is_never_rendered_over(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # the check at the claim came seconds before the outputs took their names: a master saved in an editor
    # meanwhile was replaced by the new render
    from hostplug.daemon import job as job_module

    folder, journal, raw, render = _rendered_once(tmp_path)
    stop_if_replaced = job_module._stop_if_replaced

    def retouched_midway(job: object) -> object:
        check = stop_if_replaced(job)

        def progress(stage: str, index: int, count: int) -> None:
            if index == count - 1 and not render.with_suffix(".saved").exists():
                _retouch(render)  # the editor saves while the last stage runs
                render.with_suffix(".saved").write_bytes(render.read_bytes())
            check(stage, index, count)
        return progress

    monkeypatch.setattr(job_module, "_stop_if_replaced", retouched_midway)
    again = _drop(folder, raw, journal, exposure=1.0)
    assert again.kind == "failed" and "was changed since hostplug rendered it" in again.message, again.message
    assert render.read_bytes() == render.with_suffix(".saved").read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["IMG_0001.png", "IMG_0001.saved"]  # no partial


@pytest.mark.parametrize(("folder", "output", "message"), [
    ({"originals": "delete"}, {"folder": "out"}, "only for hot folders that receive copies"),
    ({"library_roots": ["lib"]}, {"folder": "out"}, "needs an output with beside_original"),
    ({}, {"folder": "out", "beside_original": True}, "exclude each other"),
    ({}, {}, "'folder' is required"),
])
def test_copy_settings_are_refused_where_they_make_no_sense(tmp_path: Path, folder: dict, output: dict,
                                                            message: str) -> None:
    data = {"folder": [{"path": "hot", **folder, "output": [output]}]}
    with pytest.raises(ConfigError, match=message):
        parse_config(data, tmp_path)


# -- a hot folder that is not a folder of its own (audit: ~/Pictures/2024/a.dng deleted as a "copy") -----------


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder with the photographer's raw in Pictures and a byte-identical backup of it in Backup."""
    home = tmp_path / "home"
    for folder in ("Pictures", "Backup"):
        (home / folder / "2024").mkdir(parents=True)
        shutil.copyfile(SAMPLE_DNG, home / folder / "2024" / "a.dng")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))  # a developer's own XDG_CONFIG_HOME wrote there
    return home


@pytest.mark.parametrize(("hot", "root", "words"), [
    ("Pictures", "Backup", "already holds files"),
    (".", None, "is your home folder"),
    ("..", None, "holds your home"),
    ("Pictures", "Pictures", "is the library root"),
    ("exports", "exports/library", "is inside hot folder"),
])
def test_integrate_darktable_refuses_a_hot_folder_that_is_not_a_folder_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hot: str, root: str | None, words: str) -> None:
    home = _home(tmp_path, monkeypatch)
    if root:
        (home / root).mkdir(parents=True, exist_ok=True)
    before = sorted(tmp_path.rglob("*"))
    result = hostplug("integrate", "darktable", "--hot-folder", home / hot,
                      *(("--library-root", home / root) if root else ()))
    assert result.exit_code != 0
    (line,) = error_lines(result.stderr)
    assert line.startswith("hostplug: error: ") and words in line, line
    assert sorted(tmp_path.rglob("*")) == before  # nothing written: no configuration, no folder
    assert not (home / ".config").exists()
    if "already holds files" in words:
        assert "starts empty" in line and "--hot-folder" in line  # what to do instead


def test_the_daemon_refuses_a_delete_hot_folder_that_overlaps_a_library_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home(tmp_path, monkeypatch)
    folder = {"path": str(home / "Pictures"), "recurse": True, "originals": "delete",
              "output": [{"beside_original": True}]}
    for roots, words in (([str(home / "Pictures")], "is the library root"),
                         ([str(home / "Pictures" / "2024")], "is inside hot folder")):
        config = parse_config({"folder": [{**folder, "library_roots": roots}]}, tmp_path)
        with pytest.raises(ConfigError, match=words):
            validate(config)
    config = parse_config({"folder": [{**folder, "path": str(home), "library_roots": []}]}, tmp_path)
    with pytest.raises(ConfigError, match="is your home folder"):
        validate(config)


def test_the_default_route_inside_its_library_root_is_set_up_again_with_copies_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `--library-root ~` with the default hot folder ~/hostplug-darktable, as earlier versions set it up: the
    # search for originals leaves the hot folder out, so it stays a valid route, also set up a second time
    home = _home(tmp_path, monkeypatch)
    hot = home / "hostplug-darktable"
    assert hostplug("integrate", "darktable", "--hot-folder", hot, "--library-root", home).exit_code == 0
    (hot / "2024").mkdir()
    shutil.copyfile(SAMPLE_DNG, hot / "2024" / "a.dng")  # a copy darktable exported, not yet rendered
    again = hostplug("integrate", "darktable", "--hot-folder", hot, "--library-root", home)
    assert again.exit_code == 0, again.stderr


def test_the_daemon_refuses_a_delete_hot_folder_holding_files_it_never_watched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _home(tmp_path, monkeypatch)
    config = tmp_path / "dt.toml"  # as an older `hostplug integrate darktable` wrote it for the audit
    config.write_text(f'[[folder]]\npath = "{home / "Pictures"}"\nrecurse = true\noriginals = "delete"\n'
                      f'library_roots = ["{home / "Backup"}"]\n[[folder.output]]\nbeside_original = true\n')
    result = hostplug_process("watch", "--config", config)
    assert result.returncode != 0
    (line,) = error_lines(result.stderr)
    assert "already holds" in line and "a.dng" in line and "starts empty" in line, line
    assert (home / "Pictures" / "2024" / "a.dng").read_bytes() == SAMPLE_DNG.read_bytes()  # not deleted
    assert not (home / "Backup" / "2024" / "a.tif").exists()  # nor rendered


def test_integrate_darktable_records_its_new_hot_folder_as_empty(tmp_path: Path) -> None:
    hot, config_path = tmp_path / "hot", tmp_path / "dt.toml"
    assert hostplug("integrate", "darktable", "--hot-folder", hot, "--config", config_path).exit_code == 0
    journal = Journal(load_config(config_path).journal)
    try:  # so copies darktable exports before the daemon's first start are rendered, not refused
        assert journal.knows_folder(hot)
    finally:
        journal.close()


def test_a_render_beside_the_original_takes_its_exact_name_spaces_and_brackets_included(tmp_path: Path) -> None:
    # "IMG 0002.dng" rendered as "IMG_0002.tif": darktable did not group it with its raw, and "IMG_0002.dng" beside
    # it could then not be rendered at all
    from hostplug.daemon.job import output_target
    from hostplug.daemon.templates import TokenValues

    spec = OutputSpec(folder=None, beside_original=True, format="tiff", bits=16)
    for name in ("IMG 0002", "IMG_0002", "IMG (3)", "Café 01"):
        original = tmp_path / f"{name}.dng"
        assert output_target(spec, TokenValues(name="copy"), original) == (tmp_path / f"{name}.tif").resolve()
    kept = OutputSpec(folder=tmp_path / "out", format="tiff", bits=16)  # an output folder's names stay made safe
    assert output_target(kept, TokenValues(name="IMG (3)"), None).name == "IMG_3.tif"


def test_integrate_darktable_takes_an_unknown_style_for_the_wrong_option_it_is(tmp_path: Path) -> None:
    result = hostplug("integrate", "darktable", "--hot-folder", tmp_path / "hot", "--config", tmp_path / "c.toml",
                      "--style", "bogus")
    assert result.exit_code == 2 and "unknown style 'bogus'" in result.stderr
    assert not (tmp_path / "hot").exists() and not (tmp_path / "c.toml").exists()
