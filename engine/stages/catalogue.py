"""What the recipe must know about the stages without importing them: defaults and params versions, as data.

The recipe stamps stage params with their version when it is stored, and reads stored params without one as
version 1 (:mod:`engine.recipe`). It cannot import the stages to ask them (they import the recipe, and load
torch, which ``import engine`` and the sidecar commands must not), so the facts are written here as plain data.
Each stage's ``Params.VERSION`` states the same number where its params are declared, and the test suite
checks that the two agree (``tests/test_stages.py``): bumping a version means bumping it here too.
"""

from __future__ import annotations

# The implementation a recipe gets unless it asks for another (``--use STAGE=IMPL``).
DEFAULT_IMPLEMENTATIONS: dict[str, str] = {
    "demosaic": "mhc",
    "denoise": "classical",
    "white_balance": "classical",
    "colour": "dng",
    "photofinish": "learned",
    "upsample": "bilateral",
    "detail": "classical",
}

# (stage, implementation) -> the version of its params (``Params.VERSION``).
PARAMS_VERSIONS: dict[tuple[str, str], int] = {
    ("demosaic", "mhc"): 1,
    ("denoise", "classical"): 1,
    ("denoise", "learned"): 1,
    ("white_balance", "classical"): 2,
    ("colour", "dng"): 1,
    ("photofinish", "learned"): 1,
    ("photofinish", "classical"): 1,
    ("upsample", "bilateral"): 1,
    ("upsample", "bilinear"): 1,
    ("detail", "classical"): 1,
    ("detail", "learned"): 1,
}


def current_version(stage: str, implementation: str | None) -> int | None:
    """The params version of a stage implementation (``None``: the default one); None when it is unknown."""
    chosen = implementation if implementation is not None else DEFAULT_IMPLEMENTATIONS.get(stage)
    return None if chosen is None else PARAMS_VERSIONS.get((stage, chosen))
