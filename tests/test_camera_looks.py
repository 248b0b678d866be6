"""Issue 11: camera JPEGs as training data, their split and unprocessing, and exposure that follows the raw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.colour import srgb_decode
from engine.models.photofinish_net import PhotofinishNet, thumbnail, to_json
from engine.training import camera_photos as cp

needs_photos = pytest.mark.skipif(not cp.available(), reason=f"{cp.root()} is absent (the shared camera "
                                  "photographs of ../shared/photos; see its PROVENANCE.md)")


@needs_photos
def test_split_is_the_written_down_one_and_deterministic():
    s = cp.split(None, cp.SPLIT_SEED)
    assert s.cameras == cp.HELD_OUT_CAMERAS
    assert s.series == cp.HELD_OUT_SERIES
    assert s.kodak == cp.HELD_OUT_KODAK
    cp.split.cache_clear()
    assert cp.split(None, cp.SPLIT_SEED) == s
    assert len(s.cameras) == cp.N_HELD_OUT_CAMERAS


@needs_photos
def test_split_holds_out_whole_cameras():
    train = cp.load("train", 64)
    test = cp.load("test", 64)
    train_cameras = {p.camera for p in train if p.folder != "kodak"}
    assert not train_cameras & {p.camera for p in test if p.folder != "kodak"}
    assert not train_cameras & set(cp.HELD_OUT_CAMERAS)
    assert {p.series for p in test if p.folder == "rawio"} >= set(cp.HELD_OUT_SERIES)
    names = [p.name for p in train] + [p.name for p in test]
    assert len(names) == len(set(names)) == len(cp.load("all", 64))


@needs_photos
def test_model_selection_validates_on_training_cameras_never_on_held_out_ones():
    fit, validation = cp.load("fit", 64), cp.load("validation", 64)
    cameras = {p.camera for p in validation}
    assert cameras == set(cp.validation_cameras()) and len(cameras) == cp.N_VALIDATION_CAMERAS
    assert not cameras & set(cp.HELD_OUT_CAMERAS) and not cameras & {p.camera for p in fit}
    assert sorted(p.name for p in fit + validation) == sorted(p.name for p in cp.load("train", 64))


def test_unprocess_inverts_the_camera_rendering():
    rng = np.random.default_rng(0)
    linear = (rng.random((32, 32, 3), dtype=np.float32) ** 2 * 0.2).astype(np.float32)  # below the knees
    for _ in range(5):
        look = cp.CameraLook.draw(rng)
        jpeg = cp.process(linear, look)
        np.testing.assert_allclose(cp.unprocess(jpeg, look), linear, atol=2e-3)
        np.testing.assert_allclose(cp.process(cp.unprocess(jpeg, look), look), jpeg, atol=2e-3)


def test_unprocess_undoes_contrast_and_saturation_and_keeps_order():
    grey = np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :, None].repeat(3, axis=2)
    look = cp.CameraLook()
    linear = cp.unprocess(grey, look)[0, :, 1]
    assert np.all(np.diff(linear) >= 0.0) and linear[0] < 1e-5 and linear[-1] <= 1.0
    decoded = srgb_decode(grey)[0, :, 1] * 2.0**-look.gain_ev
    assert linear[20] > decoded[20]  # the camera's toe darkened the shadows; undoing it lifts them
    red = np.array([[[0.8, 0.3, 0.2]]], dtype=np.float32)
    out = cp.unprocess(red, look)[0, 0]
    plain = srgb_decode(red)[0, 0]
    assert out[0] / out[1] < plain[0] / plain[1]  # the camera's saturation boost is taken back


def test_sensor_noise_has_the_eval_dngs_variance_and_stays_in_the_sensors_range():
    from engine.training.synthetic import noise_profile

    rng = np.random.default_rng(0)
    flat = np.full((256, 256, 3), 0.05, dtype=np.float32)
    noisy = cp.sensor_noise(flat, 800, rng)
    shot, read = noise_profile(800)
    assert noisy.dtype == np.float32 and noisy.min() >= 0.0 and noisy.max() <= 1.0
    assert abs(float(noisy.mean()) - 0.05) < 1e-3
    assert abs(float(noisy.std()) / np.sqrt(shot * 0.05 + read) - 1.0) < 0.05


def test_training_supervises_the_gain_with_the_drawn_camera_gain():
    """The training batch carries each input's drawn camera gain; the loss pulls the network's gain towards it."""
    from engine.training import train_photofinish as tp

    photo = cp.CameraPhoto(name="t/grey", folder="cameras", camera="t", series="", exposure_ev=None,
                           srgb=np.random.default_rng(2).random((96, 96, 3), dtype=np.float32))
    linear, target, gains = cp.training_batch((photo,), 6, 32, np.random.default_rng(0))
    assert linear.shape == target.shape == (6, 3, 32, 32) and gains.shape == (6,)
    assert bool(((gains >= cp.GAIN_RANGE[0]) & (gains <= cp.GAIN_RANGE[1])).all())
    torch.manual_seed(0)
    net = PhotofinishNet(exposure="raw", render_ev=cp.RENDER_EV, correction=0.5)
    with torch.no_grad():  # a network whose gain is 0.5 EV off every drawn gain pays for it
        net.scalars.bias[0] = 0.0
    far = torch.full_like(gains, cp.RENDER_EV + 0.5)
    near = torch.full_like(gains, cp.RENDER_EV)
    assert tp.loss_fn(net, linear, target, 0.0, far) - tp.loss_fn(net, linear, target, 0.0, near) > 0.02
    assert tp.loss_fn(net, linear, target, 0.0, None) < tp.loss_fn(net, linear, target, 0.0, far)


def _bracket(scene: np.ndarray, stops: list[float]) -> list[np.ndarray]:
    return [np.clip(scene * np.float32(2.0**s), 0.0, 1.0) for s in stops]


def test_a_raw_exposure_network_keeps_a_bracket_series_in_order_and_spacing():
    torch.manual_seed(0)
    net = PhotofinishNet(exposure="raw", render_ev=1.5, correction=0.5).eval()
    scene = (np.random.default_rng(1).random((48, 64, 3), dtype=np.float32) ** 2 * 0.3).astype(np.float32)
    stops = [-2.0, -1.0, 0.0, 1.0]
    gains = [float(to_json(net(thumbnail(x)))["gain_ev"]) for x in _bracket(scene, stops)]
    assert all(abs(g - 1.5) <= 0.5 + 1e-6 for g in gains)
    auto = [float(to_json(net(thumbnail(x), auto_exposure=True))["gain_ev"]) for x in _bracket(scene, stops)]
    assert auto[0] - auto[-1] > 2.5  # metering the white point pulls the frames together


def test_white_point_networks_keep_their_architecture_and_meaning():
    net = PhotofinishNet()
    assert net.architecture() == {"width": 8, "features": 48, "chroma_limit": 1.5}
    assert "auto_offset" not in net.state_dict()
    x = torch.rand(1, 3, 64, 64) * 0.1
    assert torch.equal(net(x)["gain_ev"], net(x, auto_exposure=True)["gain_ev"])


@needs_photos
def test_installed_natural_style_renders_a_bracket_series_in_order():
    from engine.models import entry
    from engine.training import eval_looks

    if entry("photofinish-natural").architecture.get("exposure") != "raw":
        pytest.skip("the installed natural style meters the white point (weights from before issue 11)")
    report = eval_looks.brackets(lambda _: None)
    assert report["order_kept"]["default"] == report["n_series"]
    assert report["mean_spacing"]["default"] > 0.6


@needs_photos
def test_more_draws_per_held_out_jpeg_keep_the_first_and_add_other_sensors():
    from engine.training import eval_looks

    one = eval_looks.held_out_cameras(lambda _: None, limit=1, styles=["natural"])
    two = eval_looks.held_out_cameras(lambda _: None, limit=1, styles=["natural"], draws=2)
    [name] = one["images"]
    assert list(two["images"]) == [name, f"{name} (draw 2)"]
    assert two["images"][name] == one["images"][name]  # the first draw is the one-draw evaluation's raw
    assert two["images"][f"{name} (draw 2)"]["sensor"] != one["images"][name]["sensor"]
    assert two["natural_beats_libraw"]["images"] == 2


def test_the_photographs_folder_can_be_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HOSTPLUG_PHOTOS", str(tmp_path))
    assert cp.root() == tmp_path and not cp.available()  # (the styles' training reads it, as the WB's does)


@pytest.mark.parametrize("measure", ["looks", "pipeline"])
def test_eval_with_a_raws_folder_holding_none_of_its_raws_is_refused_before_any_work(tmp_path: Path,
                                                                                    measure: str) -> None:
    from click.testing import CliRunner

    from hostplug.cli import main

    result = CliRunner().invoke(main, ["eval", measure, "--raws", str(tmp_path), "--json"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"hostplug: error: {tmp_path}: holds none of the raws with a camera rendering")


@pytest.mark.parametrize("command", [["train", "photofinish", "--style", "natural", "--steps", "1"],
                                     ["eval", "looks", "--limit", "1"]])
def test_missing_training_photographs_are_a_missing_file_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 command: list[str]) -> None:
    from click.testing import CliRunner

    from hostplug.cli import main

    cp.load.cache_clear()
    monkeypatch.setenv("HOSTPLUG_PHOTOS", str(tmp_path))
    extra = ["--weights-dir", str(tmp_path / "weights")] if command[0] == "train" else []
    result = CliRunner().invoke(main, [*command, *extra])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == (f"hostplug: error: {tmp_path}: the photographs are missing (set "
                                              "HOSTPLUG_PHOTOS, or see ../shared/photos/PROVENANCE.md)")


def test_eval_looks_refuses_a_weights_folder_without_a_manifest_before_any_work(tmp_path: Path) -> None:
    # the installed weights were measured instead, silently
    from click.testing import CliRunner

    from hostplug.cli import main

    result = CliRunner().invoke(main, ["eval", "looks", "--weights", str(tmp_path), "--limit", "1", "--json"])
    assert result.exit_code == 6, result.output
    assert result.stderr.splitlines() == [f"hostplug: error: no manifest.json in {tmp_path}: not a folder that "
                                          "hostplug train --weights-dir wrote ($HOSTPLUG_WEIGHTS or --weights "
                                          "names it)"]
