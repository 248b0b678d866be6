"""The engine's exception family.

Every error a user can cause derives from :class:`HostplugError`; its message is one line that says what is
wrong and what to do, so the command line can print it as it is.
"""

from __future__ import annotations

from typing import Any


class HostplugError(Exception):
    """Base class of every error the engine reports to a user."""

    exit_code = 1


class InputNotFoundError(HostplugError):
    """The input file does not exist or cannot be read."""

    exit_code = 2


class OptionError(HostplugError):
    """An option has a value that cannot be used here (a time limit of 0, ``--device cuda`` without a GPU)."""

    exit_code = 2


class UnsupportedInputError(HostplugError):
    """The file is not an image format the engine can decode (for example a VC-5 compressed GoPro raw)."""

    exit_code = 3


class CorruptInputError(HostplugError):
    """The file claims a supported format but its data is damaged or truncated."""

    exit_code = 3


class RecipeError(HostplugError):
    """A recipe (from the command line, a JSON file or a sidecar) has an invalid value."""

    exit_code = 4


class UnknownStyleError(RecipeError):
    """A recipe names a style the engine does not have (``Recipe(style=...)``, a recipe file: exit 4; the
    command line reports an unknown ``--style`` as a wrong option, exit 2, and a sidecar's as a
    :class:`StoredSettingError`)."""


class SidecarError(RecipeError):
    """An XMP sidecar or preset file is malformed, unsafe or from a newer hostplug; it is left untouched."""


class StoredSettingError(SidecarError):
    """hostplug's own settings in a sidecar or preset are damaged or from a newer hostplug (the file's XML reads)."""


class NewerSettingsError(StoredSettingError):
    """hostplug's settings in a sidecar or preset were written by a newer hostplug: never replaced by this one's."""


class OutputError(HostplugError):
    """The output cannot be written (folder missing or read-only, file exists, bad format)."""

    exit_code = 5


class OutputTakenError(OutputError):
    """The output's name was taken while the render ran (another render of the same name at the same time)."""


class OutputOptionError(OptionError, OutputError):
    """The output options contradict each other or the output's name (16 bits for a JPEG, ``--format jpeg`` for a
    ``.tif``): a wrong option (exit 2), still an :class:`OutputError` for a script that catches those."""

    exit_code = 2


class RecipeOptionError(OptionError, RecipeError):
    """A recipe setting given as an option that cannot apply to the file's recipe (a tint alone, where the recipe
    holds no custom temperature): a wrong option (exit 2), still a :class:`RecipeError` for a script."""

    exit_code = 2


class UnknownPresetError(RecipeOptionError, SidecarError):
    """No preset has the name asked for: a wrong option value (exit 2, as an unknown style), still a
    :class:`SidecarError` for a script that catches those."""


class ModelError(HostplugError):
    """A model's weights are missing, corrupt or do not match their manifest."""

    exit_code = 6


def shown(value: Any, limit: int = 60) -> str:
    """A value as a message quotes it: lists as lists (as the user typed them), a long one cut short, so that a
    bad value of megabytes still makes one readable line."""
    text = repr(_as_lists(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_lists(value: Any) -> Any:
    return [_as_lists(v) for v in value] if isinstance(value, tuple | list) else value
