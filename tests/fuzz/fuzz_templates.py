"""Fuzz output templates (``hostplug/daemon/templates.py``): a template accepted by ``check_template`` must
expand to a path inside its output folder for any token values.

The input's first line is the template; the rest, split on NUL, gives the token values.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import main

from engine.errors import HostplugError
from hostplug.daemon.templates import TokenValues, check_template, output_path

_FOLDER = Path(tempfile.mkdtemp(prefix="hostplug-fuzz-out-"))

SEEDS = [b"{name}", b"{date}/{name}_{seq:05d}\nIMG_0001\x00CR2\x00a/b\x002024-01-01\x00Canon\x00vivid\x007",
         b"{dir}/{camera}/{style}/{name}.{ext}\n../../etc\x00\x00../x\x00..\x00/\x00.hidden\x00-3",
         b"{seq:d}-{name}\n\xff\xfe\x00\x00\x00\x00\x00\x00\x0099999999999"]


def seeds() -> list[bytes]:
    return list(SEEDS)


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    template, _, rest = text.partition("\n")
    parts = rest.split("\x00") + [""] * 7
    try:
        seq = int(parts[6]) if parts[6].strip().lstrip("-").isdigit() else 0
    except ValueError:
        seq = 0
    values = TokenValues(name=parts[0] or "IMG", ext=parts[1], dir=parts[2], date=parts[3] or "undated",
                         camera=parts[4] or "unknown", style=parts[5] or "natural", seq=seq)
    try:
        check_template(template)
    except HostplugError:
        return
    try:
        target = output_path(_FOLDER, template, values, ".jpg")
    except HostplugError:
        return
    if not target.resolve().is_relative_to(_FOLDER.resolve()):
        raise AssertionError(f"template {template!r} with {values} escapes to {target}")
    if any(ord(c) < 32 or ord(c) == 127 for c in str(target)):
        raise AssertionError(f"template {template!r} with {values} gives a control character: {target!r}")


if __name__ == "__main__":
    main(one_input, seeds)
    sys.exit(0)
