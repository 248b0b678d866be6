"""What hosts talk to: the ``hostplug`` command, the watch-folder daemon and the editor hand-off."""

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    """``__version__`` is the engine's (one version: pyproject.toml's, as installed), read on first use."""
    if name == "__version__":
        import engine

        return engine.__version__
    raise AttributeError(f"module 'hostplug' has no attribute {name!r}")
