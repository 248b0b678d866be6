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


@pytest.mark.parametrize(("template", "message"), [("{nmae}", "unknown token"), ("{name!r}", "conversions"),
                                                   ("{name:>9}", "only {seq}"), ("{name.__class__}", "unknown"),
                                                   ("{name", "malformed")])
def test_malformed_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_template(template)


def test_output_path_stays_inside_its_folder(tmp_path: Path) -> None:
    target = output_path(tmp_path, "{date}/{name}", TokenValues(name="a", date="2024-01-02"), ".jpg")
    assert target == (tmp_path / "2024-01-02" / "a.jpg").resolve()
