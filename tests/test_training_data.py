"""Tests of the raw-side training data: measured spectra, computed scenes, un-processing, sensor noise, splits."""

from __future__ import annotations

import numpy as np
import pytest

from engine.io import noise_level
from engine.training import denoise_data, photos, raw_noise, scenes, spectral_data, synthetic, unprocess, wb_data

needs_spectral = pytest.mark.skipif(not (synthetic.SPECTRAL_DIR / "camera").is_dir(),
                                    reason="shared spectral data absent (see ../shared/spectral/PROVENANCE.md)")
def _has_skimage() -> bool:
    try:
        import skimage  # noqa: F401
    except ImportError:
        return False
    return True


def _photos_installed() -> bool:
    return _has_skimage() and (photos.data_dir() / "chelsea.png").is_file()


needs_photos = pytest.mark.skipif(not _photos_installed(), reason="scikit-image (its bundled photographs) absent")


def test_held_out_cameras_are_not_training_cameras() -> None:
    assert set(spectral_data.HELD_OUT_CAMERAS).isdisjoint(spectral_data.TRAINING_CAMERAS)
    assert set(spectral_data.HELD_OUT_CAMERAS) | set(spectral_data.TRAINING_CAMERAS) == set(spectral_data.ALL_CAMERAS)
    assert len(spectral_data.ALL_CAMERAS) == 13 and len(spectral_data.HELD_OUT_CAMERAS) == 3
    # the same camera model measured twice stays on one side
    assert {"nikon_d5100", "Nikon 5100 (NPL)"} <= set(spectral_data.TRAINING_CAMERAS)


def test_held_out_photographs_are_not_training_photographs() -> None:
    assert set(photos.TEST_PHOTOS).isdisjoint(photos.TRAIN_PHOTOS)
    assert set(photos.UNUSED_PHOTOS).isdisjoint(photos.TRAIN_PHOTOS + photos.TEST_PHOTOS)


@needs_spectral
def test_white_balance_training_set_uses_only_training_cameras() -> None:
    data = wb_data.training_set(seed=3, scenes_count=3)
    assert set(data.cameras) <= set(spectral_data.TRAINING_CAMERAS)
    # four histograms per sample (pixels, edges, brightest, central pixels); a smaller estimator reads the first
    assert data.hist.shape == (12, 4, 64, 64) and data.neutral.shape == (12, 3)
    assert np.allclose(data.neutral[:, 1], 1.0)


@needs_spectral
def test_white_balance_test_set_uses_only_held_out_cameras() -> None:
    data = wb_data.make_set(1_000_003, 2, spectral_data.HELD_OUT_CAMERAS, renders_per_scene=3, keep_images=True)
    assert set(data.cameras) <= set(spectral_data.HELD_OUT_CAMERAS)
    assert data.images.shape[1:] == (64, 64, 3)


@needs_spectral
@needs_photos
def test_denoiser_batches_use_only_training_cameras_and_photographs(monkeypatch) -> None:
    seen_cameras, seen_photos = set(), set()
    real_camera, real_load = spectral_data.camera, denoise_data._photo

    def spy_camera(name):
        seen_cameras.add(name)
        return real_camera(name)

    def spy_plan(rng, thumb, cameras=spectral_data.TRAINING_CAMERAS):
        seen_cameras.update(cameras)
        return real_plan(rng, thumb, cameras)

    def spy_photo(name, half):
        seen_photos.add(name)
        return real_load(name, half)

    real_plan = unprocess.random_plan
    monkeypatch.setattr(spectral_data, "camera", spy_camera)
    monkeypatch.setattr(unprocess, "random_plan", spy_plan)
    monkeypatch.setattr(denoise_data, "_photo", spy_photo)
    batch = denoise_data.make_batch(np.random.default_rng(0), 6, 32)
    assert batch.noisy.shape == batch.clean.shape == batch.sigma.shape == (6, 3, 32, 32)
    assert seen_cameras and seen_cameras <= set(spectral_data.TRAINING_CAMERAS)
    assert seen_photos and seen_photos <= set(photos.TRAIN_PHOTOS)


@needs_spectral
@needs_photos
def test_denoiser_test_images_are_held_out_photographs_and_cameras() -> None:
    images = denoise_data.test_images()
    assert len(images) == 9
    for image in images:
        name, camera, _light = image.name.split("/")
        assert f"{name}.png" in photos.TEST_PHOTOS
        assert camera in spectral_data.HELD_OUT_CAMERAS


@needs_spectral
@needs_photos
def test_unprocessing_inverts_processing() -> None:
    srgb = photos.load("coffee.png")[::4, ::4]
    rng = np.random.default_rng(1)
    for _ in range(3):
        plan = unprocess.random_plan(rng, srgb)
        camera_rgb = unprocess.to_camera(srgb, plan)
        assert np.abs(unprocess.process(camera_rgb, plan) - srgb).max() < 1e-4
        # and the raw is dimmer than sensor white, as the drawn exposure asks
        assert np.percentile(camera_rgb.max(axis=-1), 99.5) <= 0.9 + 1e-6


def test_inverse_smoothstep_inverts_smoothstep() -> None:
    x = np.linspace(0, 1, 101, dtype=np.float32)
    assert np.allclose(unprocess.smoothstep(unprocess.inverse_smoothstep(x)), x, atol=1e-5)


@needs_spectral
def test_unprocessing_maps_white_to_the_camera_neutral() -> None:
    spd = synthetic.illuminant("A")
    plan = unprocess.plan("canon_xti", spd, "A")
    white = unprocess.to_camera(np.ones((1, 1, 3), np.float32), plan)[0, 0]
    assert white / white[1] == pytest.approx(spectral_data.camera_white("canon_xti", spd), rel=1e-5)


def test_sensor_noise_has_the_poisson_gaussian_variance() -> None:
    shot, read = synthetic.noise_profile(3200)
    signal = np.full((256, 256), 0.2, dtype=np.float32)
    noisy = raw_noise.add_noise(signal, shot, read, np.random.default_rng(0))
    assert noisy.var() == pytest.approx(shot * 0.2 + read, rel=0.05)
    assert noisy.mean() == pytest.approx(0.2, abs=1e-3)


def test_noisy_pair_target_is_the_clean_demosaic() -> None:
    rgb = np.full((32, 32, 3), (0.1, 0.2, 0.15), dtype=np.float32)
    noisy, clean = raw_noise.noisy_pair(rgb, np.array([0.5, 1.0, 0.75]), *synthetic.noise_profile(800),
                                        np.random.default_rng(0))
    assert np.allclose(clean, rgb, atol=2e-4)  # a flat image demosaics to itself (up to 14-bit rounding)
    assert 0.001 < np.std(noisy - clean) < 0.05


@needs_spectral
def test_scenes_are_reproducible_from_their_seed() -> None:
    a = scenes.dead_leaves_scene(np.random.default_rng(5), 48, 64)
    b = scenes.dead_leaves_scene(np.random.default_rng(5), 48, 64)
    assert np.array_equal(a.index, b.index) and np.array_equal(a.shading, b.shading)
    assert a.index.shape == (48, 64) and a.specular[-1] and not any(a.specular[:-1])
    assert a.index.max() < len(a.reflectances)


@needs_spectral
@pytest.mark.parametrize("family", spectral_data.FAMILIES)
def test_every_illuminant_family_gives_a_plausible_light(family: str) -> None:
    light = spectral_data.sample_light(np.random.default_rng(2), family)
    assert light.spd.shape == synthetic.WAVELENGTHS.shape and np.all(light.spd >= 0)
    neutral = spectral_data.camera_white("nikon_d70", light.spd)
    assert neutral[1] == 1.0 and np.all((neutral > 0.1) & (neutral < 3.0))


def test_noise_profile_tags_are_read_per_plane_or_shared() -> None:
    shared = noise_level.from_profile(np.array([2e-4, 1e-6]))
    assert shared.shot == (2e-4,) * 3 and shared.read == (1e-6,) * 3
    per_plane = noise_level.from_profile(np.array([1e-4, 1e-7, 2e-4, 2e-7, 3e-4, 3e-7]))
    assert per_plane.shot == (1e-4, 2e-4, 3e-4)
    assert noise_level.from_profile(np.array([0.0, 0.0])) is None
    assert noise_level.from_profile(None) is None


def test_noise_level_falls_back_from_profile_to_iso() -> None:
    model = noise_level.noise_model(1600, None)
    assert model.shot[0] == pytest.approx(synthetic.noise_profile(1600)[0])
    assert "ISO 1600" in model.origin


def test_the_denoiser_learns_on_the_demosaic_a_render_makes() -> None:
    """Training pairs are demosaiced as the render's demosaic stage does it, median passes included (recipe
    version 8), and with 0 passes as before them (what the networks before mid3 learned on)."""
    from types import SimpleNamespace

    from engine import false_colour
    from engine.stages.demosaic import FALSE_COLOUR_PASSES, bayer_to_rgb

    rng = np.random.default_rng(3)
    signal = rng.uniform(0.05, 0.6, (48, 64)).astype(np.float32)  # a fine texture: the medians change it
    neutral = np.array([0.5, 1.0, 0.7])
    dn = np.round(512 + signal * (16383 - 512)).astype(np.uint16)
    source = SimpleNamespace(sensor=dn, cfa=raw_noise.RGGB, black=np.full(3, 512.0), white=16383.0,
                             as_shot_neutral=neutral)
    rendered = bayer_to_rgb(source)
    trained = raw_noise.demosaic(raw_noise.quantise(signal), neutral, false_colour_passes=0)
    np.testing.assert_allclose(trained, rendered, atol=1e-5)
    with_medians = false_colour.suppress(rendered.copy(), (1.0 / neutral).astype(np.float32), FALSE_COLOUR_PASSES)
    np.testing.assert_allclose(raw_noise.demosaic(raw_noise.quantise(signal), neutral), with_medians, atol=1e-5)
    assert np.abs(with_medians - rendered).max() > 0.01


def test_noise_level_is_estimated_from_a_flat_image() -> None:
    shot, read = synthetic.noise_profile(3200)
    ramp = np.tile(np.linspace(0.05, 0.6, 384, dtype=np.float32)[None, :, None], (384, 1, 3))
    noisy, _ = raw_noise.noisy_pair(ramp, np.ones(3), shot, read, np.random.default_rng(4))
    model = noise_level.estimate(noisy, raw_noise.RGGB)
    for level in (0.1, 0.4):
        true = shot * level + read
        assert model.shot[1] * level + model.read[1] == pytest.approx(true, rel=0.25)
