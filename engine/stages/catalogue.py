"""What the recipe must know about the stages without importing them: defaults and params versions, as data.

The recipe stamps stage params with their version when it is stored, and reads stored params without one as
version 1 (:mod:`engine.recipe`). It cannot import the stages to ask them (they import the recipe, and load
torch, which ``import engine`` and the sidecar commands must not), so the facts are written here as plain data.
Each stage's ``Params.VERSION`` states the same number where its params are declared, and the test suite
checks that the two agree (``tests/test_stages.py``): bumping a version means bumping it here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The implementation a recipe gets unless it asks for another (``--use STAGE=IMPL``).
DEFAULT_IMPLEMENTATIONS: dict[str, str] = {
    "demosaic": "mhc",
    # the learned denoiser where it pays (docs/models.md, "Where the learned denoiser pays"), classical below
    "denoise": "auto",
    "white_balance": "classical",
    "colour": "dng",
    "photofinish": "learned",
    "upsample": "bilateral",
    "detail": "classical",
}

# (stage, implementation) -> the version of its params (``Params.VERSION``).
PARAMS_VERSIONS: dict[tuple[str, str], int] = {
    ("demosaic", "mhc"): 6,
    ("denoise", "classical"): 2,
    ("denoise", "learned"): 6,
    ("denoise", "auto"): 6,
    ("white_balance", "classical"): 4,
    ("colour", "dng"): 3,
    ("photofinish", "learned"): 6,
    ("photofinish", "classical"): 6,
    ("upsample", "bilateral"): 1,
    ("upsample", "bilinear"): 1,
    ("detail", "classical"): 1,
    ("detail", "learned"): 2,
}


# What recipes of an older recipe version (engine.recipe.RECIPE_VERSION) meant by saying nothing: the default
# implementation each stage had then, and, for the stage implementations whose params a later version changed,
# the params version that a recipe storing no params got then: (stage, implementation, params version).
FORMER_DEFAULT_IMPLEMENTATIONS: dict[int, dict[str, str]] = {
    v: {"demosaic": "mhc", "photofinish": "learned", "denoise": "classical" if v < 4 else "auto",
        "white_balance": "classical", "colour": "dng"}
    for v in range(1, 17)}
_DEMOSAIC_V1 = ("demosaic", "mhc", 1)  # version 2 applies a DNG's GainMaps, warps, DefaultCrop; 1 not
_DEMOSAIC_V2 = ("demosaic", "mhc", 2)  # version 3 repairs a DNG's bad pixels; 2 not
_DEMOSAIC_V3 = ("demosaic", "mhc", 3)  # version 4 takes out the demosaic's false colour; 3 not
_DEMOSAIC_V4 = ("demosaic", "mhc", 4)  # version 5 crops a raw that is no DNG to LibRaw's picture area; 4 not
_DEMOSAIC_V5 = ("demosaic", "mhc", 5)  # version 6 unprocesses an image input (engine.camera_look); 5 decoded it
# version 2 desaturates around luminance (-100 is black and white); 1 in the chroma table alone
_PHOTOFINISH_V1 = (("photofinish", "learned", 1), ("photofinish", "classical", 1))
# classical params 2 and auto 4 say whether the classical strength follows a reduced render's size; recipes before
# version 7 used the full-size image's (the params version cannot tell: version 7 recipes stored the same ones)
_DENOISE_FULL_SIZE = (("denoise", "classical", 1), ("denoise", "auto", 3))
_LEARNED_MID2 = ("denoise", "learned", 4)  # version 5 runs denoise-mid3 (learned on recipe 8's demosaic); 4 mid2
_AUTO_MID2 = ("denoise", "auto", 4)
FOLLOW_SCALE_FROM = 7
# recipe version 11: white balance params 3 and colour params 2 pin a white far off the daylight locus as the DNG
# SDK does (before, a custom white's small responses were kept and the chromatic adaptation was unbounded), and
# photofinish params 3 give vibrance a longer reach
_BEFORE_11 = (("white_balance", "classical", 2), ("colour", "dng", 1))
_PHOTOFINISH_V2 = (("photofinish", "learned", 2), ("photofinish", "classical", 2))
# recipe version 14: photofinish params 4 stop a chroma move at the gamut's edge; 3 pulled it towards grey
_PHOTOFINISH_V3 = (("photofinish", "learned", 3), ("photofinish", "classical", 3))
# recipe version 15: photofinish params 5 keep each colour's hue under the Saturation slider; 4 scaled
# log-chromaticity for more and mixed with grey for less
_PHOTOFINISH_V4 = (("photofinish", "learned", 4), ("photofinish", "classical", 4))
# recipe version 16: photofinish params 6 spare skin's hue from vibrance; 5 boosted it most of all
_PHOTOFINISH_V5 = (("photofinish", "learned", 5), ("photofinish", "classical", 5))
# recipe version 17: white balance params 4 limit a custom tint to what the calibration balances to white, and
# raise gains below 1 so clipped whites stay white (3 kept both); learned and auto denoise params 6 give the
# input's local means back at each position of the network's 2 x 2 blocks (5 as a whole)
_DENOISE_V5 = (("denoise", "learned", 5), ("denoise", "auto", 5))
_BEFORE_17 = (("white_balance", "classical", 3), *_DENOISE_V5)
FORMER_DEFAULT_PARAMS: dict[int, tuple[tuple[str, str, int], ...]] = {
    1: (("denoise", "learned", 1), ("detail", "learned", 1), _DEMOSAIC_V1, *_PHOTOFINISH_V1,  # "lite" networks
        *_DENOISE_FULL_SIZE, *_BEFORE_11),
    2: (("denoise", "learned", 2), ("denoise", "auto", 1), _DEMOSAIC_V1, *_PHOTOFINISH_V1,  # denoise-fast
        *_DENOISE_FULL_SIZE, *_BEFORE_11),
    3: (("denoise", "learned", 3), ("denoise", "auto", 2), _DEMOSAIC_V1, *_PHOTOFINISH_V1,  # denoise-mid
        *_DENOISE_FULL_SIZE, *_BEFORE_11),
    4: (_DEMOSAIC_V1, *_PHOTOFINISH_V1, *_DENOISE_FULL_SIZE, _LEARNED_MID2, *_BEFORE_11),
    5: (_DEMOSAIC_V2, *_PHOTOFINISH_V1, *_DENOISE_FULL_SIZE, _LEARNED_MID2, *_BEFORE_11),
    6: (_DEMOSAIC_V3, *_PHOTOFINISH_V1, *_DENOISE_FULL_SIZE, _LEARNED_MID2, *_BEFORE_11),
    7: (_DEMOSAIC_V3, _LEARNED_MID2, _AUTO_MID2, *_BEFORE_11, *_PHOTOFINISH_V2),
    8: (_DEMOSAIC_V4, _LEARNED_MID2, _AUTO_MID2, *_BEFORE_11, *_PHOTOFINISH_V2),
    9: (_DEMOSAIC_V4, *_BEFORE_11, *_PHOTOFINISH_V2, *_DENOISE_V5),
    10: (*_BEFORE_11, *_PHOTOFINISH_V2, _DEMOSAIC_V5, *_DENOISE_V5),
    11: (("colour", "dng", 2), _DEMOSAIC_V5, *_PHOTOFINISH_V3, *_BEFORE_17),  # 12: colour params 3 compress
    12: (_DEMOSAIC_V5, *_PHOTOFINISH_V3, *_BEFORE_17),  # colours beyond the gamut
    13: (*_PHOTOFINISH_V3, *_BEFORE_17),
    14: (*_PHOTOFINISH_V4, *_BEFORE_17),
    15: (*_PHOTOFINISH_V5, *_BEFORE_17),
    16: _BEFORE_17,
}


def pin_former_defaults(stages: Any, recipe_version: int) -> Any:
    """Stage settings (the recipe's JSON form) of a recipe written at ``recipe_version``, with what it left to
    the defaults of its day made explicit, so it renders as it did then: recipe version 1 meant the classical
    denoiser, and the learned denoiser and detail stages with their version 1 params (the "lite" networks);
    version 2 meant the "fast" learned denoiser (params version 2), and "auto" with it from ISO 1600; versions 1
    to 3 meant the classical denoiser, and version 3 the "mid" learned denoiser (auto from ISO 800); versions 1
    to 4 meant a demosaic that left a DNG's lens-shading GainMaps, lens warps and DefaultCrop unapplied
    (demosaic params version 1), and version 5 one that left its bad pixels (version 2); versions 1 to 6 meant
    less saturation in the photofinish's chroma table alone (photofinish params version 1), and a classical
    denoiser whose automatic strength was the full-size image's at any render size (classical params version 1,
    auto version 3); versions 1 to 7 meant a demosaic that left its false colour (demosaic params version 3);
    versions 4 to 8 meant the "mid2" learned denoiser, and "auto" with it from ISO 400 (learned params version 4,
    auto version 3 or 4); versions 8 and 9 meant a demosaic that kept the whole visible sensor of a raw that is no
    DNG (demosaic params version 4); versions 1 to 10 meant a white balance and colour matrix that did not pin a
    white far off the daylight locus (white balance params version 2, colour version 1), and versions 7 to 10 a
    vibrance of shorter reach (photofinish params version 2); versions 1 to 11 meant colours beyond the working
    space's gamut left uncompressed (colour params version 2 or 1); versions 1 to 12 meant an image input (JPEG,
    PNG, TIFF) decoded without its camera rendering undone (demosaic params version 5 or older); versions 11 to
    13 meant a chroma move that left the gamut pulled towards grey (photofinish params version 3), and version 14
    a Saturation slider that bent hues (photofinish params version 4: more scaled log-chromaticity, less mixed
    each colour with its grey), and version 15 a vibrance that boosted skin most of all (photofinish params
    version 5); versions 11 to 16 meant a custom tint kept beyond what the calibration balances, and white balance
    gains below 1 kept (white balance params version 3), and the learned denoiser's local means given back as a
    whole (learned and auto denoise params version 5, from recipe version 9)."""
    if not isinstance(stages, Mapping):  # not an object (a sidecar's "[]"): Recipe.from_dict says so, in one line
        return stages
    stages = {name: dict(value) if isinstance(value, dict) else value for name, value in stages.items()}
    for name, implementation in FORMER_DEFAULT_IMPLEMENTATIONS.get(recipe_version, {}).items():
        value = stages.setdefault(name, {})
        if isinstance(value, dict) and value.get("implementation") is None:
            value["implementation"] = implementation
    for name, implementation, params_version in FORMER_DEFAULT_PARAMS.get(recipe_version, ()):
        value = stages.get(name)
        if isinstance(value, dict) and value.get("implementation") == implementation and not value.get("params"):
            value["params"] = {"version": params_version}
    denoise = stages.get("denoise")
    if recipe_version < FOLLOW_SCALE_FROM and isinstance(denoise, dict) and isinstance(denoise.get("params"), dict) \
            and denoise.get("implementation") in ("classical", "auto"):
        denoise["params"] = {"follow_scale": False, **denoise["params"]}
    return stages


def current_version(stage: str, implementation: str | None) -> int | None:
    """The params version of a stage implementation (``None``: the default one); None when it is unknown."""
    chosen = implementation if implementation is not None else DEFAULT_IMPLEMENTATIONS.get(stage)
    return None if chosen is None else PARAMS_VERSIONS.get((stage, chosen))
