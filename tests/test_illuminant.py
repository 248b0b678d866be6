"""Tests of the learned white balance: camera-agnostic features, the network, --wb auto, shipped and bad weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import engine
from engine import models
from engine.errors import ModelError
from engine.models import illuminant
from engine.recipe import Recipe, StageSettings
from engine.stages.demosaic import FALSE_COLOUR_PASSES
from engine.stages.white_balance import WhiteBalance, WhiteBalanceParams
from engine.training import spectral_data, synthetic

needs_spectral = pytest.mark.skipif(not (synthetic.SPECTRAL_DIR / "camera").is_dir(),
                                    reason="shared spectral data absent (see ../shared/spectral/PROVENANCE.md)")


def test_parameter_count_is_small() -> None:
    assert 50_000 <= illuminant.parameter_count(illuminant.IlluminantNet()) <= 200_000


def test_network_maps_histograms_to_a_chromaticity() -> None:
    uv = illuminant.IlluminantNet()(torch.rand(3, 2, illuminant.BINS, illuminant.BINS))
    assert uv.shape == (3, 2)
    low_u, low_v = illuminant.U_START, illuminant.V_START
    span = illuminant.BINS * illuminant.BIN_WIDTH
    assert torch.all((uv[:, 0] > low_u) & (uv[:, 0] < low_u + span) & (uv[:, 1] > low_v) & (uv[:, 1] < low_v + span))


def test_a_d65_white_is_neutral_in_the_working_space_for_every_camera() -> None:
    cal = synthetic.camera_from_colour()
    from engine.io.source import Calibration

    m1 = synthetic.fit_color_matrix(cal, synthetic.illuminant("A"))
    m2 = synthetic.fit_color_matrix(cal, synthetic.illuminant("D65"))
    calibration = Calibration(color_matrices=[m1, m2], illuminants=[17, 21])
    d65_neutral = synthetic.illuminant("D65") @ cal.sensitivities
    working = illuminant.working_matrix(calibration) @ d65_neutral
    assert working / working[1] == pytest.approx(np.ones(3), abs=1e-3)  # CIE D65 vs sRGB's rounded white


def test_prediction_maps_back_to_the_camera_neutral_exactly() -> None:
    to_working = np.array([[1.6, -0.4, -0.2], [-0.2, 1.4, -0.2], [0.0, -0.5, 1.5]])
    neutral = np.array([0.45, 1.0, 0.7])
    rgb = to_working @ neutral
    uv = torch.tensor([[np.log(rgb[1] / rgb[0]), np.log(rgb[1] / rgb[2])]], dtype=torch.float64)
    back = illuminant.to_camera_neutral(uv, torch.from_numpy(to_working)[None])[0].numpy()
    assert back == pytest.approx(neutral, rel=1e-9)


def test_a_change_of_light_shifts_the_histograms() -> None:
    rng = np.random.default_rng(0)
    rgb = (rng.random((64, 64, 3)) * 0.5 + 0.05).astype(np.float32)
    base = illuminant.histograms(rgb, np.eye(3))
    # a light 4 bins redder in log G/R: every pixel's u drops by 4 bins
    shifted = illuminant.histograms(rgb * np.array([np.exp(4 * illuminant.BIN_WIDTH), 1, 1], np.float32) * 0.9,
                                    np.eye(3))
    assert base.shape == (2, illuminant.BINS, illuminant.BINS)
    assert np.allclose(shifted[0, :-4], base[0, 4:], atol=0.05)


def test_clipped_pixels_are_left_out() -> None:
    rgb = np.full((32, 32, 3), 0.2, np.float32)
    rgb[:16] = (1.0, 0.5, 0.3)  # clipped red: its colour is wrong
    hist = illuminant.histograms(rgb, np.eye(3))
    assert np.count_nonzero(hist[0]) == 1


def test_white_balance_version_1_auto_keeps_the_classical_estimate() -> None:
    migrated = WhiteBalance.migrate({"mode": "auto"}, 1)
    assert migrated["estimator"] == "classical"
    assert WhiteBalanceParams().estimator == "learned" and WhiteBalanceParams.VERSION >= 2


# --- the shipped estimator -----------------------------------------------------------------------------------------

def _shipped() -> None:
    if "wb-c5" not in models.read_manifest():
        pytest.skip("wb-c5 is not shipped in this checkout")


def test_shipped_weights_load_and_verify() -> None:
    _shipped()
    entry = models.entry("wb-c5")
    assert models.file_sha256(entry.path) == entry.sha256
    assert isinstance(illuminant.load(), illuminant.IlluminantNet)
    assert set(entry.training["held_out_cameras"]).isdisjoint(entry.training["training_cameras"])


@needs_spectral
def test_estimator_works_on_cameras_it_never_saw() -> None:
    _shipped()
    from engine.training import eval_wb, wb_data

    test = wb_data.make_set(77, 8, spectral_data.HELD_OUT_CAMERAS, renders_per_scene=3, keep_images=True)
    computed, _ = eval_wb.evaluate_computed(test, illuminant.load())
    assert computed["learned"]["mean"] < 6.0
    assert computed["learned"]["mean"] < computed["gray-world"]["mean"]


def test_auto_white_balance_uses_the_learned_estimator(sample_dng: Path) -> None:
    _shipped()
    source = engine.open(sample_dng)
    rendered = engine.render(source, Recipe(wb="auto"))
    notes = rendered.notes["white_balance"]
    assert notes["mode"] == "auto" and notes["estimator"] == "learned"
    # the bundled sample is a computed chart: its as-shot neutral is the exact one
    truth = source.as_shot_neutral
    cos = np.dot(notes["neutral"], truth) / (np.linalg.norm(notes["neutral"]) * np.linalg.norm(truth))
    assert np.degrees(np.arccos(min(1.0, cos))) < 5.0


def test_as_shot_stays_the_default(sample_dng: Path) -> None:
    rendered = engine.render(engine.open(sample_dng), Recipe())
    assert rendered.notes["white_balance"]["mode"] == "as-shot"


def test_classical_estimator_is_still_available(sample_dng: Path) -> None:
    recipe = Recipe(wb="auto", stages={"white_balance": StageSettings(params={"estimator": "classical"})})
    notes = engine.render(engine.open(sample_dng), recipe).notes["white_balance"]
    assert notes["estimator"] == "classical"


@pytest.fixture
def private_weights(weights_copy: Path) -> Path:
    """The estimator's weights file in a scratch copy of the weights folder."""
    _shipped()
    return weights_copy / models.read_manifest()["wb-c5"].file


def test_corrupted_weights_give_a_clear_error(private_weights: Path, sample_dng: Path) -> None:
    private_weights.write_bytes(private_weights.read_bytes()[:-7] + b"garbage")
    with pytest.raises(ModelError) as error:
        engine.render(engine.open(sample_dng), Recipe(wb="auto"))
    assert str(private_weights) in str(error.value)
    assert models.read_manifest()["wb-c5"].sha256 in str(error.value)


def test_a_tiny_training_run_lowers_the_error(tmp_path: Path) -> None:
    if not (synthetic.SPECTRAL_DIR / "camera").is_dir():
        pytest.skip("shared spectral data absent")
    from engine.training import train_illuminant, wb_data

    data = wb_data.training_set(seed=1, scenes_count=4)
    config = train_illuminant.WBTrainConfig(steps=40, batch=16, lr=3e-3)
    model, record = train_illuminant.train(config, log=lambda _m: None, data=data)
    assert record["final_loss_deg"] < record["first_loss_deg"]
    entry = train_illuminant.ship(model, record, tmp_path)
    assert (tmp_path / entry.file).is_file()


# --- real scene content, the third histogram, the grey-chroma measure ----------------------------------------------

needs_photos = pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared" / "photos" / "cameras").is_dir(),
                                  reason="shared photographs absent (see ../shared/photos/PROVENANCE.md)")


def test_a_three_input_network_reads_the_brightest_pixels_too() -> None:
    rng = np.random.default_rng(1)
    rgb = (rng.random((48, 64, 3)) * 0.5 + 0.05).astype(np.float32)
    hist = illuminant.histograms(rgb, np.eye(3), channels=3)
    assert hist.shape == (3, illuminant.BINS, illuminant.BINS)
    assert np.array_equal(hist[:2], illuminant.histograms(rgb, np.eye(3)))
    net = illuminant.IlluminantNet(inputs=3)
    assert illuminant.inputs_of(net) == 3 and illuminant.inputs_of(illuminant.IlluminantNet()) == 2
    assert net(torch.from_numpy(hist)[None]).shape == (1, 2)
    assert illuminant.parameter_count(net) <= 200_000


def test_the_fourth_histogram_weights_the_middle_of_the_picture() -> None:
    """A subject in the middle under one light before surroundings under another: the centre-weighted
    histogram holds more than twice the subject's share of the whole-picture one."""
    rgb = np.full((90, 120, 3), [0.2, 0.4, 0.6], np.float32)  # bluish surroundings
    rgb[30:60, 40:80] = [0.6, 0.4, 0.2]  # a warm subject in the middle, a ninth of the picture
    hist = illuminant.histograms(rgb, np.eye(3), channels=4)
    assert hist.shape == (4, illuminant.BINS, illuminant.BINS)
    assert np.array_equal(hist[:3], illuminant.histograms(rgb, np.eye(3), channels=3))
    warm_bin = (int((np.log(0.4 / 0.6) - illuminant.U_START) / illuminant.BIN_WIDTH),
                int((np.log(0.4 / 0.2) - illuminant.V_START) / illuminant.BIN_WIDTH))
    share = [(h[warm_bin] ** 2) / (h**2).sum() for h in (hist[0], hist[3])]  # the planes hold square roots
    assert share[0] < 0.12 and share[1] > 2 * share[0]
    assert illuminant.centre_weight(5, 7)[2, 3] == 1.0
    net = illuminant.IlluminantNet(inputs=4)
    assert illuminant.inputs_of(net) == 4 and net(torch.from_numpy(hist)[None]).shape == (1, 2)


def test_grey_chroma_is_zero_for_the_right_white_and_grows_with_the_error() -> None:
    if not (synthetic.SPECTRAL_DIR / "camera").is_dir():
        pytest.skip("shared spectral data absent")
    from engine.training.eval_wb import grey_chroma

    cal = spectral_data.calibration(spectral_data.HELD_OUT_CAMERAS[0])
    truth = np.array([0.55, 1.0, 0.72])
    assert grey_chroma(truth, truth, cal) < 1e-4
    off1, off3 = (grey_chroma(truth * np.array([1 + d, 1, 1 - d]), truth, cal) for d in (0.01, 0.03))
    assert 0 < off1 < off3


@needs_photos
def test_photo_split_holds_out_whole_cameras_and_is_the_documented_one() -> None:
    from engine.training import wb_data

    train, held = wb_data.photo_split()
    assert set(train).isdisjoint(held) and len(held) == 23 and len(train) == 90
    assert "nikon d800" in held and "kodak" in train  # as the module docstring lists
    assert wb_data.photo_split() == (train, held)
    for name in held:
        assert f"{name}," in wb_data.__doc__ or f"{name}\n" in wb_data.__doc__


@needs_photos
def test_photo_samples_are_raws_of_a_known_light() -> None:
    from engine.training import wb_data

    held = wb_data.photo_split()[1][:2]
    data = wb_data.photo_set(5, held, spectral_data.HELD_OUT_CAMERAS, renders_per_photo=2, keep_images=True)
    assert data.hist.shape[1:] == (wb_data.HIST_CHANNELS, illuminant.BINS, illuminant.BINS)
    assert data.images.shape[1:] == (64, 64, 3) and data.images.max() <= 1.0
    assert set(data.cameras) <= set(spectral_data.HELD_OUT_CAMERAS)
    assert np.allclose(data.neutral[:, 1], 1.0) and np.all(data.neutral > 0)


@needs_photos
def test_the_two_light_test_set_is_held_out_neutral_photographs_seen_by_held_out_cameras() -> None:
    from engine.training import wb_data

    data = wb_data.two_light_test_set(renders_per_photo=1)
    held = {p for c in wb_data.photo_split()[1] for p in wb_data.photo_cameras()[c]}
    assert data.sources and {Path(s) for s in data.sources} <= held
    assert all(wb_data.is_neutral_reference(Path(s)) for s in set(data.sources))
    assert set(data.cameras) <= set(spectral_data.HELD_OUT_CAMERAS) and data.images is not None
    assert np.array_equal(data.neutral, wb_data.two_light_test_set(renders_per_photo=1).neutral)  # seeded


@pytest.mark.parametrize(("before", "after"), [(2, 3), (3, 4)])
def test_warm_start_fits_earlier_weights_into_a_network_of_more_inputs(tmp_path: Path, before: int,
                                                                       after: int) -> None:
    from safetensors.torch import save_file

    from engine.training import train_illuminant

    old = illuminant.IlluminantNet(inputs=before).eval()
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, str(path))
    new = illuminant.IlluminantNet(inputs=after).eval()
    train_illuminant.warm_start(new, path)
    hist = torch.rand(2, after, illuminant.BINS, illuminant.BINS)
    with torch.inference_mode():
        assert torch.allclose(new(hist), old(hist[:, :before]))


@pytest.mark.parametrize(("content", "words"), [
    (b"not weights", "not a safetensors weights file"),
    ("denoise-fast", "not wb-c5 weights"),  # another model's weights
    ("wb-c5", "give the --inputs it was trained with"),  # the shipped wb-c5 reads 4 histograms, this run 2
])
def test_a_wrong_init_file_is_one_line_before_any_training_data_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | str, words: str) -> None:
    from conftest import error_lines, hostplug

    from engine.training import train_illuminant

    init = tmp_path / "init.safetensors"
    if isinstance(content, str):
        if content not in models.read_manifest():
            pytest.skip(f"{content} is not shipped in this checkout")
        init.write_bytes(models.entry(content).path.read_bytes())
    else:
        init.write_bytes(content)

    def no_data(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the training data were made before --init was checked")

    monkeypatch.setattr(train_illuminant, "training_data", no_data)
    result = hostplug("train", "wb", "--init", init, "--inputs", "2", "--steps", "1", "--scenes", "10",
                      "--weights-dir", tmp_path / "out")
    assert result.exit_code == 3  # a file that is damaged or unsupported
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"hostplug: error: --init {init}: ") and words in line, line
    assert not (tmp_path / "out").exists()


def test_a_rerender_pins_the_estimated_white_balance(tmp_path: Path, sample_dng: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs made with --wb auto keep their white balance when a new estimator ships (the models changed),
    also under an exposure change; a changed white balance is the user's, not pinned."""
    import shutil

    import cv2

    from engine.rerender import read_record

    raw = tmp_path / "IMG_0001.dng"
    shutil.copy(sample_dng, raw)
    first = engine.render_file(raw, tmp_path / "auto.png", Recipe(wb="auto"))
    used = read_record(first.output).decided["white_balance"]["neutral"]
    monkeypatch.setattr(models, "model_hashes", lambda: {"wb-c5": "a newer estimator"})
    monkeypatch.setattr(illuminant, "estimate_neutral", lambda *args, **kwargs: np.array([0.5, 1.0, 0.9]))

    kept = engine.rerender_file(first.output)
    assert kept.notice is not None and "models changed" in kept.notice and "white balance" in kept.notice
    assert kept.recipe.stage("white_balance").params["neutral"] == used
    difference = np.abs(cv2.imread(str(kept.output), cv2.IMREAD_UNCHANGED).astype(np.int32)
                        - cv2.imread(str(first.output), cv2.IMREAD_UNCHANGED))
    assert difference.max() == 0  # rendered with the neutral exactly as recorded
    brighter = engine.rerender_file(first.output, {"exposure": 0.5})
    assert brighter.recipe.stage("white_balance").params["neutral"] == used
    as_shot = engine.rerender_file(first.output, {"wb": "as-shot"})
    assert "neutral" not in as_shot.recipe.stage("white_balance").params
    fresh = engine.rerender_file(first.output, {"stages": {"white_balance": {"params": {"estimator": "learned"}}}})
    assert fresh.recipe.stage("white_balance").params == {"estimator": "learned"}


def test_a_photographs_own_neutral_reads_grey_only_when_it_is_balanced_neutral() -> None:
    from engine.training import wb_data

    rng = np.random.default_rng(0)
    scene = np.concatenate([rng.uniform(0.2, 0.9, (64, 32, 3)),  # colourful content
                            np.repeat(rng.uniform(0.3, 0.9, (64, 32, 1)), 3, axis=2)], axis=1)  # and greys
    assert wb_data.photo_cast(scene.astype(np.float32)) < 1.0
    warm = np.clip(scene * np.array([1.0, 0.85, 0.6]), 0, 1).astype(np.float32)  # kept warm, as under tungsten
    assert wb_data.photo_cast(warm) > 10.0
    assert wb_data.photo_cast(np.zeros((64, 64, 3), np.float32)) > wb_data.NEUTRAL_CAST  # nothing to read


@needs_photos
def test_neutral_only_training_photos_are_the_unfiltered_samples_of_the_neutral_references() -> None:
    from engine.training import wb_data

    every = wb_data.photo_training_set(3, 1)
    neutral = wb_data.photo_training_set(3, 1, neutral_only=True)
    kept = [wb_data.is_neutral_reference(Path(s)) for s in every.sources]
    assert 0 < len(neutral.sources) == sum(kept) < len(every.sources)
    assert np.array_equal(neutral.neutral, every.neutral[np.array(kept)])


def test_init_weight_interpolates_back_towards_the_starting_network(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from engine.training import train_illuminant, wb_data

    start = illuminant.IlluminantNet(inputs=2).eval()
    path = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in start.state_dict().items()}, str(path))
    rng = np.random.default_rng(0)
    data = wb_data.WBSet(rng.random((8, 3, illuminant.BINS, illuminant.BINS), dtype=np.float32),
                         np.tile([0.5, 1.0, 0.7], (8, 1)), np.tile(np.eye(3), (8, 1, 1)), None, ["c"] * 8, ["l"] * 8)

    def trained(init_weight: float) -> dict[str, torch.Tensor]:
        config = train_illuminant.WBTrainConfig(steps=3, batch=4, init=str(path), init_weight=init_weight)
        return train_illuminant.train(config, log=lambda _m: None, data=data)[0].state_dict()

    kept, free = trained(1.0), trained(0.0)
    assert all(torch.equal(kept[k], v) for k, v in start.state_dict().items())
    assert not all(torch.equal(free[k], v) for k, v in start.state_dict().items())
    assert train_illuminant._command(train_illuminant.WBTrainConfig(init="a.safetensors", init_weight=0.75), 3) == \
        "hostplug train wb --steps 3 --seed 0 --scenes 3000 --init a.safetensors --init-weight 0.75 " \
        f"--false-colour-passes {FALSE_COLOUR_PASSES}"


@needs_spectral
def test_a_two_light_sample_targets_the_subjects_light() -> None:
    """A grey scene lit by two lights: balanced by the sample's target, the subject (the middle) is grey and the
    surroundings (a corner) are not."""
    from engine.training import wb_data

    grey = np.full((160, 200, 3), 0.5, np.float32)
    rng = np.random.default_rng(5)
    for _ in range(4):
        rgb, camera, _light, neutral = wb_data.two_light_sample(rng, grey, spectral_data.TRAINING_CAMERAS)
        assert camera in spectral_data.TRAINING_CAMERAS and neutral[1] == pytest.approx(1.0)
        h, w = rgb.shape[:2]
        middle = rgb[h // 2 - 4 : h // 2 + 4, w // 2 - 4 : w // 2 + 4].reshape(-1, 3).mean(axis=0) / neutral
        corner = rgb[:6, :6].reshape(-1, 3).mean(axis=0) / neutral
        assert np.ptp(middle / middle[1]) < 0.05
        assert np.ptp(corner / corner[1]) > 0.05


@needs_spectral
@pytest.mark.parametrize("option", [(), ("--false-colour-passes", "0")])
def test_wb_training_sees_the_renders_demosaic_unless_told(tmp_path: Path, option: tuple[str, ...],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The computed raws the estimator learns on are demosaiced as a render demosaics them (median passes
    included) unless told otherwise, and the manifest's command says which, so it replays the run."""
    from conftest import hostplug

    from engine.training import raw_noise

    passes = 0 if option else FALSE_COLOUR_PASSES
    seen: list[int] = []
    demosaic = raw_noise.demosaic
    monkeypatch.setattr(raw_noise, "demosaic", lambda cfa, neutral, n: seen.append(n) or demosaic(cfa, neutral, n))
    result = hostplug("train", "wb", "--steps", "1", "--scenes", "10", *option, "--weights-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert len(seen) == 40 and set(seen) == {passes}  # 10 scenes x 4 renders, each demosaiced so
    training = models.read_manifest(tmp_path / "manifest.json")["wb-c5"].training
    assert training["config"]["false_colour_passes"] == passes
    assert training["command"].endswith(f"--false-colour-passes {passes}")


def test_eval_wb_says_and_records_into_the_weights_it_measured(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # --record wrote the figures of $HOSTPLUG_WEIGHTS's wb-c5 into the installed manifest, over the published ones
    import json

    from conftest import candidate_weights, hostplug

    from engine.training import eval_wb, wb_data

    shipped = models.entry("wb-c5")
    installed, candidate = candidate_weights(tmp_path, monkeypatch, "wb-c5")  # engine/weights is never written
    published = (installed / "manifest.json").read_bytes()
    figures = {"mean": 2.0, "median": 1.5, "best25": 0.5, "worst25": 4.0, "grey_chroma": 1.0,
               "grey_chroma_median": 0.8}

    def measured(scenes: int, log: object, model: illuminant.IlluminantNet) -> eval_wb.WBResult:
        return eval_wb.WBResult({"learned": figures, "gray-world": figures}, {"Canon": 2.0}, 30)

    monkeypatch.setattr(eval_wb, "evaluate", measured)
    monkeypatch.setenv("HOSTPLUG_WEIGHTS", str(candidate))
    models.clear_cache()
    result = hostplug("eval", "wb", "--scenes", "10", "--record", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["weights"] == {"wb-c5": {"folder": str(candidate), "sha256": shipped.sha256}}
    assert report["seed"] == wb_data.TEST_SEED and report["test_set"].startswith("engine.training.wb_data.test_set")
    assert models.read_manifest(candidate / "manifest.json")["wb-c5"].metrics["angular_error_deg"]["mean"] == 2.0
    assert (installed / "manifest.json").read_bytes() == published  # the published figures stay
    text = hostplug("eval", "wb", "--scenes", "10").stdout.splitlines()
    assert text[0].startswith(f"Weights: {candidate} (wb-c5 sha256 {shipped.sha256[:16]}...); test set seed "
                              f"{wb_data.TEST_SEED}")
    models.clear_cache()
