"""The learned photofinishing stage: its networks, its output format, pinning, adjustments, weights, training."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import engine
from engine import models
from engine.errors import ModelError
from engine.models.photofinish_net import PhotofinishNet, parameter_count
from engine.pipeline import IMPLEMENTATIONS
from engine.stages.photofinish import Photofinish, PhotofinishParams, apply_operators
from engine.stages.photofinish_learned import LearnedPhotofinish, contrast_tone
from engine.styles import STYLES
from engine.training import camera_photos

SAMPLE = Path(engine.__file__).resolve().parent / "samples" / "hostplug_colorchecker.dng"


@pytest.fixture(scope="module")
def low() -> np.ndarray:
    """A small linear image with some structure (a ColorChecker scene)."""
    from engine.training import synthetic

    raw = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D65"),
                               synthetic.scene_colorchecker(90, 140), noise=False)
    return raw.linear_srgb


def _shape(value: object) -> object:
    """The nesting shape and leaf type of a JSON value."""
    if isinstance(value, list):
        return [len(value), _shape(value[0])]
    return type(value).__name__


def test_each_style_network_is_small_and_all_of_them_fit_the_lite_budget() -> None:
    total = 0
    for style in STYLES.values():
        entry = models.entry(style.model)
        count = parameter_count(PhotofinishNet(**entry.architecture))
        assert entry.metrics["parameters"] == count
        assert 10_000 < count < 60_000
        assert entry.path.stat().st_size < 250_000
        total += count
    assert total < 400_000


def test_learned_photofinish_is_the_default_and_classical_stays_selectable() -> None:
    choices = IMPLEMENTATIONS["photofinish"]
    assert next(iter(choices)) == "learned"
    assert choices["classical"] is Photofinish


def test_learned_parameters_have_the_classical_format(low: np.ndarray) -> None:
    params = PhotofinishParams(shadows=20)  # the sliders' grid too (classical looks hold slider settings of their own)
    classical = Photofinish().operators_for(params, low)
    learned = LearnedPhotofinish().operators_for(params, low)
    assert learned.keys() == classical.keys()
    for key in classical:
        assert _shape(learned[key]) == _shape(classical[key]), key


def test_a_pinned_render_is_identical_to_the_fresh_one() -> None:
    source = engine.open(SAMPLE)
    first = engine.render(source, engine.Recipe(style="warm:0.7,moody:0.3", exposure=0.3, saturation=20))
    operators = first.notes["photofinish"]["operators"]
    pinned = engine.Recipe(style="warm:0.7,moody:0.3", exposure=0.3, saturation=20, stages={
        "photofinish": engine.StageSettings(params={"operators": operators})})
    again = engine.render(source, pinned)
    assert np.array_equal(first.pixels, again.pixels)


def test_a_blend_renders_the_same_in_any_order_and_scale() -> None:
    source = engine.open(SAMPLE)
    one = engine.render(source, engine.Recipe(style="warm:0.7,moody:0.3"))
    other = engine.render(source, engine.Recipe(style="moody:3,warm:7"))
    assert np.array_equal(one.pixels, other.pixels)
    assert np.array_equal(engine.render(source, engine.Recipe(style="vivid:1,moody:0")).pixels,
                          engine.render(source, engine.Recipe(style="vivid")).pixels)


def test_adjustments_go_on_top_of_the_prediction(low: np.ndarray) -> None:
    stage = LearnedPhotofinish()
    base = stage.operators_for(PhotofinishParams(style="vivid"), low)
    brighter = stage.operators_for(PhotofinishParams(style="vivid", exposure=1.0), low)
    assert brighter["gain_ev"] == pytest.approx(base["gain_ev"] + 1.0, abs=1e-4)
    assert brighter["tone"] == base["tone"] and brighter["chroma"] == base["chroma"]
    grey = stage.operators_for(PhotofinishParams(style="vivid", saturation=-100), low)
    assert grey["saturation"] == 0.0 and grey["chroma"] == base["chroma"]  # all colour removed, at each hue
    mixed = stage.operators_for(PhotofinishParams(style="vivid", saturation=-100, saturation_keeps_hue=False), low)
    assert mixed["colour"] == 0.0 and "saturation" not in mixed  # versions 2 to 4: around luminance
    table_grey = stage.operators_for(PhotofinishParams(style="vivid", saturation=-100, saturation_keeps_hue=False,
                                                       saturation_around_luminance=False), low)  # version 1
    assert np.abs(np.asarray(table_grey["chroma"]) + np.asarray(_node_chroma(len(grey["chroma"][0][0])))).max() < 1e-3
    shadows = stage.operators_for(PhotofinishParams(style="vivid", shadows=60), low)
    assert shadows["local_tone"] == base["local_tone"]  # the style's grid as predicted, the slider's on its own
    lift = np.asarray(shadows["local_tone_held"])
    assert lift[0, 0, 0].mean() > lift[0, 0, -1].mean() >= -1e-4  # the darkest bin gains most
    before = stage.operators_for(PhotofinishParams(style="vivid", shadows=60, lift_below_white=False), low)
    added = np.asarray(before["local_tone"]) - np.asarray(base["local_tone"])  # version 3: into the style's grid
    assert "local_tone_held" not in before and np.abs(added - lift).max() < 2e-4


def _node_chroma(size: int) -> list:
    from engine import operators_numpy

    u, v = operators_numpy.chroma_table_grid(size)
    return np.stack([u, v])[None].tolist()


def test_contrast_keeps_mid_grey_where_it_was() -> None:
    from engine import operators as ops

    tone = [1.3, 1.6, 0.7]
    harder = contrast_tone(tone, 50)
    assert harder[0] > tone[0] and harder[1] > tone[1]

    def at(t: list[float], x: float) -> float:
        return float(ops.tone_curve(torch.tensor([[[[x]]]]), *(torch.tensor([v]) for v in t)))

    assert at(harder, 0.18) == pytest.approx(at(tone, 0.18), abs=1e-4)
    assert at(harder, 0.6) > at(tone, 0.6)


def test_missing_weights_are_an_error_naming_the_file_and_its_hash(weights_copy: Path, low: np.ndarray) -> None:
    (weights_copy / "photofinish-moody.safetensors").unlink()
    expected = models.entry("photofinish-moody").sha256
    with pytest.raises(ModelError) as info:
        LearnedPhotofinish().prepare(PhotofinishParams(style="moody"), None)
    assert "photofinish-moody.safetensors" in str(info.value) and expected in str(info.value)


def test_corrupted_weights_are_an_error_not_random_weights(weights_copy: Path) -> None:
    path = weights_copy / "photofinish-vivid.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        LearnedPhotofinish().prepare(PhotofinishParams(style="warm:0.5,vivid:0.5"), None)
    assert str(path) in str(info.value) and models.entry("photofinish-vivid").sha256 in str(info.value)


def test_a_few_training_steps_lower_the_loss() -> None:
    from engine.training.look_data import TRAIN_PHOTOS, load_photos, training_batch
    from engine.training.train_photofinish import TrainConfig, loss_fn, train

    rng = np.random.default_rng(1)
    linear, natural = training_batch(load_photos(TRAIN_PHOTOS), 6, 48, rng)
    from engine.training.style_targets import style_target

    target = style_target(natural, "moody")
    torch.manual_seed(0)
    with torch.no_grad():
        before = float(loss_fn(PhotofinishNet(), linear, target))
    result = train(TrainConfig(style="moody", steps=25, batch=4, lr=5e-3))
    with torch.no_grad():
        after = float(loss_fn(result.net, linear, target))
    assert after < 0.9 * before


def test_the_exposure_estimate_follows_the_exposure_exactly() -> None:
    """The network reads a thumbnail normalised by its white point, so one stop more light is one stop less gain."""
    from engine.models.photofinish_net import white_exposure

    x = torch.rand(2, 3, 64, 64) * 0.4
    assert torch.allclose(white_exposure(x * 2.0), white_exposure(x) - 1.0, atol=1e-4)


def test_look_photographs_are_split_and_ship_in_installed_wheels() -> None:
    from engine.training.look_data import DETAIL_PHOTOS, TEST_PHOTOS, TRAIN_PHOTOS, load_photos

    assert set(TEST_PHOTOS).isdisjoint(TRAIN_PHOTOS + DETAIL_PHOTOS)
    assert all(p.target.shape[2] == 3 for p in load_photos(TRAIN_PHOTOS + TEST_PHOTOS))


@pytest.mark.parametrize("name", ["chelsea", "motorcycle_left", "flower"])
def test_natural_follows_the_raws_exposure_and_meters_it_on_request(name: str) -> None:
    """By default a raw exposed 2 stops under renders darker (the photographer's exposure is kept, as a camera's
    JPEG keeps it); with ``auto_exposure`` the picture is metered, so both raws come out alike."""
    from engine.training.look_data import TEST_PHOTOS, load_photo, whole_image

    photo = load_photo(next(spec for spec in TEST_PHOTOS if name in spec))
    stage = LearnedPhotofinish()
    means: dict[bool, list[float]] = {False: [], True: []}
    for ev in (-2.0, 0.0):
        linear, _target = whole_image(photo, 256, ev)
        low = linear[0].permute(1, 2, 0).numpy()
        for auto in (False, True):
            out = apply_operators(linear, stage.operators_for(PhotofinishParams(auto_exposure=auto), low))
            means[auto].append(float(out.mean()))
    assert means[False][0] < means[False][1] - 0.03
    assert abs(means[True][0] - means[True][1]) < 0.01


def test_an_output_made_before_a_retraining_re_renders_as_before(weights_copy: Path, tmp_path: Path) -> None:
    """Retraining a style changes its weights' hash; an output made before keeps its look (its photofinish
    operators are pinned from its record), while a fresh render uses the new weights."""
    import shutil

    from safetensors.torch import load_file, save_file

    from engine.filehash import file_sha256

    raw = tmp_path / SAMPLE.name
    shutil.copy(SAMPLE, raw)
    before = tmp_path / "before.png"
    engine.render_file(raw, before)
    path = weights_copy / "photofinish-natural.safetensors"  # "retrain": other weights, a new hash
    state = {k: v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1)) if v.is_floating_point()
             else v for k, v in load_file(str(path)).items()}
    save_file(state, str(path))
    with models.updating_manifest(weights_copy / "manifest.json") as entries:
        entries["photofinish-natural"] = replace(entries["photofinish-natural"], sha256=file_sha256(path))
    models.clear_cache()
    again = engine.rerender_file(before, target=tmp_path / "again.png")
    fresh = tmp_path / "fresh.png"
    engine.render_file(raw, fresh)

    def pixels(p: Path) -> np.ndarray:
        import cv2

        return cv2.imread(str(p), cv2.IMREAD_UNCHANGED)

    assert again.notice is not None and "models changed" in again.notice
    assert np.array_equal(pixels(before), pixels(tmp_path / "again.png"))
    assert not np.array_equal(pixels(before), pixels(fresh))


def _vivid_colours(tmp_path: Path) -> Path:
    """An sRGB picture of colours far beyond the chroma table's range: pure yellow, red, blue, a deep orange."""
    from PIL import Image

    pixels = np.zeros((32, 128, 3), np.uint8)
    for i, colour in enumerate([(255, 255, 0), (255, 0, 0), (0, 0, 255), (255, 120, 0)]):
        pixels[:, 32 * i : 32 * (i + 1)] = colour
    path = tmp_path / "vivid.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("implementation", ["learned", "classical"])
def test_saturation_minus_100_is_black_and_white_for_every_colour(tmp_path: Path, implementation: str) -> None:
    # the monochrome preset's promise: no colour left, however saturated (a chroma table alone cannot reach these)
    source = engine.open(_vivid_colours(tmp_path))
    recipe = engine.Recipe(saturation=-100, stages={"photofinish": engine.StageSettings(implementation=implementation),
                                                    "detail": engine.StageSettings(enabled=False)})
    pixels = engine.render(source, recipe).pixels
    assert float((pixels.max(axis=2) - pixels.min(axis=2)).max()) < 1e-3
    half = engine.render(source, recipe.replace(saturation=-50)).pixels
    full = engine.render(source, recipe.replace(saturation=0)).pixels
    spread = [float(np.mean(p.max(axis=2) - p.min(axis=2))) for p in (pixels, half, full)]
    assert spread[0] < spread[1] < spread[2]  # less saturation, less colour, step by step


def test_recipes_of_version_6_keep_their_table_desaturation(tmp_path: Path) -> None:
    # written before recipe version 7: less saturation went into the chroma table alone, and re-renders as it did
    old = engine.Recipe.from_dict({"version": 6, "saturation": -100})
    stage = LearnedPhotofinish()
    assert stage.resolve_params(old).saturation_around_luminance is False
    assert stage.resolve_params(engine.Recipe(saturation=-100)).saturation_around_luminance is True
    source = engine.open(_vivid_colours(tmp_path))
    operators = engine.render(source, old).notes["photofinish"]["operators"]
    assert operators["colour"] == 1.0 and np.abs(np.asarray(operators["chroma"])).max() > 0.1


@pytest.mark.skipif(not camera_photos.available(), reason="the shared camera photographs (../shared/photos) are absent")
def test_train_photofinish_writes_where_it_is_told_and_says_where(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hostplug.cli import main

    shipped = models.file_sha256(models.WEIGHTS_DIR / "photofinish-vivid.safetensors")
    result = CliRunner().invoke(main, ["train", "photofinish", "--style", "vivid", "--steps", "2",
                                       "--weights-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output  # fewer steps than one loss report: no IndexError any more
    assert f"into {tmp_path}" in result.output
    assert (tmp_path / "photofinish-vivid.safetensors").is_file() and (tmp_path / "manifest.json").is_file()
    assert models.file_sha256(models.WEIGHTS_DIR / "photofinish-vivid.safetensors") == shipped


def test_retrained_weights_in_another_folder_render_through_hostplug_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``hostplug train ... --weights-dir new/`` writes is used by a render given HOSTPLUG_WEIGHTS=new/ (the
    installed weights stay), and the output records the hashes it used; a folder that is not there is one line."""
    import json
    import shutil

    import cv2

    from tests.conftest import error_lines, hostplug, read_metadata

    new = tmp_path / "new"  # what --weights-dir holds after training one style: its file and manifest entry only
    new.mkdir()
    vivid = models.entry("photofinish-vivid")
    shutil.copy(vivid.path, new / vivid.file)
    with models.updating_manifest(new / "manifest.json") as entries:  # "retrained": natural now looks as vivid
        entries["photofinish-natural"] = replace(vivid, name="photofinish-natural", folder=new)
    installed_natural = models.entry("photofinish-natural").sha256
    hostplug("render", SAMPLE, "-o", tmp_path / "vivid.png", "--style", "vivid", "--no-service")
    hostplug("render", SAMPLE, "-o", tmp_path / "installed.png", "--no-service")
    monkeypatch.setenv("HOSTPLUG_WEIGHTS", str(new))
    result = hostplug("render", SAMPLE, "-o", tmp_path / "new.png", "--no-service")
    assert result.exit_code == 0, result.stderr
    assert models.entry("photofinish-natural").sha256 != installed_natural

    def pixels(name: str) -> np.ndarray:
        return cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)

    assert np.array_equal(pixels("new.png"), pixels("vivid.png"))
    assert not np.array_equal(pixels("new.png"), pixels("installed.png"))
    _, xmp = read_metadata(tmp_path / "new.png")
    assert json.loads(xmp["Xmp.hostplug.models"])["photofinish-natural"] == models.entry("photofinish-vivid").sha256
    monkeypatch.setenv("HOSTPLUG_WEIGHTS", str(tmp_path / "nowhere"))
    missing = hostplug("render", SAMPLE, "-o", tmp_path / "none.png", "--no-service")
    assert missing.exit_code == 6
    assert error_lines(missing.stderr) == [f"hostplug: error: {tmp_path / 'nowhere'}: no such weights folder "
                                           "($HOSTPLUG_WEIGHTS or --weights names it)"]
    models.clear_cache()


def test_a_relative_hostplug_weights_is_the_folder_it_names_from_where_the_command_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the render service works in each client's folder, and its caches are keyed by this path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOSTPLUG_WEIGHTS", "new")
    assert models.weights_folder() == tmp_path / "new"
    monkeypatch.delenv("HOSTPLUG_WEIGHTS")
    assert models.weights_folder() == models.WEIGHTS_DIR


def test_train_photofinish_with_an_unknown_style_is_a_wrong_option(tmp_path: Path) -> None:
    from tests.conftest import error_lines, hostplug

    result = hostplug("train", "photofinish", "--style", "bogus", "--steps", "5", "--weights-dir", tmp_path)
    assert result.exit_code == 2  # as render --style bogus (it was 4, a recipe error)
    (line,) = error_lines(result.stderr)
    assert line.startswith("hostplug: error: unknown style 'bogus'; known styles: natural,")


@pytest.mark.parametrize("option", [("--correction", "nan"), ("--noise-iso", "nan", "nan"), ("--minutes", "inf")])
def test_train_photofinish_refuses_numbers_that_are_not_finite(tmp_path: Path, option: tuple[str, ...]) -> None:
    # click's FloatRange let NaN through (every comparison with it is false): a tester's model was all NaN
    from tests.conftest import error_lines, hostplug

    result = hostplug("train", "photofinish", "--style", "vivid", *option, "--steps", "1", "--weights-dir", tmp_path)
    assert result.exit_code == 2 and "is not a finite number" in error_lines(result.stderr)[0]
    assert not any(tmp_path.iterdir())


def test_a_weights_folder_without_a_manifest_is_refused_not_ignored(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the installed weights were used instead, silently
    from tests.conftest import error_lines, hostplug

    (tmp_path / "new").mkdir()
    monkeypatch.setenv("HOSTPLUG_WEIGHTS", str(tmp_path / "new"))
    result = hostplug("render", SAMPLE, "-o", tmp_path / "x.png", "--no-service")
    assert result.exit_code == 6
    assert error_lines(result.stderr) == [f"hostplug: error: no manifest.json in {tmp_path / 'new'}: not a folder "
                                          "that hostplug train --weights-dir wrote ($HOSTPLUG_WEIGHTS or --weights "
                                          "names it)"]
    assert not (tmp_path / "x.png").exists()
    models.clear_cache()


@pytest.mark.parametrize(("manifest", "words"), [
    ('{"models": []}', 'not an object with a "models" object'),
    ("[]", 'not an object with a "models" object'),
    ('{"models": {"photofinish-natural": []}}', "model 'photofinish-natural' is not an object"),
    ('{"models": {"photofinish-natural": {"file": 3, "sha256": "0"}}}', "model 'photofinish-natural' has a wrong "
                                                                          "field 'file'"),
])
def test_a_manifest_of_the_wrong_structure_is_one_line_naming_the_users_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest: str, words: str) -> None:
    # an AttributeError traceback on render and on train
    from tests.conftest import error_lines, hostplug

    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "manifest.json").write_text(manifest)
    with pytest.raises(ModelError) as info:
        models.read_manifest(folder / "manifest.json")
    assert words in str(info.value) and str(folder) in str(info.value) and "reinstall" not in str(info.value)
    train = hostplug("train", "photofinish", "--style", "vivid", "--steps", "1", "--weights-dir", folder)
    assert train.exit_code == 6 and len(error_lines(train.stderr)) == 1 and words in train.stderr
    monkeypatch.setenv("HOSTPLUG_WEIGHTS", str(folder))
    render = hostplug("render", SAMPLE, "-o", tmp_path / "x.png", "--no-service")
    assert render.exit_code == 6 and len(error_lines(render.stderr)) == 1 and words in render.stderr
    monkeypatch.setattr(models, "WEIGHTS_DIR", folder)  # the installed manifest damaged: reinstalling mends it
    with pytest.raises(ModelError, match="reinstall hostplug"):
        models.read_manifest(folder / "manifest.json")
    models.clear_cache()
