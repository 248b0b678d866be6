"""Shared helpers: where the test data lives, running the CLI, and reading back what it wrote."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyexiv2
import pytest
import tifffile
import torch
from click.testing import CliRunner, Result
from PIL import ImageCms

from engine.colour import SRGB, srgb_decode
from engine.output.metadata import register_namespace
from hostplug.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RAWSAMPLES = SHARED / "rawsamples"
SAMPLE_DNG = REPO / "engine" / "samples" / "hostplug_colorchecker.dng"  # 900 x 600, bundled

CANON = RAWSAMPLES / "canon_eos550d_magiclantern__tinydng_colorchart.dng"
NIKON = RAWSAMPLES / "nikon_d500_adobedngconv_lossylinear__magicknet_DSC8695.dng"
SONY = RAWSAMPLES / "sony_ilce7rm3__libraw-cffi_DSC2164.ARW"
GOPRO = RAWSAMPLES / "unsupported" / "gopro_hero6__gpr_GOPR0024.GPR"


def colorchecker_dng(path: Path, height: int, width: int, iso: int, seed: int = 0, model: str = "Test") -> Path:
    """Write a small computed raw of the ColorChecker (Nikon 5100 sensitivities, CIE D55, the given ISO's noise)
    with the project's own DNG writer, and return its path."""
    from engine.training.synthetic import camera_from_colour, illuminant, render_raw, scene_colorchecker, write_dng

    raw = render_raw(camera_from_colour(), illuminant("D55"), scene_colorchecker(height, width), iso=iso, seed=seed)
    write_dng(path, raw, make="hostplug", model=model, iso=iso, exposure_time=0.01, f_number=5.6,
              noise_profile=raw.noise_profile)
    return path


def need(path: Path) -> Path:
    """``path``, or skip the test when the shared test data is absent (a fresh clone has no ../shared)."""
    if not path.is_file():
        pytest.skip(f"shared test data not present: {path} (see ../shared/rawsamples/PROVENANCE.md)")
    return path


def hostplug(*args: object) -> Result:
    """Run ``hostplug ARGS`` in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def hostplug_process(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``hostplug ARGS`` as a real process: also captures what C libraries print on fd 2."""
    command = [sys.executable, "-c", "from hostplug.cli import main; main()", *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, errors="surrogateescape", cwd=cwd, timeout=300)


def error_lines(stderr: str) -> list[str]:
    """Non-empty lines of stderr."""
    return [line for line in stderr.splitlines() if line.strip()]


def read_metadata(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """EXIF and XMP of an image file."""
    register_namespace()
    with pyexiv2.Image(str(path)) as image:
        return image.read_exif(), image.read_xmp()


def tiff_icc_description(path: Path) -> str:
    """The description of the ICC profile embedded in a TIFF (tag 34675); it must load in LittleCMS."""
    with tifffile.TiffFile(path) as tif:
        profile = tif.pages[0].tags[34675].value
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(bytes(profile))))


def srgb_to_lab(encoded: np.ndarray) -> np.ndarray:
    """CIELAB (D65 white) of sRGB-encoded values in [0, 1], (..., 3)."""
    xyz = srgb_decode(np.asarray(encoded, dtype=np.float32)).astype(np.float64) @ SRGB.rgb_to_xyz.T
    t = xyz / (SRGB.rgb_to_xyz @ np.ones(3))
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


@pytest.fixture(autouse=True)
def _no_render_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands render in the test's own process: a service left by one test (or the user's own) must not
    answer another's render, which would bypass what the test set up. The service's tests remove this."""
    monkeypatch.setenv("HOSTPLUG_NO_SERVICE", "1")


@pytest.fixture(autouse=True)
def _restore_torch_settings():
    """Training pins torch's thread count and deterministic mode; every test gets the suite's settings back."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(autouse=True)
def _restore_daemon_logger() -> Iterator[None]:
    """A daemon run in the test's process sets its logger up (its own handlers, no propagation to the root
    logger, which pytest's caplog reads): every test gets it back as it found it, so a later test's caplog sees
    the daemon's records whatever ran before."""
    import logging

    logger = logging.getLogger("hostplug.watch")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in [h for h in logger.handlers if h not in handlers]:
        logger.removeHandler(handler)
        handler.close()
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
def weights_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A scratch copy of the weights folder that the engine reads instead of the installed one (so a test may
    break a model there); cached models are dropped before and after."""
    from engine import models

    folder = tmp_path / "weights"
    shutil.copytree(models.WEIGHTS_DIR, folder)
    with models.using_weights(folder):
        yield folder


def candidate_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[Path, Path]:
    """(installed, candidate): a scratch copy of the installed manifest that the engine takes for the installed
    weights (a test that records figures never writes into engine/weights, even when what it checks is broken),
    and a folder holding a copy of model ``name`` with a manifest entry of no figures, as a training writes one."""
    import dataclasses

    from engine import models

    shipped = models.entry(name)
    installed = tmp_path / "installed"
    installed.mkdir()
    shutil.copy(models.MANIFEST, installed / "manifest.json")
    monkeypatch.setattr(models, "WEIGHTS_DIR", installed)
    monkeypatch.setattr(models, "MANIFEST", installed / "manifest.json")
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    shutil.copy(shipped.path, candidate / shipped.file)
    with models.updating_manifest(candidate / "manifest.json") as entries:
        entries[name] = dataclasses.replace(shipped, folder=candidate, metrics={})
    return installed, candidate


@pytest.fixture(scope="session")
def sample_dng() -> Path:
    """The bundled synthetic ColorChecker DNG (always present)."""
    assert SAMPLE_DNG.is_file(), "the bundled sample DNG is missing from the repository"
    return SAMPLE_DNG
