"""The devices a render runs on: ``"cpu"``, or ``"cuda"`` (``"cuda:N"``) for an NVIDIA GPU through torch."""

from __future__ import annotations

from typing import Any

from engine.errors import OptionError


def check_device(device: Any, option: str = "device") -> str:
    """``device`` when a render can use it here; OptionError (a wrong option, exit 2) for an unknown device or
    CUDA on a machine without a GPU. ``option`` is what the message calls it (the command line's ``--device``).
    torch is imported only to look for a GPU."""
    if not isinstance(device, str) or not (device == "cpu" or device.split(":")[0] == "cuda"):
        raise OptionError(f"unknown {option} {device!r}; use cpu or cuda")
    if device != "cpu":
        import torch

        if not torch.cuda.is_available():
            raise OptionError(f"{option} {device}: no CUDA GPU is available here; use {option} cpu")
    return device
