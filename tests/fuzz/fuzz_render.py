"""Fuzz a whole render: ``engine.open`` then ``engine.render`` (demosaic, denoise, white balance, colour, the
photofinish and detail networks, the compiled kernels) of mutated small raws, with the kernels' bounds checks on.

``fuzz_open.py`` stops at the open; this target goes on through every stage, so a value that passed the checks
of :mod:`engine.io.dng` but would index out of bounds in a kernel shows as an ``IndexError`` (a finding) instead of
silent memory corruption: ``HOSTPLUG_DEBUG_KERNELS=1`` is set before the engine loads (the kernels then compile
with ``boundscheck=True``, uncached: the first input takes a minute). Seeds: the cropped raws of
``mutate_render.py`` (a few hundred rows each, so one render takes about a second, not ten).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HOSTPLUG_DEBUG_KERNELS", "1")  # before the engine's kernels are imported

from _common import Scratch, main  # noqa: E402 - after the environment is set
from mutate_render import load_seeds  # noqa: E402

import engine  # noqa: E402
from engine.errors import HostplugError  # noqa: E402

_scratch = Scratch()


def seeds() -> list[bytes]:
    return [seed.data for seed in load_seeds() if seed.name != "bundled-dng-full"]


def one_input(data: bytes) -> None:
    path = _scratch.write("input.dng", data)  # LibRaw tells the formats apart by their content
    try:
        engine.render(engine.open(path))
    except HostplugError:
        return
    finally:
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main(one_input, seeds)
    sys.exit(0)
