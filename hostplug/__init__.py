"""What hosts talk to: the ``hostplug`` command, the watch-folder daemon and the editor hand-off."""

from engine import __version__  # one version: pyproject.toml's, as installed

__all__ = ["__version__"]
