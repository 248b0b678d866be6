"""``hostplug train`` and ``hostplug eval``: reproduce and measure the learned models.

The subcommands live with the models they train: :mod:`hostplug.commands.models_raw` (denoiser, white balance)
and :mod:`hostplug.commands.models_look` (photofinishing styles, detail, the whole pipeline). Each lists its
commands in ``TRAIN_COMMANDS`` and ``EVAL_COMMANDS``; a new module of them goes into :data:`MODULES`.
"""

from __future__ import annotations

import importlib

import click

MODULES = ("hostplug.commands.models_raw", "hostplug.commands.models_look")


@click.group()
def train() -> None:
    """Train a learned stage from scratch (on the CPU; --device cuda for a GPU)."""


@click.group(name="eval")
def evaluate() -> None:
    """Measure the learned stages on data they were not trained on."""


def _register_subcommands() -> None:
    """Attach every module's train and eval subcommands to the two groups (their heavy imports stay inside)."""
    for name in MODULES:
        module = importlib.import_module(name)
        for command in getattr(module, "TRAIN_COMMANDS", ()):
            train.add_command(command)
        for command in getattr(module, "EVAL_COMMANDS", ()):
            evaluate.add_command(command)


_register_subcommands()
