"""Fuzz the DNG tag reader: ``engine.io.dng.read_dng_tags`` on mutated raws written to a temporary file."""

from __future__ import annotations

import contextlib
import sys

from _common import Scratch, main, raw_seeds

from engine.errors import HostplugError
from engine.io.dng import read_dng_tags

_scratch = Scratch()


def seeds() -> list[bytes]:
    return raw_seeds()


def one_input(data: bytes) -> None:
    path = _scratch.write("input.dng", data)
    with contextlib.suppress(HostplugError):  # an expected, one-line refusal
        read_dng_tags(path)


if __name__ == "__main__":
    main(one_input, seeds)
    sys.exit(0)
