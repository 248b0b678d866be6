"""The watch configuration: the documented example parses, and bad configurations are refused at start."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostplug.cli import main
from hostplug.daemon.config import EXAMPLE, load_config, parse_config
from hostplug.daemon.errors import ConfigError


def test_documented_example_parses(tmp_path: Path) -> None:
    config = parse_config(tomllib.loads(EXAMPLE), tmp_path)
    folder = config.folders[0]
    assert config.workers == 2 and folder.recurse and folder.originals == "move"
    assert [o.format for o in folder.outputs] == ["tiff", "jpeg"]
    assert folder.outputs[1].long_edge == 2048 and folder.outputs[0].space == "adobe-rgb"
    assert config.journal == folder.path / ".hostplug" / "journal.sqlite"


def test_a_configuration_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    # a fuzzer's: Windows Notepad's UTF-8 byte-order mark was "not valid TOML (Invalid statement (at line 1 ...))"
    path = tmp_path / "studio.toml"
    path.write_text('\ufeff[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "out"\n', encoding="utf-8")
    assert load_config(path).folders[0].path == tmp_path / "in"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "studio.toml"
    path.write_text('[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "out"\n')
    config = load_config(path)
    assert config.folders[0].path == tmp_path / "in"
    assert config.folders[0].outputs[0].folder == tmp_path / "out"


@pytest.mark.parametrize(("text", "message"), [
    ('[daemon]\nworkerz = 2\n[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o"\n', "unknown key 'workerz'"),
    ('[[folder]]\npath = "in"\ncolour = 1\n[[folder.output]]\nfolder = "o"\n', "unknown key 'colour'"),
    ('[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o"\nformat = "gif"\n', "'format' must be one of"),
    ('[[folder]]\npath = "in"\n', "at least one [[folder.output]]"),
    ('[[folder]]\npath = "in"\noriginals = "move"\n[[folder.output]]\nfolder = "o"\n', "needs an 'archive'"),
    ('[daemon]\nworkers = 0\n[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o"\n', "above zero"),
    ('[daemon]\nworkers = "2"\n[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o"\n', "must be int"),
    ('[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o"\nlong_edge = 8\n', "at least 16 pixels"),
    # a JPEG's quality on a TIFF output was ignored, as if it had been read
    ('[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o"\nquality = 50\n', "'quality' is a JPEG's"),
    ('[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o"\nformat = "jpeg"\ncompression = "deflate"\n',
     "'compression' is a TIFF's"),
    ('[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o"\ncompression = "lzw"\n',
     "'compression' must be one of none, deflate"),
])
def test_bad_values_are_refused_with_their_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_a_tiff_output_may_be_compressed_and_older_hashes_stay(tmp_path: Path) -> None:
    # a tester's studio masters could only be uncompressed ("unknown key 'compression'")
    from hostplug.daemon.job import output_options

    path = tmp_path / "c.toml"
    path.write_text('[[folder]]\npath = "in"\n[[folder.output]]\nfolder = "o"\ncompression = "deflate"\n'
                    '[[folder.output]]\nfolder = "p"\n')
    deflated, plain = load_config(path).folders[0].outputs
    assert output_options(deflated).compression == "deflate" and deflated.describe()["compression"] == "deflate"
    assert output_options(plain).compression == "none" and "compression" not in plain.describe()  # as before


def _watch(*args: object):
    return CliRunner().invoke(main, ["watch", *(str(a) for a in args)], catch_exceptions=False)


def _refused(result, message: str) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hostplug: error: ") and message in lines[0], lines[0]


@pytest.fixture
def hot(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


def test_watch_refuses_a_jpeg_quality_for_tiff_outputs(tmp_path: Path, hot: Path) -> None:
    _refused(_watch(hot, "--out", tmp_path / "out", "--quality", "50"), "--quality applies to JPEG outputs only")


def test_watch_refuses_at_start_what_would_fail_every_raw_or_be_ignored(tmp_path: Path, hot: Path) -> None:
    # each of these started, then failed every raw dropped (moved to _failed/) or wrote other outputs than asked
    _refused(_watch(hot, "--out", tmp_path / "out", "--format", "jpeg", "--bits", "16"), "only 8 bits")
    _refused(_watch(hot, "--out", tmp_path / "out", "--long-edge", "200000"), "16<=x<=100000")
    config = tmp_path / "studio.toml"
    config.write_text(f'[[folder]]\npath = "{hot}"\n[[folder.output]]\nfolder = "{tmp_path / "o"}"\n')
    _refused(_watch("--config", config, "--archive", tmp_path / "a", "--format", "jpeg"),
             "--format, --archive belong to the form IN_DIR --out OUT_DIR")
    _refused(_watch("--config", config, "--quality", "80"), "--quality belongs to the form IN_DIR --out OUT_DIR")
    _refused(_watch("--config", config, "--exposure", "0.5"), "recipe options belong to the form IN_DIR --out")
    assert not (tmp_path / "a").exists() and not (tmp_path / "o").exists()
    cuda = tmp_path / "cuda.toml"
    cuda.write_text(f'[daemon]\ndevice = "cuda"\n{config.read_text()}')
    import torch

    if not torch.cuda.is_available():
        _refused(_watch("--config", cuda), "[daemon] device cuda: no CUDA GPU is available here")


def test_format_and_colour_space_are_read_as_people_write_them(tmp_path: Path) -> None:
    # "JPG" and "sRGB" worked on the command line and were refused in a watch configuration
    config = parse_config({"folder": [{"path": "in", "output": [{"folder": "o", "format": "JPG",
                                                                 "space": "Adobe RGB"}]}]}, tmp_path)
    assert (config.folders[0].outputs[0].format, config.folders[0].outputs[0].space) == ("jpeg", "adobe-rgb")


def test_unknown_preset_is_refused(tmp_path: Path, hot: Path) -> None:
    result = _watch(hot, "--out", tmp_path / "out", "--preset", "no-such-look")
    _refused(result, "no-such-look")
    assert result.exit_code == 2  # a wrong option value, as render says it (a preset file that is damaged: 4)


def test_unwritable_output_is_refused(tmp_path: Path, hot: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    _refused(_watch(hot, "--out", tmp_path / "file" / "out"), "not writable")


def test_output_in_the_hot_folder_is_refused(hot: Path) -> None:
    _refused(_watch(hot, "--out", hot), "is the hot folder itself")
    _refused(_watch(hot, "--out", hot / "renders", "--recurse"), "watched recursively")


def test_escaping_template_is_refused(tmp_path: Path, hot: Path) -> None:
    _refused(_watch(hot, "--out", tmp_path / "out", "--template", "../{name}"), "escapes its output folder")


def test_unknown_config_key_is_refused(tmp_path: Path, hot: Path) -> None:
    config = tmp_path / "studio.toml"
    config.write_text(f'[[folder]]\npath = "{hot}"\nrecurse = true\nspeed = 11\n[[folder.output]]\nfolder = "out"\n')
    _refused(_watch("--config", config), "unknown key 'speed'")


def test_overlapping_hot_folders_are_refused(tmp_path: Path, hot: Path) -> None:
    (hot / "sub").mkdir()
    config = tmp_path / "studio.toml"
    config.write_text(f'[[folder]]\npath = "{hot}"\nrecurse = true\n[[folder.output]]\nfolder = "a"\n'
                      f'[[folder]]\npath = "{hot / "sub"}"\n[[folder.output]]\nfolder = "b"\n')
    _refused(_watch("--config", config), "overlap")


def test_missing_hot_folder_is_refused(tmp_path: Path) -> None:
    _refused(_watch(tmp_path / "nowhere", "--out", tmp_path / "out"), "does not exist")


def test_a_bad_configuration_file_is_named_in_its_error_line(tmp_path: Path) -> None:
    config = tmp_path / "studio.toml"
    config.write_text('[[folder]]\npath = "in"\n')
    result = CliRunner().invoke(main, ["watch", "--config", str(config)], catch_exceptions=False)
    _refused(result, f"{config}: [[folder]] 1: at least one [[folder.output]] is required")


def test_watch_options_change_a_recipe_files_stages_as_render_does(tmp_path: Path) -> None:
    """``hostplug watch --recipe FILE --set STAGE.PARAM=...`` merges the change into the file's stage settings, as
    ``render`` does: it used to replace the stage whole, so a version 8 file lost its "auto" with mid2 from ISO 400
    (pinned as it was read) to mid3 from ISO 800, and a file's learned detail its implementation."""
    import json

    from engine.edits import apply_changes, apply_settings
    from engine.pipeline import stage_for
    from engine.recipe import Recipe
    from hostplug.commands.watch import _recipe_settings

    old = tmp_path / "old.json"
    old.write_text(json.dumps({"version": 8, "exposure": 0.2, "stages": {"detail": {"implementation": "learned"}}}))
    changes = {"recipe_file": old, "stages": {"denoise": {"params": {"strength": 50}},
                                              "detail": {"params": {"amount": 30}}}}
    watched = apply_settings(Recipe(), _recipe_settings(changes))
    rendered = apply_changes(None, changes)
    for recipe in (watched, rendered):
        denoise = stage_for("denoise", recipe).resolve_params(recipe)
        assert (denoise.strength, denoise.model, denoise.learned_from_iso) == (50, "mid2", 400.0)
        assert stage_for("detail", recipe).implementation == "learned"
        assert stage_for("detail", recipe).resolve_params(recipe).amount == 30
    assert watched.stages == rendered.stages and watched.exposure == 0.2


@pytest.mark.parametrize("case", ["file then preset", "file's white balance then an option's", "preset's stage"])
def test_a_hot_folders_look_is_what_render_makes_of_the_same_options(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     case: str) -> None:
    """The defaults a recipe file holds undid the folder's presets, a file's white balance and an option's were
    refused as "give either, not both", and --set replaced a preset's stage whole: the watch CLI's look is now
    made as render makes it."""
    import json

    from engine.edits import apply_changes
    from hostplug.commands.watch import _minimal_config, _recipe_settings
    from hostplug.daemon.recipes import folder_recipe

    presets = tmp_path / "config" / "hostplug" / "presets"
    presets.mkdir(parents=True)
    (presets / "ldetail.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/" hostplug:schemaVersion="10"'
        ' hostplug:stages=\'{"detail":{"implementation":"learned"}}\'/></rdf:RDF></x:xmpmeta>')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    file = tmp_path / "look.json"
    file.write_text(json.dumps({"exposure": 0.5} if case == "file then preset" else {"wb": "auto"}))
    changes: dict = {"file then preset": {"recipe_file": file, "presets": ["warm"]},
                     "file's white balance then an option's": {"recipe_file": file, "temperature": 6000.0},
                     "preset's stage": {"presets": ["ldetail"], "stages": {"detail": {"params": {"radius": 2}}}},
                     }[case]
    spec = {"template": "{name}", "format": "tiff", "bits": None, "quality": None, "space": "srgb", "long_edge": None}
    config = _minimal_config(tmp_path / "in", tmp_path / "out", tuple(changes.get("presets", ())), spec, False, None,
                             _recipe_settings(changes))
    assert folder_recipe(config.folders[0]) == apply_changes(None, changes)


def test_sigterm_before_the_daemon_starts_is_a_clean_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # systemd stopping the unit while it started got "terminated (SIGTERM)" and exit 143: a failed unit
    import os
    import signal

    from hostplug.daemon import validate

    monkeypatch.setattr(validate, "validate", lambda config: os.kill(os.getpid(), signal.SIGTERM))
    (tmp_path / "in").mkdir()
    result = CliRunner().invoke(main, ["watch", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0 and "error" not in result.output


def test_too_few_open_files_for_the_workers_is_one_line(tmp_path: Path, hot: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # under `ulimit -n 20` starting two workers failed in os.pipe with a traceback
    import errno

    from hostplug.daemon.workers import WorkerPool

    def no_files(self: WorkerPool) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(WorkerPool, "_spawn", no_files)
    result = _watch(hot, "--out", tmp_path / "out", "--workers", "2")
    _refused(result, "cannot start 2 workers: Too many open files; raise the limit of open files (ulimit -n)")
    assert result.exit_code == 2


def test_a_start_up_refusal_is_a_fatal_event_in_the_json_log(tmp_path: Path) -> None:
    """A tester's: a daemon refused at start (a missing hot folder, a bad cluster address) left its JSON log
    empty; a monitor tailing it saw nothing. A refusal because another daemon runs writes nothing there (a
    reviewer's: it would say of a healthy daemon that it stopped)."""
    import json

    log = tmp_path / "log.jsonl"
    _refused(_watch(tmp_path / "missing", "--out", tmp_path / "out", "--log-json", log), "does not exist")
    (event,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert event["event"] == "fatal" and event["level"] == "error" and "does not exist" in event["error"]
    (tmp_path / "in").mkdir()
    _refused(_watch(tmp_path / "in", "--out", tmp_path / "out", "--cluster", "127.0.0.2:0", "--log-json", log),
             "is not HOST:PORT")
    assert json.loads(log.read_text().splitlines()[-1])["exit_code"] == 2
    # refused because another daemon holds the journal: its log (this one, maybe) is not the refused one's to end
    import os

    from hostplug.daemon.daemon import lock_journal

    journal = tmp_path / "in" / ".hostplug" / "journal.sqlite"
    journal.parent.mkdir()
    held = lock_journal(journal)
    try:
        before = log.read_text()
        _refused(_watch(tmp_path / "in", "--out", tmp_path / "out", "--log-json", log), "another hostplug watch")
        assert log.read_text() == before
    finally:
        if held is not None:
            os.close(held)


def test_an_output_folder_whose_parent_is_missing_is_refused_and_nothing_is_made(tmp_path: Path, hot: Path) -> None:
    # its parents were made without a word: an unmounted share's mount point took the renders on the local disk
    _refused(_watch(hot, "--out", tmp_path / "nas" / "renders" / "out"), "does not exist (a share not mounted")
    assert not (tmp_path / "nas").exists()
