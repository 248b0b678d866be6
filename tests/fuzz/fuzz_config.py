"""Fuzz the daemon's TOML configuration: ``hostplug.daemon.config.load_config`` on a mutated file."""

from __future__ import annotations

import contextlib
import sys

from _common import Scratch, main

from engine.errors import HostplugError
from hostplug.daemon.config import load_config

_scratch = Scratch()

SEEDS = [
    b'hot_folder = "in"\noutput = "out"\n',
    b'hot_folder = "in"\nworkers = 2\nsettle_seconds = 1.5\nrender_timeout = 600\n\n'
    b'[[outputs]]\nfolder = "out"\nformat = "jpeg"\ntemplate = "{date}/{name}_{seq:04d}"\nstyle = "vivid"\n',
    b'[defaults]\nstyle = "natural"\n\n[[folders]]\nhot_folder = "a"\noutput = "b"\nrecipe = { exposure = 0.5 }\n',
    b'hot_folder = "in"\noutput = "out"\nlog_json = "log.jsonl"\njournal = "j.sqlite"\ngrace_seconds = 5\n',
]


def seeds() -> list[bytes]:
    return list(SEEDS)


def one_input(data: bytes) -> None:
    path = _scratch.write("hostplug.toml", data)
    with contextlib.suppress(HostplugError):  # an expected, one-line refusal
        load_config(path)


if __name__ == "__main__":
    main(one_input, seeds)
    sys.exit(0)
