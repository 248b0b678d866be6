"""The GIMP plug-in's own logic, without GIMP: its module loaded with GIMP's introspection modules stubbed.

What a script's re-render changes, how the image's memory of its raw is read, and the plug-in's messages. The plug-in
in a real GIMP 3: tests/test_gimp_plugin.py and tests/test_gimp_dialog.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
import types
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.conftest import REPO

PLUGIN = REPO / "integrations" / "gimp" / "hostplug-raw" / "hostplug-raw.py"


@pytest.fixture(scope="module")
def plugin() -> Any:
    """The plug-in module, with gi and its repository stubbed (restored afterwards)."""
    gi = types.ModuleType("gi")
    gi.require_version = lambda *args: None  # type: ignore[attr-defined]
    repository = types.ModuleType("gi.repository")
    for name in ("Gimp", "GdkPixbuf", "GimpUi", "Gio", "GLib", "GObject", "Gtk"):
        setattr(repository, name, mock.MagicMock())
    repository.Gimp.PlugIn = type("PlugIn", (), {})  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in ("gi", "gi.repository")}
    sys.modules.update({"gi": gi, "gi.repository": repository})  # only these two: what else is imported stays
    try:
        spec = importlib.util.spec_from_file_location("hostplug_raw_plugin", PLUGIN)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        for name, module_before in saved.items():
            if module_before is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module_before


class Config:
    """A procedure's config: every argument at its default but those given (names with - as _)."""

    def __init__(self, plugin: Any, **given: Any) -> None:
        self.values = {"style": plugin.DEFAULT_STYLE, "white-balance": plugin.DEFAULT_WB, "keep-stored": True,
                       **{name: default for name, *_rest, default in (*plugin.WB_ADJUSTMENTS, *plugin.ADJUSTMENTS)}}
        self.values.update({name.replace("_", "-"): value for name, value in given.items()})

    def get_property(self, name: str) -> Any:
        return self.values[name]

    def set_property(self, name: str, value: Any) -> None:
        self.values[name] = value
        self.set.append(name)

    @property
    def set(self) -> list[str]:
        return self.__dict__.setdefault("_set", [])


STORED = {"style": "warm", "wb": "custom", "temperature": 3200.0, "tint": 10.0, "exposure": 1.0, "saturation": 20.0}


def test_a_script_changes_only_what_it_sets(plugin: Any) -> None:
    # a tester's exposure-only call rendered natural, as shot: the image's style and white balance were dropped
    changed = plugin.recipe_from_config(Config(plugin, exposure=0.5), STORED, only_set=True)
    assert changed == {**STORED, "exposure": 0.5}
    changed = plugin.recipe_from_config(Config(plugin, temperature=4000.0), STORED, only_set=True)
    assert changed["wb"] == "custom" and changed["temperature"] == 4000.0 and changed["tint"] == 10.0


def test_a_tint_alone_starts_from_the_white_the_render_came_to_or_is_refused(plugin: Any) -> None:
    # a reviewer: a tint alone set 5500 K, a daylight render of what may be a tungsten shot
    as_shot = {"style": "natural", "wb": "as-shot"}
    changed = plugin.recipe_from_config(Config(plugin, tint=5.0), as_shot, True, {"temperature": 3100.0, "tint": 2.0})
    assert (changed["wb"], changed["temperature"], changed["tint"]) == ("custom", 3100.0, 5.0)
    with pytest.raises(plugin.PluginError, match="needs a temperature too"):
        plugin.recipe_from_config(Config(plugin, tint=5.0), as_shot, True, {})


def test_a_script_that_keeps_nothing_stored_gives_the_whole_recipe(plugin: Any) -> None:
    # keep-stored off: defaults are values too (exposure back to 0, natural, as shot)
    changed = plugin.recipe_from_config(Config(plugin, exposure=0.0), STORED, only_set=False)
    assert (changed["style"], changed["wb"], changed["exposure"], changed["saturation"]) == \
        ("natural", "as-shot", 0.0, 0.0)
    assert changed["temperature"] is None and changed["tint"] is None


class Image:
    """An image whose hostplug-recipe parasite holds ``data`` (bytes), or none."""

    def __init__(self, data: bytes | None) -> None:
        self.data = data

    def get_parasite(self, name: str) -> Any:
        return None if self.data is None else mock.Mock(get_data=lambda: list(self.data))


@pytest.mark.parametrize("data", [b"not json", b'{"recipe": {}}', b'{"raw": ["x"], "recipe": {}}',
                                  b'{"raw": "x", "recipe": []}', b'{"raw": "x", "sha256": 5}', b'[1, 2]'])
def test_a_damaged_parasite_is_said_to_be_damaged(plugin: Any, data: bytes) -> None:
    # a tester's {"raw": ["x"]} was "unexpected error ... TypeError"
    with pytest.raises(plugin.PluginError, match="parasite is damaged"):
        plugin.read_recipe(Image(data))
    with pytest.raises(plugin.PluginError, match="not opened from a raw through hostplug"):
        plugin.read_recipe(Image(None))


def test_an_older_plugins_image_has_no_hash_and_is_not_refused(plugin: Any, tmp_path: Path) -> None:
    raw = tmp_path / "IMG 1.dng"
    raw.write_bytes(b"a raw")
    assert plugin.read_recipe(Image(json.dumps({"raw": str(raw), "recipe": {}}).encode())) == \
        (str(raw), {}, None, {}, None)
    damaged_white = json.dumps({"raw": str(raw), "recipe": {}, "white": {"temperature": float("nan"), "tint": 3}})
    assert plugin.read_recipe(Image(damaged_white.encode()))[3] == {"tint": 3.0}  # NaN read as no value
    plugin.check_same_raw(str(raw), None)
    plugin.check_same_raw(str(raw), hashlib.sha256(b"a raw").hexdigest())
    with pytest.raises(plugin.PluginError, match="is not the raw this image was rendered from"):
        plugin.check_same_raw(str(raw), hashlib.sha256(b"another").hexdigest())
    with pytest.raises(plugin.PluginError, match="is not the raw this image was rendered from"):
        plugin.check_same_raw(str(raw), hashlib.sha256(b"a raw").hexdigest(), now="0" * 64)  # replaced meanwhile


def test_messages_are_one_line_that_says_error(plugin: Any) -> None:
    assert plugin.error_line("hostplug: cannot read x") == "hostplug: error: cannot read x"
    assert plugin.error_line("hostplug: error: a\nb") == "hostplug: error: a b"
    assert plugin.preview_error_text("no preview: the render service (pid 7) did not answer in 5 s") == (
        "No preview: the render service (pid 7) did not answer in 5 s; OK still renders ('hostplug serve --stop' "
        "ends a service that hangs)")
    assert plugin.preview_error_text(None) == "No preview: the preview helper stopped"


def test_a_broken_or_killed_hostplug_command_says_what_happened(plugin: Any) -> None:
    # a tester's broken install reached GIMP as "hostplug: ModuleNotFoundError: ..."; a reviewer: a render the
    # out-of-memory killer stopped would have been called a broken install
    with pytest.raises(plugin.PluginError, match=r"failed with exit status 1 \(ModuleNotFoundError: .*\); reinstall"):
        plugin.run_command([sys.executable, "-c", "import no_such_module_here"])
    with pytest.raises(plugin.PluginError, match="stopped by signal 9 \\(out of memory\\?\\)"):
        plugin.run_command([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    with pytest.raises(plugin.PluginError, match="^hostplug: error: a line of its own$") as failed:
        plugin.run_command([sys.executable, "-c", "import sys; sys.exit('hostplug: error: a line of its own')"])
    assert not failed.value.settings  # exit 1: not the settings (the dialog does not open again for it)
    wrong = "import sys; print('hostplug: error: unknown style', file=sys.stderr); sys.exit(2)"
    with pytest.raises(plugin.PluginError) as failed:
        plugin.run_command([sys.executable, "-c", wrong])
    assert failed.value.settings  # a wrong setting: the dialog opens again with what was typed


def fake_hostplug(plugin: Any, monkeypatch: pytest.MonkeyPatch, folder: Path, script: str) -> None:
    """Make the plug-in run ``script`` (Python, given hostplug's arguments in sys.argv) as its hostplug command."""
    command = folder / "hostplug"
    command.write_text(f"#!{sys.executable}\n{script}\n", encoding="utf-8")
    command.chmod(0o755)
    monkeypatch.setattr(plugin, "plugin_config", lambda: {"hostplug": str(command)})


def test_a_mistyped_style_is_a_settings_error_so_the_dialog_opens_again(plugin: Any, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # a tester's mistyped style closed the dialog, and what he had typed was lost: the recipe's error dropped the flag
    fake_hostplug(plugin, monkeypatch, tmp_path, "import sys\nrecipe = sys.argv[sys.argv.index('--recipe') + 1]\n"
                  "print(f'hostplug: error: {recipe}: unknown style \"wram\"', file=sys.stderr); sys.exit(2)")
    with pytest.raises(plugin.PluginError, match='^hostplug: error: unknown style "wram"$') as failed:
        plugin.render_raw(str(tmp_path / "a.dng"), str(tmp_path), {"style": "wram"})
    assert failed.value.settings


def test_a_hostplug_that_prints_no_result_names_the_raw_and_what_to_do(plugin: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # a tester's hostplug that exited 0 silently gave "the render printed no result", naming neither
    fake_hostplug(plugin, monkeypatch, tmp_path, "pass")
    raw = str(tmp_path / "IMG 1.dng")
    said = f"^hostplug: the render of {re.escape(raw)} printed no result; reinstall hostplug, then run 'hostplug "
    with pytest.raises(plugin.PluginError, match=said + "integrate gimp' again$"):
        plugin.render_raw(raw, str(tmp_path))


def test_a_layer_is_named_after_the_style_the_render_used(plugin: Any) -> None:
    # a tester's style "Warm" named the layer "hostplug: Warm", while the recipe said "warm"
    assert plugin.layer_name({"recipe": {"style": "warm"}}, {"style": "Warm"}) == "hostplug: warm"
    assert plugin.layer_name({}, {"style": "vivid"}) == "hostplug: vivid"  # an older hostplug's result


def test_hostplugs_notes_and_the_renders_notice_reach_the_user(plugin: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # a tester's Lightroom crop that was not applied (the JSON's notice) and a hung service passed by (a note on
    # stderr) were never said in GIMP
    fake_hostplug(plugin, monkeypatch, tmp_path, "import json, sys\n"
                  "open(sys.argv[sys.argv.index('-o') + 1], 'wb').close()\n"
                  "print('hostplug: note: the render service (pid 7) did not answer; rendering in this process "
                  "instead', file=sys.stderr)\nprint('a progress line', file=sys.stderr)\n"
                  "print(json.dumps({'recipe': {}, 'notice': 'the sidecar crops\\nthe picture; not applied'}))")
    _tiff, _result, notes = plugin.render_raw(str(tmp_path / "a.dng"), str(tmp_path))
    assert notes == ["hostplug: note: the render service (pid 7) did not answer; rendering in this process instead",
                     "hostplug: note: the sidecar crops the picture; not applied"]
    plugin.Gimp.message.reset_mock()
    plugin.tell(notes)
    assert [call.args[0] for call in plugin.Gimp.message.call_args_list] == notes


def test_the_render_tiffs_layout_and_profile_leave_the_images_metadata(plugin: Any) -> None:
    # a tester's JPEG exported after a profile conversion carried two ICC profiles: the TIFF's, kept in the metadata
    import xml.etree.ElementTree as ElementTree

    kept = ("Exif.Image.Make", "Exif.Image.Orientation", "Exif.Photo.FNumber", "Xmp.hostplug.recipe", "Xmp.xmp.Rating")
    dropped = ("Exif.Image.InterColorProfile", "Exif.Image.StripOffsets", "Exif.Image.StripByteCounts",
               "Exif.Image.RowsPerStrip", "Exif.Image.BitsPerSample", "Exif.Image.XMLPacket", "Exif.Image.ImageWidth")
    tags = ElementTree.fromstring("<metadata>" + "".join(f'<tag name="{name}">1</tag>' for name in kept + dropped)
                                  + "</metadata>")
    assert plugin.without_tiff_layout(tags)
    assert tuple(tag.get("name") for tag in tags) == kept
    assert not plugin.without_tiff_layout(tags)


def test_a_cropped_scaled_or_rotated_image_is_not_re_rendered(plugin: Any) -> None:
    # a tester's re-render of a cropped (or rotated) image added a full 900 x 600 frame at 0,0, and said success
    stored = {"raw": "x.dng", "recipe": {}, "size": [900, 600]}
    assert plugin.read_recipe(Image(json.dumps(stored).encode()))[4] == (900, 600)
    assert plugin.read_recipe(Image(json.dumps({**stored, "size": [900.5, "x"]}).encode()))[4] is None
    plugin.check_same_size((900, 600), (900, 600))
    plugin.check_same_size((400, 300), None)  # an older plug-in's image: its render's size is checked after it
    for now in ((400, 300), (600, 900)):
        with pytest.raises(plugin.PluginError, match=f"^hostplug: this image is {now[0]} x {now[1]} now, not the "
                           "900 x 600 of the raw's render it was opened as .*; open the raw again"):
            plugin.check_same_size(now, (900, 600))


def _chart_print(width: int = 24, height: int = 16) -> dict:
    """A print of a picture that no flip leaves alike: a ramp, brighter to the right and down, with a dark patch."""
    luma = [min(255, 8 * x + 5 * y + (120 if (x, y) in {(3, 3), (4, 3), (3, 4)} else 0)) for y in range(height)
            for x in range(width)]
    return {"width": width, "height": height, "luma": luma}


def test_a_flipped_or_half_turned_image_is_not_re_rendered(plugin: Any) -> None:
    # a tester's flip kept the size, so the re-render's unflipped layer was added over the flipped picture
    rendered = _chart_print()
    darker = {**rendered, "luma": [v // 2 + 10 for v in rendered["luma"]]}  # a re-render at another exposure
    plugin.check_same_way_round(rendered, darker)
    retouched = {**rendered, "luma": [0 if i % 7 == 0 else v for i, v in enumerate(rendered["luma"])]}
    plugin.check_same_way_round(rendered, retouched)
    plugin.check_same_way_round(None, rendered)  # an older plug-in's image: nothing to compare with
    for how, said in (("horizontally", "flipped horizontally"), ("vertically", "flipped vertically"),
                      ("half", "turned half round")):
        turned = {**rendered, "luma": plugin._turned(rendered, how)}
        with pytest.raises(plugin.PluginError, match=f"^hostplug: this image was {said} since the raw's render .*; "
                           "flip or turn it back, re-render"):
            plugin.check_same_way_round(rendered, turned)
    symmetric = {"width": 4, "height": 2, "luma": [10, 200, 200, 10, 10, 200, 200, 10]}
    plugin.check_same_way_round(symmetric, {**symmetric, "luma": plugin._turned(symmetric, "horizontally")})


def test_the_print_is_read_back_from_the_parasite_or_is_none(plugin: Any) -> None:
    picture = _chart_print(3, 2)
    assert plugin.stored_print(Image(json.dumps({"raw": "x", "print": picture}).encode())) == picture
    for damaged in ({"raw": "x"}, {"print": None}, {"print": {**picture, "luma": [1, 2]}},
                    {"print": {**picture, "width": 3.0}}, {"print": {**picture, "luma": ["a"] * 6}}):
        assert plugin.stored_print(Image(json.dumps(damaged).encode())) is None
    assert plugin.stored_print(Image(b"not json")) is None


def test_the_greyed_white_balance_fields_show_what_the_white_balance_came_to(plugin: Any) -> None:
    # a tester's custom 3200 K stayed in the greyed fields after a switch to "As shot"; the preview says the white
    # balance it came to, and the fields show it (set only when it differs: the preview it asks for is the last)
    config = Config(plugin, white_balance="as-shot", temperature=3200.0, tint=10.0)
    plugin.show_white_in_config(config, {"temperature": 5343.0, "tint": 4.3})
    assert (config.values["temperature"], config.values["tint"]) == (5343.0, 4.3)
    plugin.show_white_in_config(config, {"temperature": 5343.0, "tint": 4.3})
    assert config.set == ["temperature", "tint"]
    custom = Config(plugin, white_balance="custom", temperature=3200.0, tint=10.0)
    plugin.show_white_in_config(custom, {"temperature": 5343.0, "tint": 4.3})  # the photographer's own values stay
    assert (custom.values["temperature"], custom.values["tint"]) == (3200.0, 10.0)
    plugin.show_white_in_config(config, None)  # an older service says nothing: nothing changes
