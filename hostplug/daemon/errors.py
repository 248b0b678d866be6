"""The daemon's own errors, in the engine's family so the command line prints them as one line."""

from __future__ import annotations

from engine.errors import HostplugError, RecipeError


class ConfigError(HostplugError):
    """The watch configuration is invalid; the daemon refuses to start."""

    exit_code = 2


class LookError(ConfigError, RecipeError):
    """A hot folder's look (presets, style, recipe settings) is invalid: a bad recipe or preset, exit 4 as for
    ``render``, and still a configuration error to whoever catches those."""

    exit_code = RecipeError.exit_code


class JournalError(HostplugError):
    """The journal cannot be opened, or another daemon holds it."""

    exit_code = 7


class TakenError(JournalError):
    """Another daemon holds the journal or watches the hot folder: its log (maybe this configuration's too) is not
    this refused one's to write a fatal event in."""


class ClusterLostError(HostplugError):
    """The connection to the Ray cluster was lost while the daemon ran; its files stay queued in the journal."""

    exit_code = 8
