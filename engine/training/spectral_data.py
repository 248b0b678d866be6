"""The measured spectra that the computed training sets are built from: cameras, illuminants, reflectances.

Cameras (13)
    The 11 rawtoaces sensitivity sets of ``shared/spectral`` (Arri D21, Canon 5D Mark II, Canon S90, Canon XTi,
    Nikon D70, D200, D700, D5100, D7000, Sony a7R II, a7S II) and colour-science's two NPL measurements
    ('Nikon 5100 (NPL)', 'Sigma SDMerill (NPL)'). :data:`HELD_OUT_CAMERAS` (Canon 5D Mark II, Sony a7R II,
    Nikon D7000) never appear in a training set: white balance is measured on them. The rawtoaces Nikon D5100
    and the NPL Nikon 5100 are the same camera model measured twice, so both are training cameras.
    Each camera gets a DNG-style :class:`~engine.source.Calibration` (ColorMatrix1 for CIE A, ColorMatrix2 for
    D65, fitted by :func:`engine.synthetic.fit_color_matrix` on the 190 reflectances), exactly what a DNG
    written for it would carry.

Illuminants (:func:`sample_illuminant`, one family drawn per scene with these probabilities)
    - 0.30 CIE daylight (D series) at a CCT drawn uniformly in inverse temperature between 4000 and 10000 K;
    - 0.20 Planckian blackbody between 2500 and 4000 K (same draw);
    - 0.15 one of the CIE fluorescents FL1-FL12;
    - 0.15 one of colour-science's measured LEDs (LED-B1..B5, LED-BH1, LED-RGB1, LED-V1, LED-V2);
    - 0.20 a mixture of two lights drawn from the four families above, ``w * a + (1 - w) * b`` with each SPD
      normalised to unit luminance first and ``w`` uniform in [0.2, 0.8] (one light over the whole scene whose
      spectrum is the sum: the ground truth stays exact).
    Low-pressure sodium and other line-spectrum discharge lamps are left out (nothing can be balanced under them).

Reflectances (:func:`reflectance_pool`)
    The 190 rawtoaces measured reflectances plus colour-science's 24 'ColorChecker N Ohta' patches, 214 spectra.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from engine.errors import InputNotFoundError
from engine.io.source import Calibration
from engine.training import synthetic

COLOUR_CAMERAS = ("Nikon 5100 (NPL)", "Sigma SDMerill (NPL)")
RAWTOACES_CAMERAS = (
    "arri_d21", "canon_eos_5d_mark_ii", "canon_powershot_s90", "canon_xti", "nikon_d200", "nikon_d5100",
    "nikon_d7000", "nikon_d700", "nikon_d70", "sony_ilce-7rm2", "sony_ilce-7sm2",
)
ALL_CAMERAS = RAWTOACES_CAMERAS + COLOUR_CAMERAS
HELD_OUT_CAMERAS = ("canon_eos_5d_mark_ii", "sony_ilce-7rm2", "nikon_d7000")
TRAINING_CAMERAS = tuple(c for c in ALL_CAMERAS if c not in HELD_OUT_CAMERAS)

FLUORESCENTS = tuple(f"FL{i}" for i in range(1, 13))
LEDS = ("LED-B1", "LED-B2", "LED-B3", "LED-B4", "LED-B5", "LED-BH1", "LED-RGB1", "LED-V1", "LED-V2")
FAMILIES = ("daylight", "blackbody", "fluorescent", "led", "mixture")
FAMILY_PROBABILITIES = (0.30, 0.20, 0.15, 0.15, 0.20)
EXIF_A, EXIF_D65 = 17, 21


class SpectralDataMissingError(InputNotFoundError):
    """``shared/spectral`` (the rawtoaces data) is not where training expects it."""


@dataclass(frozen=True)
class Light:
    """An illuminant drawn for a scene: its SPD on :data:`engine.synthetic.WAVELENGTHS` and a readable label."""

    spd: np.ndarray
    label: str


def spectral_dir() -> Path:
    """The rawtoaces data folder, or SpectralDataMissingError naming where it was looked for."""
    folder = synthetic.SPECTRAL_DIR
    if not (folder / "camera").is_dir():
        raise SpectralDataMissingError(f"{folder}: the rawtoaces spectral data is missing (set HOSTPLUG_SPECTRAL or "
                                  "place ../shared/spectral beside the repository)")
    return folder


@cache
def camera(name: str) -> synthetic.CameraModel:
    """One of :data:`ALL_CAMERAS` by its short name."""
    if name in COLOUR_CAMERAS:
        return synthetic.camera_from_colour(name)
    if name not in RAWTOACES_CAMERAS:
        raise KeyError(f"unknown camera {name!r} (known: {', '.join(ALL_CAMERAS)})")
    return synthetic.load_rawtoaces_camera(spectral_dir() / "camera" / f"{name}_380_780_5.json")


@cache
def calibration(name: str) -> Calibration:
    """DNG-style calibration of a camera: ColorMatrix1 fitted under CIE A, ColorMatrix2 under D65."""
    cam = camera(name)
    matrices = [synthetic.fit_color_matrix(cam, synthetic.illuminant(i)) for i in ("A", "D65")]
    return Calibration(color_matrices=matrices, illuminants=[EXIF_A, EXIF_D65], origin=f"fitted ({name})")


@cache
def reflectance_pool() -> np.ndarray:
    """The 214 reflectance spectra (190 rawtoaces + 24 ColorChecker), (214, 81)."""
    spectral_dir()
    return np.concatenate([synthetic.training_reflectances(), synthetic.colorchecker_reflectances()[0]])


@cache
def _named_spd(name: str) -> np.ndarray:
    return _unit_luminance(synthetic.illuminant(name))


def _unit_luminance(spd: np.ndarray) -> np.ndarray:
    """The SPD scaled to luminance Y = 1 (so mixtures weigh lights by how bright they look)."""
    return spd / float(spd @ synthetic._cmfs()[:, 1])


def _cct(rng: np.random.Generator, low: float, high: float) -> float:
    """A colour temperature drawn uniformly in inverse temperature (mired) between ``low`` and ``high`` K."""
    return 1e6 / rng.uniform(1e6 / high, 1e6 / low)


def sample_light(rng: np.random.Generator, family: str) -> Light:
    """One light of a family (see the module docstring)."""
    if family == "daylight":
        t = _cct(rng, 4000.0, 10000.0)
        return Light(_unit_luminance(synthetic.illuminant(t)), f"D{t:.0f}K")
    if family == "blackbody":
        t = _cct(rng, 2500.0, 3999.0)
        return Light(_unit_luminance(synthetic.illuminant(t)), f"BB{t:.0f}K")
    if family == "fluorescent":
        name = FLUORESCENTS[rng.integers(len(FLUORESCENTS))]
        return Light(_named_spd(name), name)
    if family == "led":
        name = LEDS[rng.integers(len(LEDS))]
        return Light(_named_spd(name), name)
    if family == "mixture":
        a, b = (sample_light(rng, FAMILIES[rng.integers(4)]) for _ in range(2))
        w = rng.uniform(0.2, 0.8)
        return Light(w * a.spd + (1.0 - w) * b.spd, f"{w:.2f}*{a.label}+{1 - w:.2f}*{b.label}")
    raise ValueError(f"unknown illuminant family {family!r}")


def sample_illuminant(rng: np.random.Generator) -> Light:
    """A light drawn from the family mixture of the module docstring."""
    return sample_light(rng, FAMILIES[rng.choice(len(FAMILIES), p=FAMILY_PROBABILITIES)])


def camera_white(name: str, spd: np.ndarray) -> np.ndarray:
    """The camera's response to a perfect white under ``spd``, green = 1 (the exact camera neutral)."""
    rgb = spd @ camera(name).sensitivities
    return rgb / rgb[1]
