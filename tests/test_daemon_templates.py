"""Output name templates: tokens, safe values, and templates that would leave the output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostplug.daemon.errors import ConfigError
from hostplug.daemon.templates import TokenValues, check_template, expand, output_path


def test_tokens_expand_to_safe_values() -> None:
    values = TokenValues(name="IMG 0001", ext="CR2", dir="shoot/card 1", date="2024-05-17",
                         camera="Canon EOS 550D", style="natural", seq=7)
    expanded = expand("{date}/{camera}/{name}_{style}_{seq:04d}", values)
    assert expanded == "2024-05-17/Canon_EOS_550D/IMG_0001_natural_0007"
    assert expand("{dir}/{name}.{ext}", values) == "shoot/card_1/IMG_0001.CR2"


def test_token_values_cannot_climb_out() -> None:
    values = TokenValues(name="../../etc/passwd", dir="../../x", camera="../..")
    assert ".." not in Path(expand("{dir}/{camera}/{name}", values)).parts


@pytest.mark.parametrize("template", ["../{name}", "/tmp/{name}", "a/../../{name}", "..\\{name}", ""])
def test_template_that_escapes_the_output_folder_is_refused(template: str) -> None:
    with pytest.raises(ConfigError, match="escapes its output folder"):
        check_template(template)


@pytest.mark.parametrize("template", [".", ".{name}", "{date}/.hidden/{name}"])
def test_a_template_that_makes_hidden_names_is_refused(template: str) -> None:
    # a fuzzer's "." wrote out/..jpg, which file browsers hide
    with pytest.raises(ConfigError, match="makes hidden names"):
        check_template(template)
    check_template("./{name}")  # a "." folder is no hidden name (a reviewer's)
    check_template("{date}/./{name}")


@pytest.mark.parametrize(("template", "message"), [("{nmae}", "unknown token"), ("{name!r}", "conversions"),
                                                   ("{name:>9}", "only {seq}"), ("{name.__class__}", "unknown"),
                                                   ("{name", "malformed")])
def test_malformed_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_template(template)


def test_output_path_stays_inside_its_folder(tmp_path: Path) -> None:
    target = output_path(tmp_path, "{date}/{name}", TokenValues(name="a", date="2024-01-02"), ".jpg")
    assert target == (tmp_path / "2024-01-02" / "a.jpg").resolve()


@pytest.mark.parametrize(("name", "expected"), [
    ("東京", "東京"), ("大阪", "大阪"), ("Ärger über", "Ärger_über"), ("хлеб", "хлеб"),
    ("हिन्दी", "हिन्दी"),  # combining vowel signs kept
    ("e\u0301te\u0301", "e\u0301te\u0301"),  # decomposed accents (names from a Mac) kept
    ("IMG 0001", "IMG_0001"), ("_DSC1234", "DSC1234"), ("a__b", "a__b"),  # ASCII names as before
])
def test_letters_and_digits_of_every_script_are_kept(name: str, expected: str) -> None:
    assert expand("{name}", TokenValues(name=name)) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("東京/大阪", "東京_大阪"), ("a\\b", "a_b"), ("bad\nline", "bad_line"), ("x\x00y", "x_y"),
    ("\u202egpj.exe", "gpj.exe"),  # a right-to-left override cannot disguise a name
    ("...", "_"), ("．．", "_"), (".東京", "東京"), ("東京\u3000大阪", "東京_大阪"),
])
def test_separators_controls_and_names_of_dots_are_still_refused(name: str, expected: str) -> None:
    assert expand("{name}", TokenValues(name=name)) == expected


def test_two_japanese_names_get_two_outputs_and_the_length_limit_counts_bytes(tmp_path: Path) -> None:
    from hostplug.daemon.job import overlong_part

    tokyo, osaka = (output_path(tmp_path, "{name}", TokenValues(name=n), ".tif") for n in ("東京", "大阪"))
    assert tokyo.name == "東京.tif" and osaka.name == "大阪.tif"
    fits = output_path(tmp_path, "{name}", TokenValues(name="東" * 83), ".tif")  # 249 + 4 bytes
    assert overlong_part([str(fits)]) is None
    too_long = output_path(tmp_path, "{name}", TokenValues(name="東" * 84), ".tif")  # 88 characters, 256 bytes
    assert overlong_part([str(fits), str(too_long)]) == too_long.name
    folder = output_path(tmp_path, "{name}/web", TokenValues(name="東" * 86), ".jpg")  # a folder's name too
    assert overlong_part([str(folder)]) == "東" * 86


def test_date_is_the_capture_time_a_sidecar_corrected(tmp_path: Path) -> None:
    """A re-tester's: outputs carried the capture time corrected in Lightroom, and were filed under the camera's
    date by {date}."""
    import datetime
    from types import SimpleNamespace

    from engine.recipe import Recipe
    from hostplug.daemon.config import FolderConfig
    from hostplug.daemon.job import Job, token_values

    job = Job(1, tmp_path / "nk.dng", tmp_path, 1, 0, "h")
    source = SimpleNamespace(camera=SimpleNamespace(timestamp=datetime.datetime(2026, 7, 20, 22, 20), make="N",
                                                    model="D500"))
    folder = FolderConfig(path=tmp_path, outputs=())
    assert token_values(job, folder, Recipe(), source).date == "2026-07-20"
    corrected = {"Xmp.exif.DateTimeOriginal": "2011-11-11T11:11:11+11:00"}
    assert token_values(job, folder, Recipe(), source, corrected).date == "2011-11-11"
