"""Output filename templates: ``{date}/{camera}/{name}_web`` and the tokens they may use.

A template names an output relative to its output folder, without the suffix (the format adds it). Tokens:

``{name}``   the raw's file name without its suffix            ``IMG_0001``
``{ext}``    the raw's suffix, without the dot                  ``CR2``
``{dir}``    the raw's sub-folder inside the hot folder         ``shoot-a/card1`` (empty at the top)
``{date}``   capture date, a sidecar's corrected one first (else the file's date) ``2024-05-17``
``{camera}`` camera model, made safe for a file name            ``Canon_EOS_550D``
``{style}``  the recipe's picture style                         ``natural``
``{seq}``    the file's number in the journal, stable across restarts; takes a format: ``{seq:05d}``

Token values keep the letters, digits and marks of every script (``東京``) and ``. _ + -``; any other run of
characters (separators, spaces, controls) becomes ``_``. They never contain a path separator or ``..``, so only a
template's own text could leave the output folder; :func:`check_template` refuses such a template (absolute, or
with a ``..`` part) before the daemon starts.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hostplug.daemon.errors import ConfigError

TOKENS = ("name", "ext", "dir", "date", "camera", "style", "seq")
_KEPT_PUNCTUATION = frozenset("._+-")
_DROPPED_RUNS = re.compile("\0+")  # where characters that are not kept were (marked with NUL, never kept itself)


@dataclass(frozen=True)
class TokenValues:
    """What a template's tokens stand for, for one raw."""

    name: str
    ext: str = ""
    dir: str = ""
    date: str = "undated"
    camera: str = "unknown"
    style: str = "natural"
    seq: int = 0
    exact_name: bool = False  # ``name`` is an original's own stem, in the folder the output goes to: kept as it is


def _kept(char: str) -> bool:
    """Whether a character stays in a name: a letter, digit or combining mark of any script (``東京``,
    ``Ärger``, ``हिन्दी``), or one of ``. _ + -``; never a separator, control, format or other character."""
    return char in _KEPT_PUNCTUATION or unicodedata.category(char)[0] in "LNM"


def safe_part(text: str) -> str:
    """``text`` as one harmless file-name part: runs of other characters (``/``, spaces, controls) become one
    ``_``, no leading dot; a name of dots only becomes ``_``. ASCII names give what they always gave."""
    marked = "".join(c if _kept(c) else "\0" for c in text.strip())
    return _DROPPED_RUNS.sub("_", marked).strip("_").lstrip(".") or "_"


def safe_dir(relative: str) -> str:
    """A relative sub-folder with every part made safe (``..`` and empty parts dropped)."""
    parts = [safe_part(part) for part in PurePosixPath(relative).parts if part not in ("", ".", "..", "/")]
    return "/".join(parts)


def check_template(template: str) -> None:
    """Raise :class:`ConfigError` for a template with unknown tokens or one that could leave its output folder."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ConfigError(f"template {template!r} is malformed ({e})") from e
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in TOKENS:
            raise ConfigError(f"template {template!r}: unknown token {{{field}}} (tokens: "
                              + ", ".join(f"{{{t}}}" for t in TOKENS) + ")")
        if conversion:
            raise ConfigError(f"template {template!r}: {{{field}!{conversion}}} conversions are not supported")
        if spec and field != "seq":
            raise ConfigError(f"template {template!r}: only {{seq}} takes a format, not {{{field}:{spec}}}")
        if spec:
            check_seq_spec(template, spec)
    if any(ord(c) < 32 or ord(c) == 127 for c in template):
        raise ConfigError(f"template {template!r} contains a control character; file names must not")
    try:
        sample = expand(template, TokenValues(name="IMG_0001", ext="CR2", dir="a/b", seq=1))
    except ValueError as e:
        raise ConfigError(f"template {template!r}: {e}") from e
    path = PurePosixPath(sample)
    if "\\" in template or path.is_absolute() or ".." in path.parts or not sample.strip("/"):
        raise ConfigError(f"template {template!r} escapes its output folder; use a relative name such as "
                          "'{date}/{name}'")
    if not path.parts or any(part.startswith(".") for part in path.parts):  # "." wrote out/..jpg, hidden
        raise ConfigError(f"template {template!r} makes hidden names (starting with a dot), which file browsers "
                          "and the daemon's own scan pass over; use a name such as '{date}/{name}'")


MAX_SEQ_WIDTH = 12
_SEQ_SPEC = re.compile(r"0?([1-9][0-9]?)?d")


def check_seq_spec(template: str, spec: str) -> None:
    """Only simple whole-number formats for ``{seq}``: ``d``, ``5d``, ``05d``, at most ``MAX_SEQ_WIDTH`` wide (a
    format such as ``>99999999`` would pad every name with 100 million characters; ``c`` makes a control
    character of the number)."""
    match = _SEQ_SPEC.fullmatch(spec)
    if match is None or int(match.group(1) or 0) > MAX_SEQ_WIDTH:
        raise ConfigError(f"template {template!r}: {{seq:{spec}}} is not allowed; use a whole-number format "
                          f"such as {{seq:05d}}, at most {MAX_SEQ_WIDTH} wide")


def expand(template: str, values: TokenValues) -> str:
    """The template with its tokens replaced by safe values (a relative path without suffix)."""
    return template.format(
        name=values.name if values.exact_name else safe_part(values.name),
        ext=safe_part(values.ext),
        dir=safe_dir(values.dir),
        date=safe_part(values.date),
        camera=safe_part(values.camera),
        style=safe_part(values.style),
        seq=values.seq,
    )


def output_path(folder: Path, template: str, values: TokenValues, suffix: str) -> Path:
    """Where an output goes: ``folder / expanded template + suffix``, guaranteed to be inside ``folder``."""
    relative = PurePosixPath(*[p for p in PurePosixPath(expand(template, values)).parts if p != "/"])
    target = (folder / (str(relative) + suffix)).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise ConfigError(f"template {template!r} gives {target}, outside {folder}")
    return target
