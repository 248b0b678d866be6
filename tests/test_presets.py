"""Presets: XMP files in hostplug's namespace, shipped and per user, that stack with the last one winning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine import Recipe, StageSettings
from engine.errors import SidecarError, UnknownPresetError
from engine.stages.photofinish import CLASSICAL_LOOKS
from engine.xmp.presets import apply_presets, list_presets, load_preset, shipped_folder, user_folder

REPO = Path(__file__).resolve().parents[1]
ADJUSTMENTS = ("bright", "punchy", "soft-contrast", "monochrome", "warm-5200")


@pytest.fixture(autouse=True)
def user_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user preset folder for every test (never the real ~/.config)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    folder = tmp_path / "config" / "hostplug" / "presets"
    folder.mkdir(parents=True)
    return folder


def _preset_file(folder: Path, name: str, properties: str) -> Path:
    path = folder / f"{name}.xmp"
    path.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/" {properties}/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    return path


def test_shipped_presets_include_adjustments_and_one_per_style(user_presets: Path) -> None:
    assert user_folder() == user_presets
    presets = {p.name: p for p in list_presets()}
    assert set(ADJUSTMENTS) | set(CLASSICAL_LOOKS) <= set(presets)
    for style in CLASSICAL_LOOKS:
        assert presets[style].kind == "style" and presets[style].settings["style"] == style
    for name in ADJUSTMENTS:
        assert presets[name].kind == "adjustment" and presets[name].description
        assert presets[name].path.parent == shipped_folder()


def test_repository_presets_folder_is_the_shipped_one() -> None:
    assert (REPO / "presets").resolve() == shipped_folder().resolve()
    assert sorted(p.name for p in (REPO / "presets").glob("*.xmp")) == sorted(
        p.name for p in shipped_folder().glob("*.xmp"))


def test_a_preset_sets_only_its_own_settings() -> None:
    start = Recipe(exposure=1.0, contrast=40, sharpening=70)
    recipe = load_preset("monochrome").apply(start)
    assert recipe == start.replace(saturation=-100.0, vibrance=0.0)
    warm = load_preset("warm-5200").apply(Recipe())
    assert (warm.wb, warm.temperature) == ("custom", 5200.0)


def test_presets_stack_and_the_last_one_wins() -> None:
    punchy_then_soft = apply_presets(Recipe(), ["punchy", "soft-contrast"])
    soft_then_punchy = apply_presets(Recipe(), ["soft-contrast", "punchy"])
    assert punchy_then_soft.contrast == -25.0 and soft_then_punchy.contrast == 30.0
    assert punchy_then_soft.vibrance == 25.0 and soft_then_punchy.shadows == 20.0  # the rest accumulates


def test_user_preset_overrides_a_shipped_one_by_name(user_presets: Path) -> None:
    path = _preset_file(user_presets, "Bright", 'hostplug:schemaVersion="1" hostplug:exposure="1.5"')
    preset = load_preset("bright")
    assert preset.path == path and preset.settings == {"exposure": 1.5}
    assert [p.path for p in list_presets() if p.name == "bright"] == [path]


def test_auto_is_written_in_a_preset_sidecar_or_recipe_file_as_on_the_command_line(user_presets: Path,
                                                                                    tmp_path: Path) -> None:
    """A tester's: --sharpening auto worked, but "auto" in a preset, a sidecar or a --recipe file was "not a
    number", so no preset could hand sharpening or denoising back to the style and the ISO."""
    from engine.xmp.recipe_properties import properties_to_recipe

    _preset_file(user_presets, "auto-amounts", 'hostplug:schemaVersion="16" hostplug:sharpening="auto" '
                 'hostplug:denoise="Auto"')
    recipe = apply_presets(Recipe(sharpening=70, denoise=20), ["auto-amounts"])
    assert (recipe.sharpening, recipe.denoise) == (None, None)
    assert properties_to_recipe({"schemaVersion": "16", "sharpening": "auto"}, "sidecar").sharpening is None
    assert Recipe.from_dict({"sharpening": "auto", "exposure": -0.0}) == Recipe()  # and -0 is 0
    assert str(Recipe(exposure=-0.0).exposure) == "0.0"


def test_user_preset_with_stage_settings(user_presets: Path) -> None:
    _preset_file(user_presets, "no-denoise",
                 """hostplug:schemaVersion="1" hostplug:stages='{"denoise":{"enabled":false}}'""")
    recipe = apply_presets(Recipe(stages={"detail": StageSettings(params={"amount": 1})}), ["no-denoise"])
    assert recipe.stages == {"detail": StageSettings(params={"amount": 1}), "denoise": StageSettings(enabled=False)}


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(SidecarError, match=r"no preset named 'sepia'; known presets: bright, .*warm-5200"):
        load_preset("sepia")


@pytest.mark.parametrize("properties", [
    'hostplug:schemaVersion="1" hostplug:saturation="-300"',
    'hostplug:schemaVersion="99" hostplug:exposure="1"',
    'hostplug:exposure="1"',
    'hostplug:schemaVersion="10" hostplug:wb="auto" hostplug:temperature="5000"',  # refused when applied, unnamed
])
def test_malformed_user_preset_is_refused_with_its_path(user_presets: Path, properties: str) -> None:
    path = _preset_file(user_presets, "broken", properties)
    with pytest.raises(SidecarError) as error:
        apply_presets(Recipe(), ["broken"])
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_presets_with_a_broken_user_preset_lists_the_others_and_exits_4(user_presets: Path) -> None:
    from conftest import error_lines, hostplug

    broken = user_presets / "broken.xmp"
    broken.write_text("<x:xmpmeta")
    result = hostplug("presets")
    assert result.exit_code == 4  # a bad preset, as the README lists
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"hostplug: error: {broken}: ")
    assert "punchy" in result.stdout and "user presets:" in result.stdout
    assert "(exit 4" in hostplug("presets", "--help").stdout


def test_a_hand_written_presets_stage_params_are_of_the_current_version(user_presets: Path) -> None:
    # Without a version they used to be read as version 1, which silently ran the denoiser of recipe version 2
    from engine.pipeline import stage_for

    _preset_file(user_presets, "dn30", """hostplug:schemaVersion="9" """
                 """hostplug:stages='{"denoise":{"params":{"strength":30}}}'""")
    recipe = apply_presets(Recipe(), ("dn30",))
    assert recipe.stage("denoise").params == {"strength": 30}
    default = stage_for("denoise", Recipe()).resolve_params(Recipe())
    assert stage_for("denoise", recipe).resolve_params(recipe) == dataclasses.replace(default, strength=30)


def test_the_listing_names_a_preset_every_use_would_refuse(user_presets: Path) -> None:
    path = _preset_file(user_presets, "contradicts", 'hostplug:schemaVersion="10" hostplug:wb="auto" '
                                                     'hostplug:temperature="5000"')
    errors: list[SidecarError] = []
    names = [p.name for p in list_presets(on_error=errors.append)]
    assert "contradicts" not in names and "warm" in names
    assert len(errors) == 1 and str(path) in str(errors[0])


def test_a_structured_preset_setting_is_refused_and_a_broken_preset_is_no_known_name(user_presets: Path) -> None:
    """A tester's: a preset's style as an rdf:Alt was passed over and the rest applied, exit 0; and "known
    presets" named broken files."""
    path = user_presets / "alt.xmp"
    path.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:hostplug="http://ns.hostplug.org/xmp/1.0/" hostplug:schemaVersion="16" '
        'hostplug:exposure="1"><hostplug:style><rdf:Alt><rdf:li xml:lang="x-default">vivid</rdf:li></rdf:Alt>'
        '</hostplug:style></rdf:Description></rdf:RDF></x:xmpmeta>')
    with pytest.raises(SidecarError, match="hostplug:style holds an array or structure"):
        apply_presets(Recipe(), ["alt"])
    described = user_presets / "described.xmp"  # a description as a language alternative is fine (a reviewer's)
    described.write_text(path.read_text().replace("hostplug:style", "hostplug:description"))
    assert apply_presets(Recipe(), ["described"]).exposure == 1
    with pytest.raises(SidecarError) as error:
        load_preset("sepia")
    assert "alt" not in str(error.value).split("known presets: ")[1].split(" (")[0].split(", ")


def test_preset_names_are_found_as_people_type_them_and_a_clash_is_named(user_presets: Path) -> None:
    """A tester's: "café" typed did not find the file a Mac wrote (decomposed é), "STRASSE" did not find
    Straße.xmp, and of UPPER.xmp and upper.XMP one was used without a word."""
    import unicodedata

    _preset_file(user_presets, unicodedata.normalize("NFD", "Café"), 'hostplug:schemaVersion="1" hostplug:exposure="1"')
    _preset_file(user_presets, "Straße", 'hostplug:schemaVersion="1" hostplug:contrast="5"')
    assert load_preset("café").settings == {"exposure": 1.0} and load_preset("STRASSE").settings == {"contrast": 5.0}
    assert "café" in [p.name for p in list_presets()]
    _preset_file(user_presets, "UPPER", 'hostplug:schemaVersion="1" hostplug:contrast="5"')
    (user_presets / "upper.XMP").write_text((user_presets / "UPPER.xmp").read_text().replace('"5"', '"4"'))
    with pytest.raises(SidecarError, match="2 presets of one name, UPPER.xmp, upper.XMP; rename or remove all but"):
        load_preset("upper")
    with pytest.raises(UnknownPresetError) as refused:
        load_preset("x" * 5000)
    assert len(str(refused.value)) < 2000


def test_a_clash_of_preset_files_is_a_bad_preset_on_the_command_line_too(user_presets: Path) -> None:
    # a re-tester's: exit 2 ("see: hostplug render --help") from render, 4 from `presets`
    from click.testing import CliRunner

    from hostplug.cli import main

    _preset_file(user_presets, "UP", 'hostplug:schemaVersion="1" hostplug:contrast="5"')
    (user_presets / "up.XMP").write_text((user_presets / "UP.xmp").read_text())
    result = CliRunner().invoke(main, ["edit", str(user_presets / "x.dng"), "--preset", "up"])
    assert result.exit_code == 4 and "2 presets of one name" in result.stderr and "--help" not in result.stderr
