"""``hostplug integrate gimp``: the plug-in lands where GIMP 3 looks for it, named and marked as GIMP requires,
knows which hostplug to run, can become GIMP's raw importer, and ``--uninstall`` puts everything back."""

from __future__ import annotations

import ast
import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.io.formats import RAW_FORMATS
from hostplug.cli import main
from hostplug.integrations.gimp import gimp_directory, plugin_source, read_raw_loader, set_raw_loader

OTHER_LOADER = "${gimp_plug_in_dir}/plug-ins/file-darktable/file-darktable"
GIMPRC = f'''# GIMP gimprc

(prev-language "C.UTF-8")
(import-raw-plug-in "{OTHER_LOADER}")
(stroke-options
    (width 6))

# end of gimprc
'''


def integrate(gimp_dir: Path, *args: str):
    result = CliRunner(env={"GIMP3_DIRECTORY": str(gimp_dir)}).invoke(main, ["integrate", "gimp", *args],
                                                                     catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def gimp_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "GIMP é" / "3.0"
    folder.mkdir(parents=True)
    return folder


def test_installs_into_a_folder_named_like_the_executable_plugin(gimp_dir: Path) -> None:
    integrate(gimp_dir)
    plugin = gimp_dir / "plug-ins" / "hostplug-raw" / "hostplug-raw.py"
    assert plugin.read_bytes() == plugin_source().read_bytes()
    assert plugin.read_text().startswith("#!/usr/bin/env python3\n")
    assert plugin.stat().st_mode & stat.S_IXUSR and plugin.stat().st_mode & stat.S_IXOTH
    assert not (gimp_dir / "gimprc").exists()  # not asked to become the raw loader


def test_records_the_real_hostplug_command_and_interpreter(gimp_dir: Path) -> None:
    integrate(gimp_dir)
    config = json.loads((gimp_dir / "plug-ins" / "hostplug-raw" / "hostplug-raw.json").read_text())
    hostplug = Path(config["hostplug"])
    assert hostplug.is_file() and os.access(hostplug, os.X_OK) and hostplug.name.startswith("hostplug")
    assert "shims" not in hostplug.parts  # pyenv's shim would not resolve in GIMP's environment
    assert config["python"] == sys.executable


def test_plugin_dir_option_overrides_the_folder(gimp_dir: Path, tmp_path: Path) -> None:
    integrate(gimp_dir, "--plugin-dir", str(tmp_path / "elsewhere"))
    assert (tmp_path / "elsewhere" / "hostplug-raw" / "hostplug-raw.py").is_file()
    assert not (gimp_dir / "plug-ins").exists()


def test_make_default_raw_loader_edits_gimprc_and_uninstall_restores_it(gimp_dir: Path) -> None:
    gimprc = gimp_dir / "gimprc"
    gimprc.write_text(GIMPRC)
    integrate(gimp_dir, "--make-default-raw-loader")
    plugin = gimp_dir / "plug-ins" / "hostplug-raw" / "hostplug-raw.py"
    assert read_raw_loader(gimprc) == str(plugin)
    assert "(stroke-options\n    (width 6))" in gimprc.read_text()  # the rest is kept
    integrate(gimp_dir, "--make-default-raw-loader")  # again: the previous loader is still remembered
    result = integrate(gimp_dir, "--uninstall")
    assert gimprc.read_text() == GIMPRC
    assert "restored the raw loader" in result.output
    assert not (gimp_dir / "plug-ins" / "hostplug-raw").exists()


def test_a_gimprc_kept_elsewhere_and_linked_stays_a_link(gimp_dir: Path, tmp_path: Path) -> None:
    dotfile = tmp_path / "dotfiles" / "gimprc"
    dotfile.parent.mkdir()
    dotfile.write_text(GIMPRC)
    (gimp_dir / "gimprc").symlink_to(dotfile)
    integrate(gimp_dir, "--make-default-raw-loader")
    assert (gimp_dir / "gimprc").is_symlink()
    assert read_raw_loader(dotfile) == str(gimp_dir / "plug-ins" / "hostplug-raw" / "hostplug-raw.py")
    integrate(gimp_dir, "--uninstall")
    assert (gimp_dir / "gimprc").is_symlink() and dotfile.read_text() == GIMPRC


def test_a_gimprc_with_bytes_that_are_no_utf8_is_edited_and_restored_byte_for_byte(gimp_dir: Path) -> None:
    # a comment saved in Latin-1 was a UnicodeDecodeError traceback that left the plug-in half installed
    gimprc = gimp_dir / "gimprc"
    original = GIMPRC.encode() + b"# caf\xe9\n"
    gimprc.write_bytes(original)
    integrate(gimp_dir, "--make-default-raw-loader")
    assert read_raw_loader(gimprc).endswith("hostplug-raw.py") and gimprc.read_bytes().endswith(b"# caf\xe9\n")
    integrate(gimp_dir, "--uninstall")
    assert gimprc.read_bytes() == original


def test_relative_folders_are_recorded_as_absolute_paths(gimp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIMP (and an uninstall run from another folder) would read a relative path against its own folder
    (gimp_dir / "gimprc").write_text(GIMPRC)
    monkeypatch.chdir(gimp_dir)
    integrate(gimp_dir, "--make-default-raw-loader", "--plugin-dir", "plug-ins", "--gimprc", "gimprc")
    plugin = gimp_dir / "plug-ins" / "hostplug-raw" / "hostplug-raw.py"
    assert read_raw_loader(gimp_dir / "gimprc") == str(plugin)
    assert json.loads((plugin.parent / "hostplug-raw.json").read_text())["gimprc"] == str(gimp_dir / "gimprc")
    monkeypatch.chdir("/")
    integrate(gimp_dir, "--uninstall", "--plugin-dir", str(gimp_dir / "plug-ins"))
    assert (gimp_dir / "gimprc").read_text() == GIMPRC


def test_a_gimprc_that_cannot_be_written_leaves_nothing_installed(gimp_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    result = CliRunner(env={"GIMP3_DIRECTORY": str(gimp_dir)}).invoke(
        main, ["integrate", "gimp", "--make-default-raw-loader", "--gimprc", str(tmp_path / "file" / "gimprc")])
    assert result.exit_code != 0 and result.stderr.startswith("hostplug: error: ")
    assert not (gimp_dir / "plug-ins" / "hostplug-raw").exists()


def test_uninstall_removes_the_setting_when_gimp_had_none(gimp_dir: Path) -> None:
    integrate(gimp_dir, "--make-default-raw-loader")
    assert read_raw_loader(gimp_dir / "gimprc") is not None
    integrate(gimp_dir, "--uninstall")
    assert read_raw_loader(gimp_dir / "gimprc") is None


def test_uninstall_leaves_a_raw_loader_the_user_chose_since(gimp_dir: Path) -> None:
    integrate(gimp_dir, "--make-default-raw-loader")
    set_raw_loader(gimp_dir / "gimprc", "/opt/other/raw-loader")
    integrate(gimp_dir, "--uninstall")
    assert read_raw_loader(gimp_dir / "gimprc") == "/opt/other/raw-loader"


def test_uninstall_keeps_files_it_did_not_install(gimp_dir: Path) -> None:
    integrate(gimp_dir)
    mine = gimp_dir / "plug-ins" / "hostplug-raw" / "notes.txt"
    mine.write_text("mine")
    result = integrate(gimp_dir, "--uninstall")
    assert mine.read_text() == "mine" and "left" in result.output
    assert not (gimp_dir / "plug-ins" / "hostplug-raw" / "hostplug-raw.py").exists()


def test_uninstall_without_install_says_so(gimp_dir: Path) -> None:
    assert "nothing to remove" in integrate(gimp_dir, "--uninstall").output


def test_gimprc_strings_are_quoted(tmp_path: Path) -> None:
    gimprc = tmp_path / "gimprc"
    awkward = '/home/ann "quoted"/x\\y/hostplug-raw.py'
    set_raw_loader(gimprc, awkward)
    assert read_raw_loader(gimprc) == awkward


def test_gimp_directory_follows_gimp3_directory_and_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert gimp_directory() == tmp_path / "xdg" / "GIMP" / "3.0"
    monkeypatch.setenv("GIMP3_DIRECTORY", str(tmp_path / "mine"))
    assert gimp_directory() == tmp_path / "mine"


def plugin_table(name: str):
    """A literal table assigned at the plug-in's top level (the plug-in cannot import the engine)."""
    tree = ast.parse(plugin_source().read_text())
    return ast.literal_eval(next(node.value for node in tree.body if isinstance(node, ast.Assign)
                                 and any(getattr(t, "id", None) == name for t in node.targets)))


def test_plugin_dialog_ranges_are_the_recipe_ranges() -> None:
    from engine.recipe import RANGES

    rows = plugin_table("ADJUSTMENTS") + plugin_table("WB_ADJUSTMENTS")
    assert {"exposure", "temperature", "tint"} <= {name for name, *_ in rows}
    for name, _label, low, high, default in rows:
        assert (low, high) == RANGES[name], name
        assert low <= default <= high, name


def test_plugin_registers_every_raw_format_and_is_valid_python() -> None:
    source = plugin_source().read_text()
    tree = ast.parse(source)
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", None) == "RAW_FORMATS" for t in node.targets))
    assert ast.literal_eval(table) == RAW_FORMATS
    assert {"cr3", "cr2", "nef", "arw", "raf", "dng", "orf", "rw2", "x3f", "iiq", "gpr"} <= set(RAW_FORMATS)
    assert "set_handles_raw(True)" in source and re.search(r"Gimp\.main\(HostplugRaw\.__gtype__", source)


def test_gimp_3s_folder_is_not_made_before_gimp_moved_an_earlier_profile_over(tmp_path: Path) -> None:
    # GIMP 3 moves a GIMP 2.10 profile into its folder at its first start, only when that folder is not there: made
    # by the install, it cost the user their brushes, shortcuts and gimprc
    earlier = tmp_path / "GIMP" / "2.10"
    earlier.mkdir(parents=True)
    (earlier / "gimprc").write_text('(theme "Dark")\n')
    result = CliRunner(env={"GIMP3_DIRECTORY": None, "XDG_CONFIG_HOME": str(tmp_path)}).invoke(
        main, ["integrate", "gimp"], catch_exceptions=False)
    assert result.exit_code == 5 and "start GIMP 3 once" in result.stderr
    assert sorted(p.name for p in (tmp_path / "GIMP").iterdir()) == ["2.10"]
    (tmp_path / "GIMP" / "3.0").mkdir()  # GIMP 3 has started once
    again = CliRunner(env={"GIMP3_DIRECTORY": None, "XDG_CONFIG_HOME": str(tmp_path)}).invoke(
        main, ["integrate", "gimp"], catch_exceptions=False)
    assert again.exit_code == 0, again.stderr
