"""``hostplug train`` and ``hostplug eval``: reproduce and measure the learned models.

The subcommands live with the models they train: :mod:`hostplug.train_raw` (denoiser, white balance) and
:mod:`hostplug.train_look` (photofinishing styles, detail).
"""

from __future__ import annotations

import click


@click.group()
def train() -> None:
    """Train a learned stage from scratch (uses a GPU when present)."""


@click.group(name="eval")
def evaluate() -> None:
    """Measure the learned stages on data they were not trained on."""


def register_subcommands() -> None:
    """Import the modules that attach subcommands to the groups (kept out of start-up of other commands)."""
    import importlib

    for module in ("hostplug.train_raw", "hostplug.train_look"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
