"""An X-Trans sensor (Fujifilm's 6 x 6 colour filter array), end to end: LibRaw demosaics it, our stages do the
rest, and the picture matches the same scene taken through a Bayer filter."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

import engine
from engine.io.source_info import describe
from engine.stages.demosaic import LIBRAW_TILE
from engine.training import synthetic
from engine.training.raw_noise import RGGB, mosaic
from tests.conftest import srgb_to_lab

# Fujifilm's X-Trans layout as channel indices (R 0, G 1, B 2): GGRGGB / GGBGGR / BRGRBG / GGBGGR / GGRGGB / RBGBRG.
XTRANS = np.array([[1, 1, 0, 1, 1, 2], [1, 1, 2, 1, 1, 0], [2, 0, 1, 0, 2, 1],
                   [1, 1, 2, 1, 1, 0], [1, 1, 0, 1, 1, 2], [0, 2, 1, 2, 0, 1]])


def _write(path: Path, raw: synthetic.SyntheticRaw, pattern: np.ndarray) -> Path:
    signal = mosaic(raw.camera_rgb, pattern)
    span = synthetic.WHITE_LEVEL - synthetic.BLACK_LEVEL
    cfa = np.clip(np.round(synthetic.BLACK_LEVEL + signal * span), 0, synthetic.WHITE_LEVEL).astype(np.uint16)
    synthetic.write_dng(path, replace(raw, cfa=cfa), make="hostplug", model="Synthetic X-Trans test", iso=200,
                        exposure_time=0.01, f_number=5.6, pattern=pattern)
    return path


@pytest.fixture(scope="module", params=[(528, 792), (360, 540)], ids=["LibRaw's X-Trans demosaic", "under 512 px"])
def chart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One noiseless ColorChecker scene through an X-Trans and a Bayer filter (CIE D55). LibRaw's X-Trans demosaic
    fails on a picture with a side under 512 px, which gets its VNG instead."""
    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D55"),
                               synthetic.scene_colorchecker(*request.param), iso=200, noise=False)
    folder = tmp_path_factory.mktemp("xtrans")
    return {"xtrans": _write(folder / "xtrans.dng", raw, XTRANS),
            "bayer": _write(folder / "bayer.dng", raw, RGGB)}


def test_an_x_trans_raw_is_read_as_a_mosaic_that_libraw_demosaics(chart: dict[str, Path]) -> None:
    source = engine.open(chart["xtrans"])
    assert source.cfa is None and source.needs_libraw_demosaic
    assert describe(source)["sensor"]["layout"].startswith("non-Bayer mosaic (X-Trans")


def test_an_x_trans_raw_renders_the_colours_of_the_same_scene_through_a_bayer_filter(
        chart: dict[str, Path]) -> None:
    # No photofinishing, which would meter each picture and hide a difference in level: the linear colours.
    recipe = engine.Recipe(stages={"photofinish": engine.StageSettings(enabled=False)})
    renders = {name: engine.render(engine.open(path), recipe) for name, path in chart.items()}
    small = min(renders["xtrans"].source.size) < LIBRAW_TILE
    assert renders["xtrans"].notes["demosaic"] == ("libraw-vng" if small else "libraw-ahd")
    # Colour differences away from the patches' edges, where the two demosaics legitimately differ.
    lab = {name: srgb_to_lab(cv2.blur(r.pixels, (9, 9))) for name, r in renders.items()}
    delta_e = np.linalg.norm(lab["xtrans"] - lab["bayer"], axis=2)[12:-12, 12:-12]
    assert np.median(delta_e) < 0.3  # LibRaw's levels taken as ours gave 0.68, 0.75 L* darker
    assert np.mean(delta_e) < 1.5
    assert abs(np.mean(lab["xtrans"][..., 0] - lab["bayer"][..., 0])) < 0.2
