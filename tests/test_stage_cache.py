"""The stage cache (:mod:`engine.stage_cache`) and previews: after each kind of change a render resumes after the
last unchanged stage, what it gives equals a render without the cache, and the cache stays within its bytes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.pipeline import STAGE_ORDER, render
from engine.recipe import Recipe
from engine.stage_cache import StageCache
from tests.conftest import SAMPLE_DNG

PREVIEW = 600  # the bundled sample is 900 x 600


@pytest.fixture(scope="module")
def source() -> engine.Source:
    return engine.open(SAMPLE_DNG)


def ran(cache: StageCache, source: engine.Source, recipe: Recipe) -> tuple[list[str], np.ndarray]:
    """The stages a cached preview render ran, and its pixels."""
    done = render(source, recipe, preview=PREVIEW, cache=cache)
    return list(done.timings), done.pixels


@pytest.mark.parametrize(("change", "first_to_run"), [
    ({"exposure": 1.0}, "photofinish"),
    ({"contrast": 30.0}, "photofinish"),
    ({"style": "vivid"}, "photofinish"),
    ({"wb": "custom", "temperature": 4000.0, "tint": 10.0}, "white_balance"),
    ({"wb": "auto"}, "white_balance"),
    ({"sharpening": 80.0}, "detail"),
    ({"denoise": 40.0}, "denoise"),
])
def test_a_change_reruns_only_the_stages_from_the_one_it_affects(source: engine.Source, change: dict,
                                                                  first_to_run: str) -> None:
    cache = StageCache()
    base = Recipe(exposure=0.0, style="natural", sharpening=25.0)
    assert ran(cache, source, base)[0] == list(STAGE_ORDER)
    changed = base.replace(**change)
    stages, pixels = ran(cache, source, changed)
    assert stages == list(STAGE_ORDER[STAGE_ORDER.index(first_to_run):])
    # What the cache gives is what a render without it gives, bit for bit.
    fresh = render(source, changed, preview=PREVIEW)
    assert np.array_equal(pixels, fresh.pixels)
    # Going back re-runs only the last stage (whose output the cache does not keep: it is the caller's).
    assert ran(cache, source, base)[0] == [STAGE_ORDER[-1]]


def test_a_cached_preview_keeps_what_the_stages_decided(source: engine.Source) -> None:
    cache = StageCache()
    render(source, Recipe(wb="auto"), preview=PREVIEW, cache=cache)
    again = render(source, Recipe(wb="auto", exposure=0.5), preview=PREVIEW, cache=cache)
    fresh = render(source, Recipe(wb="auto", exposure=0.5), preview=PREVIEW)
    assert again.notes == fresh.notes  # white balance's neutral, demosaic's method... restored from the checkpoint


def test_a_preview_is_the_full_render_at_preview_size(source: engine.Source) -> None:
    preview = render(source, Recipe(), preview=300).pixels
    full = render(source, Recipe()).pixels
    assert max(preview.shape[:2]) == 300 and preview.shape[:2] == (200, 300)
    small = engine.pipeline.downsample(full, 300)
    # Noise reduction and sharpening work on fewer pixels, so they differ a little; the picture is the same.
    assert float(np.mean(np.abs(preview - small))) < 0.02


def test_a_changed_file_is_not_served_from_the_cache(source: engine.Source, tmp_path: Path) -> None:
    copy = Path(shutil.copy(SAMPLE_DNG, tmp_path / "sample.dng"))
    cache = StageCache()
    first = engine.open(copy)
    render(first, Recipe(), preview=PREVIEW, cache=cache)
    assert list(render(first, Recipe(), preview=PREVIEW, cache=cache).timings) == [STAGE_ORDER[-1]]
    copy.write_bytes(copy.read_bytes())  # the same bytes, a new modification time: the same picture
    assert list(render(engine.open(copy), Recipe(), preview=PREVIEW, cache=cache).timings) == [STAGE_ORDER[-1]]
    # Another picture of the same size copied over it with its times kept (cp -p): its content tells.
    before = copy.stat()
    other = bytearray(copy.read_bytes())
    other[-1000:] = bytes(1000)
    copy.write_bytes(bytes(other))
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (copy.stat().st_size, copy.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    replaced = render(engine.open(copy), Recipe(), preview=PREVIEW, cache=cache)
    assert list(replaced.timings) == list(STAGE_ORDER)
    # The source opened before the file was replaced still holds the first picture, and renders it.
    held = render(first, Recipe(), preview=PREVIEW, cache=cache)
    assert list(held.timings) == [STAGE_ORDER[-1]]
    assert np.array_equal(held.pixels, render(first, Recipe(), preview=PREVIEW).pixels)
    assert not np.array_equal(held.pixels, replaced.pixels)
    # Another preview size, or the full size, is a different render.
    assert list(render(first, Recipe(), preview=400, cache=cache).timings) == list(STAGE_ORDER)


def test_the_cache_stays_within_its_bytes(source: engine.Source) -> None:
    probe = StageCache()
    render(source, Recipe(), preview=PREVIEW, cache=probe)
    one_render = probe.bytes
    cache = StageCache(max_bytes=one_render + one_render // 2)
    for ev in (0.0, 0.5, 1.0, 1.5):
        render(source, Recipe(exposure=ev), preview=PREVIEW, cache=cache)
        assert cache.bytes <= cache.max_bytes
        assert cache.bytes == sum(c.nbytes for c in cache._entries.values())
    # The oldest checkpoints went first: the latest exposure's are all there, the first one's upstream is gone.
    assert list(render(source, Recipe(exposure=1.5), preview=PREVIEW, cache=cache).timings) == [STAGE_ORDER[-1]]
    tiny = StageCache(max_bytes=1000)  # smaller than any checkpoint: nothing is kept, and nothing breaks
    render(source, Recipe(), preview=PREVIEW, cache=tiny)
    assert len(tiny) == 0 and tiny.bytes == 0


@pytest.mark.parametrize(("change", "first_to_run"), [
    ({}, "detail"),  # the same settings again
    ({"exposure": 1.0}, "photofinish"),
    ({"style": "vivid"}, "photofinish"),
    ({"wb": "custom", "temperature": 4000.0, "tint": 10.0}, "white_balance"),
    ({"sharpening": 80.0}, "detail"),
    ({"denoise": 40.0}, "demosaic"),  # no checkpoint after demosaicing is kept at full size
])
def test_a_full_size_render_resumes_from_the_kept_stages_and_gives_the_same_file(
        source: engine.Source, tmp_path: Path, change: dict, first_to_run: str) -> None:
    """What the render service does with ``hostplug render``: full-size checkpoints after FULL_SIZE_STAGES only,
    and the TIFF written from a resumed render equals, byte for byte in its pixels, one rendered afresh."""
    import tifffile

    from engine.output.export import render_file
    from engine.stage_cache import FULL_SIZE_STAGES

    cache = StageCache(max_bytes=1 << 30, stages=FULL_SIZE_STAGES)
    options = engine.OutputOptions(bits=16)
    first = render_file(source, tmp_path / "first.tif", options=options, cache=cache)
    assert list(first.timings) == list(STAGE_ORDER) and len(cache) == len(FULL_SIZE_STAGES)
    again = render_file(source, tmp_path / "again.tif", options=options, changes=change, cache=cache)
    assert list(again.timings) == list(STAGE_ORDER[STAGE_ORDER.index(first_to_run):])
    render_file(source, tmp_path / "fresh.tif", options=options, changes=change)
    assert np.array_equal(tifffile.imread(tmp_path / "again.tif"), tifffile.imread(tmp_path / "fresh.tif"))


def test_a_source_derived_from_a_cached_one_is_not_served_the_cached_pixels(sample_dng: Path) -> None:
    """A script may derive a Source from another (dataclasses.replace): other pixels or another white, the same
    file's SHA-256. The cache served the first one's render."""
    import dataclasses

    source = engine.open(sample_dng)
    cache = StageCache()
    engine.render(source, preview=200, cache=cache)
    cropped = dataclasses.replace(source, sensor=source.sensor[:120, :160].copy())
    warmer = dataclasses.replace(source, as_shot_neutral=source.as_shot_neutral * [1.2, 1.0, 0.8])
    patched = dataclasses.replace(source, sensor=source.sensor.copy())
    patched.sensor[62:121, 68:133] = 0  # a patch between the points a sample of the sensor would read
    for derived in (cropped, warmer, patched):
        assert np.array_equal(engine.render(derived, preview=200, cache=cache).pixels,
                              engine.render(derived, preview=200).pixels)
