"""Tests of the learned denoiser: sizes, noise conditioning, exact tiling, determinism, training, shipped weights,
bad weights, the "auto" default by ISO, and older recipes keeping the denoiser they were made with."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import engine
from engine import models
from engine.errors import HostplugError, ModelError
from engine.io import noise_level
from engine.models import denoise_tiles, denoiser
from engine.recipe import Recipe, StageSettings
from engine.training import raw_noise, synthetic

LEARNED = Recipe(stages={"denoise": StageSettings(implementation="learned")})


def _randomised(config: denoiser.DenoiserConfig, seed: int = 0) -> denoiser.Denoiser:
    """A model whose every block contributes (NAFNet initialises the branch scales to zero)."""
    torch.manual_seed(seed)
    model = denoiser.Denoiser(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0.0, 0.5)
    return model.eval()


@pytest.mark.parametrize(("size", "low", "high"),
                         [("fast", 200_000, 320_000), ("mid", 200_000, 300_000), ("lite", 200_000, 300_000),
                          ("base", 750_000, 1_000_000)])
def test_parameter_counts_match_the_issue_sizes(size: str, low: int, high: int) -> None:
    assert low <= denoiser.parameter_count(denoiser.Denoiser(denoiser.SIZES[size])) <= high


@pytest.mark.parametrize("size", list(denoiser.SIZES))
def test_output_has_the_input_shape_for_any_size(size: str) -> None:
    model = _randomised(denoiser.SIZES[size])
    rgb = torch.rand(2, 3, 37, 50) * 0.3
    out = denoiser.denoise_tensor(model, rgb, torch.full_like(rgb, 0.01), 0.3)
    assert out.shape == rgb.shape and torch.isfinite(out).all()


def test_the_fast_network_runs_on_packed_pixels() -> None:
    fast = denoiser.Denoiser(denoiser.SIZES["fast"])
    assert fast.config.pack == 4 and fast.multiple == 16 and fast.intro.in_channels == 3 * 16 + 3
    assert fast.ending.out_channels == 3 * 16


@pytest.mark.parametrize("channels", [16, 32, 128])
def test_the_float32_norm_is_a_layer_norm_without_affine(channels: int) -> None:
    """The compiled one-pass norm (float32 on a CPU) and the matrix products (elsewhere) give torch's layer norm."""
    from engine.models.denoiser_fused import CentredNorm

    x = (torch.randn(1, channels, 9, 13) * 3 + 1).contiguous(memory_format=torch.channels_last)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (channels,), eps=1e-6).permute(0, 3, 1, 2)
    with torch.no_grad():
        one_pass = CentredNorm(channels)(x)
        products = CentredNorm(channels).double()(x.double()).float()
    assert one_pass.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(one_pass, expected, atol=1e-5) and torch.allclose(products, expected, atol=1e-5)


@pytest.mark.parametrize("size", list(denoiser.SIZES))
def test_the_rendering_form_computes_the_trained_network(size: str) -> None:
    """The fused network (scale, norms, block scales and pixel shuffles folded; engine.models.denoiser_fused)
    reads raster-order pixels in image units and gives the trained network's residual times the scale."""
    from engine.models import denoiser_fused

    model = _randomised(denoiser.SIZES[size])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # the norms' scale and shift are folded too: make them matter
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.3)
    h, w, scale = 2 * model.multiple, 3 * model.multiple, 0.25
    rgb, sigma = torch.rand(1, 3, h, w) * 0.3, torch.rand(1, 3, h, w) * 0.02
    with torch.no_grad():
        expected = (model(denoiser.network_input(rgb, sigma, scale)) * scale)[0].permute(1, 2, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = denoiser_fused.fuse(model, scale, torch.bfloat16, "cpu").float()  # bf16 fused in place would show
    p = model.config.pack
    inp = torch.empty((1, h // p, w // p, 3 * p * p + 3))
    fused.pack_into(inp, rgb[0].permute(1, 2, 0).contiguous())
    inp[0, ..., 3 * p * p :] = torch.nn.functional.avg_pool2d(sigma, p)[0].permute(1, 2, 0)
    got = torch.empty(h, w, 3)
    with torch.inference_mode():
        fused.residual_into(fused(inp.permute(0, 3, 1, 2)), got)
    assert torch.allclose(got, expected, atol=0.02 * float(expected.abs().max()))  # bfloat16 weights
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the trained one is untouched
    float_fused = denoiser_fused.fuse(model, scale, torch.float32, "cpu")
    with torch.inference_mode():
        float_fused.residual_into(float_fused(inp.permute(0, 3, 1, 2)), got)
    assert torch.allclose(got, expected, atol=1e-5 * float(expected.abs().max()) + 1e-7)


def test_pointwise_convolutions_equal_pytorchs() -> None:
    torch.manual_seed(0)
    layer = denoiser.Pointwise(6, 10)
    x = torch.rand(2, 6, 9, 11)
    reference = torch.nn.functional.conv2d(x, layer.weight, layer.bias)
    assert torch.allclose(layer(x), reference, atol=1e-6)
    assert torch.allclose(layer(x.contiguous(memory_format=torch.channels_last)), reference, atol=1e-6)
    # bfloat16 takes the matrix-product path (denoiser.matrix_product_is_faster): the same result, in bf16
    assert denoiser.matrix_product_is_faster(x.bfloat16()) and not denoiser.matrix_product_is_faster(x)
    as_bf16 = layer.bfloat16()(x.bfloat16().contiguous(memory_format=torch.channels_last)).float()
    assert torch.allclose(as_bf16, reference, atol=0.05)


FLAT_NOISE = noise_level.NoiseModel((0.0,) * 3, (4e-4,) * 3, "test")  # sigma 0.02 everywhere


@pytest.mark.parametrize("size", ["fast", "mid", "lite"])
def test_inference_in_tiles_equals_whole_image_inference(size: str) -> None:
    model = _randomised(denoiser.SIZES[size])
    rng = np.random.default_rng(0)
    rgb = (rng.random((300, 420, 3)) * 0.5).astype(np.float32)
    whole = denoise_tiles.denoise_image(model, rgb.copy(), FLAT_NOISE, tile=1024)
    banded = denoise_tiles.denoise_image(model, rgb.copy(), FLAT_NOISE, tile=16)  # bands of 80 rows (64 for lite), in
    # tiles of 16 columns: every tile reads its margin of context
    assert np.abs(whole - banded).max() < 1e-5
    assert np.abs(whole - rgb).max() > 1e-3  # the network did change the image


def _plaid(rgb: np.ndarray) -> float:
    """The largest local (32 x 32) mean of the image's alternation between even and odd rows, columns or both:
    a pattern of 2 x 2 period, in the image's units."""
    h, w = rgb.shape[:2]
    columns = np.where(np.arange(w) % 2, -1.0, 1.0)[None, :, None]
    rows = np.where(np.arange(h) % 2, -1.0, 1.0)[:, None, None]
    return max(float(np.abs(cv2.blur((rgb * sign).astype(np.float32), (32, 32))[16:-16, 16:-16]).max())
               for sign in (columns, rows, columns * rows))


@pytest.mark.parametrize("size", ["mid", "fast"])
def test_a_packed_network_leaves_no_plaid(size: str) -> None:
    # a tester's: the mid networks' four outputs of a 2 x 2 block differ a little in level, a plaid of 1 to 2
    # levels in the Sony's red (4 at +2 EV); each position now gets the input's local means back
    model = _randomised(denoiser.SIZES[size], seed=3)
    rgb = (0.2 + np.random.default_rng(4).normal(0.0, 0.02, (256, 320, 3))).astype(np.float32)
    whole = denoise_tiles.denoise_image(model, rgb.copy(), FLAT_NOISE, means_per_position=False)
    apart = denoise_tiles.denoise_image(model, rgb.copy(), FLAT_NOISE)
    assert _plaid(whole) > 10 * _plaid(rgb)  # the randomised network makes one, as the trained one did
    assert _plaid(apart) < 0.15 * _plaid(whole)  # (what is left varies faster than the means given back)
    banded = denoise_tiles.denoise_image(model, rgb.copy(), FLAT_NOISE, tile=32)
    assert np.abs(banded - apart).max() < 1e-5  # bands and tiles give what one pass gives


def test_strength_blends_with_the_input_in_place() -> None:
    model = _randomised(denoiser.SIZES["fast"])
    rgb = (np.random.default_rng(2).random((64, 80, 3)) * 0.4).astype(np.float32)
    full = denoise_tiles.denoise_image(model, rgb.copy(), FLAT_NOISE)
    half = rgb.copy()
    assert denoise_tiles.denoise_image(model, half, FLAT_NOISE, strength=0.5) is half
    assert np.allclose(half, 0.5 * (rgb + full), atol=1e-6)


def test_only_networks_measured_in_bfloat16_run_in_it() -> None:
    assert denoise_tiles.inference_dtype(denoiser.Denoiser(denoiser.SIZES["fast"]), "cpu") == torch.float32
    assert denoise_tiles.inference_dtype(denoiser.Denoiser(denoiser.SIZES["mid"]), "cuda") == torch.float32
    assert denoiser.config_from({"width": 16, "pack": 2}).bf16 is False  # manifests written before the field


@pytest.mark.parametrize("size", ["fast", "mid"])
def test_inference_is_deterministic(size: str) -> None:
    model = _randomised(denoiser.SIZES[size])
    rgb = (np.random.default_rng(1).random((70, 90, 3)) * 0.4).astype(np.float32)
    first = denoise_tiles.denoise_image(model, rgb.copy(), FLAT_NOISE)
    assert np.array_equal(first, denoise_tiles.denoise_image(model, rgb.copy(), FLAT_NOISE))


@pytest.mark.parametrize("size", list(denoiser.SIZES))
def test_no_pixel_beyond_the_margin_reaches_across_a_tile_edge_on_the_grid(size: str) -> None:
    """An impulse at every offset within the grid: for every tile edge on the grid (where denoise_image cuts),
    the outputs on the far side that it changes lie within ``margin`` of the edge, and one impulse needs all of it."""
    model = _randomised(denoiser.SIZES[size], seed=1)
    margin, grid = model.margin, model.multiple
    height, width = 2 * grid, 4 * margin + 4 * grid
    x = torch.rand(1, 3, height, width) * 0.2
    sigma = torch.full_like(x, 0.01)
    reach = 0
    with torch.no_grad():
        before = denoiser.denoise_tensor(model, x, sigma, 0.5)
        for column in range(2 * margin, 2 * margin + grid):  # every place within a packed, down-sampled position
            y = x.clone()
            y[..., grid, column] += 0.5
            diff = (denoiser.denoise_tensor(model, y, sigma, 0.5) - before).abs()[0].amax((0, 1))
            changed = torch.nonzero(diff > 1e-7).flatten()
            first, last = int(changed.min()), int(changed.max())
            for edge in range(0, width + 1, grid):
                if column < edge <= last:  # left of the edge, changes what lies right of it
                    reach = max(reach, edge - column)
                if first < edge <= column:  # right of the edge, changes what lies left of it
                    reach = max(reach, column - edge + 1)
    assert reach == margin


def test_image_scale_ignores_a_few_hot_pixels() -> None:
    rgb = np.full((100, 100, 3), 0.05, np.float32)
    rgb[:3, :3] = 1.0
    assert denoiser.image_scale(rgb) == pytest.approx(0.05)


def test_a_tiny_training_run_lowers_the_loss_and_ships(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    if not (synthetic.SPECTRAL_DIR / "camera").is_dir():
        pytest.skip("shared spectral data absent")
    from engine.training import denoise_data, train_denoiser

    torch.manual_seed(0)
    model = denoiser.Denoiser(denoiser.SIZES["lite"])
    batch = denoise_data.make_batch(np.random.default_rng(0), 2, 32)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = train_denoiser.loss_on(model, batch, torch.device("cpu"))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    config = train_denoiser.DenoiseTrainConfig(size="lite", steps=2, batch=2, patch=32)
    trained, record = train_denoiser.train(config, log=lambda _m: None)
    entry = train_denoiser.ship(trained, record, tmp_path)
    assert (tmp_path / entry.file).is_file() and record["steps"] == 2
    assert models.read_manifest(tmp_path / "manifest.json")["denoise-lite"].sha256 == entry.sha256


def test_training_is_seeded() -> None:
    pytest.importorskip("skimage")
    if not (synthetic.SPECTRAL_DIR / "camera").is_dir():
        pytest.skip("shared spectral data absent")
    from engine.training import train_denoiser

    config = train_denoiser.DenoiseTrainConfig(size="fast", steps=2, batch=2, patch=32)
    first, _ = train_denoiser.train(config, log=lambda _m: None)
    second, _ = train_denoiser.train(config, log=lambda _m: None)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_an_interrupted_training_resumes_to_the_same_weights(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("skimage")
    if not (synthetic.SPECTRAL_DIR / "camera").is_dir():
        pytest.skip("shared spectral data absent")
    from engine.training import train_denoiser

    config = train_denoiser.DenoiseTrainConfig(size="mid", steps=4, batch=2, patch=32)
    straight, _ = train_denoiser.train(config, log=lambda _m: None)
    monkeypatch.setattr(train_denoiser, "CHECKPOINT_EVERY", 2)
    save = train_denoiser._save_checkpoint

    def save_then_stop(*args: object) -> None:
        save(*args)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    checkpoint = tmp_path / "mid.ckpt"
    resumable = train_denoiser.DenoiseTrainConfig(size="mid", steps=4, batch=2, patch=32, checkpoint=str(checkpoint))
    monkeypatch.setattr(train_denoiser, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_denoiser.train(resumable, log=lambda _m: None)
    monkeypatch.setattr(train_denoiser, "_save_checkpoint", save)
    other = train_denoiser.DenoiseTrainConfig(size="mid", steps=6, batch=2, patch=32, checkpoint=str(checkpoint))
    with pytest.raises(HostplugError, match="a checkpoint of another run .*steps 4.*steps 6"):
        train_denoiser.train(other, log=lambda _m: None)  # another run's checkpoint is never continued
    resumed, record = train_denoiser.train(resumable, log=lambda _m: None)
    assert "checkpoint" not in record["config"]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=0.0, atol=1e-6), name  # float rounding only


@pytest.mark.parametrize(("option", "passes"), [((), 2), (("--false-colour-passes", "0"), 0)])
def test_training_learns_on_the_renders_demosaic_unless_told(tmp_path: Path, option: tuple[str, ...],
                                                            passes: int) -> None:
    """By default the network learns on the demosaic a render makes (its median passes); the manifest's command
    says which, so it replays the run."""
    pytest.importorskip("skimage")
    if not (synthetic.SPECTRAL_DIR / "camera").is_dir():
        pytest.skip("shared spectral data absent")
    from conftest import hostplug

    from engine.stages.demosaic import FALSE_COLOUR_PASSES

    result = hostplug("train", "denoise", "--size", "fast", "--steps", "1", "--batch", "1", "--patch", "32",
                      *option, "--weights-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    training = models.read_manifest(tmp_path / "manifest.json")["denoise-fast"].training
    assert passes == (FALSE_COLOUR_PASSES if not option else 0)
    assert training["config"]["false_colour_passes"] == passes
    assert training["command"].endswith(f"--false-colour-passes {passes}")


@pytest.mark.parametrize("content", [b"junk\n", b"", b"PK\x03\x04 a zip, but no checkpoint"])
def test_a_file_that_is_no_checkpoint_is_one_line_and_kept(tmp_path: Path, content: bytes) -> None:
    # torch's own error was a traceback telling the user to load it with weights_only=False (running its code)
    from conftest import error_lines, hostplug

    checkpoint = tmp_path / "bogus.pt"
    checkpoint.write_bytes(content)
    result = hostplug("train", "denoise", "--size", "fast", "--steps", "1", "--checkpoint", checkpoint,
                      "--weights-dir", tmp_path / "out")
    assert result.exit_code == 3  # a file that is damaged or unsupported
    assert error_lines(result.stderr) == [
        f"hostplug: error: --checkpoint {checkpoint}: not a checkpoint `hostplug train denoise` wrote (damaged, or "
        "another kind of file); delete it, or give another --checkpoint"]
    assert checkpoint.read_bytes() == content and not (tmp_path / "out").exists()


# --- the shipped weights -------------------------------------------------------------------------------------------

def _shipped(size: str) -> None:
    if f"denoise-{size}" not in models.read_manifest():
        pytest.skip(f"denoise-{size} is not shipped in this checkout")


@pytest.mark.parametrize("size", ["fast", "mid", "mid2", "mid3", "lite", "base"])
def test_shipped_weights_load_and_verify(size: str) -> None:
    _shipped(size)
    model = denoiser.load(size)
    assert isinstance(model, denoiser.Denoiser)
    entry = models.entry(f"denoise-{size}")
    assert models.file_sha256(entry.path) == entry.sha256
    assert entry.training["steps"] > 0 and "command" in entry.training


def _noisy_flat(iso: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.zeros((96, 96, 3), np.float32) + np.array([0.05, 0.1, 0.07], np.float32)
    rgb[:, 48:] *= 2.0
    return raw_noise.noisy_pair(rgb, np.array([0.5, 1.0, 0.7]), *synthetic.noise_profile(iso),
                                np.random.default_rng(seed))


@pytest.mark.parametrize("size", ["fast", "mid", "lite"])
def test_the_noise_level_conditions_how_much_is_removed(size: str) -> None:
    _shipped(size)
    model = denoiser.load(size)
    noisy, clean = _noisy_flat(6400)
    removed = []
    for iso in (100, 6400):
        out = denoise_tiles.denoise_image(model, noisy.copy(), noise_level.from_iso(iso))
        removed.append(float(np.abs(out - noisy).mean()))
        if iso == 6400:
            assert np.mean((out - clean) ** 2) < 0.5 * np.mean((noisy - clean) ** 2)
    assert removed[1] > 2.0 * removed[0]


def test_learned_stage_denoises_a_render(sample_dng: Path) -> None:
    _shipped("mid3")
    source = engine.open(sample_dng)
    rendered = engine.render(source, LEARNED.replace(denoise=60.0))
    notes = rendered.notes["denoise"]
    assert notes["model"] == "denoise-mid3" and notes["strength"] == 60.0
    assert notes["noise_origin"] == "DNG NoiseProfile"
    assert rendered.pixels.shape == (600, 900, 3)


# --- the default by ISO, and older recipes ---------------------------------------------------------------------

def test_auto_follows_the_iso_and_is_the_default() -> None:
    from engine.pipeline import stage_for
    from engine.stages.denoise_learned import LEARNED_FROM_ISO, equivalent_iso

    assert stage_for("denoise", Recipe()).implementation == "auto"  # learned where it pays, classical below
    assert stage_for("denoise", Recipe(stages={"denoise": StageSettings(implementation="auto")})).implementation \
        == "auto"
    assert stage_for("denoise", LEARNED).implementation == "learned"
    assert equivalent_iso(3200.0, None) == pytest.approx(3200.0)
    assert equivalent_iso(0.0, None) == pytest.approx(100.0)  # no ISO: as ISO 100
    assert equivalent_iso(100.0, np.array([8e-5, 1e-7])) == pytest.approx(200.0)  # the NoiseProfile wins
    assert 100.0 < LEARNED_FROM_ISO <= 3200.0


@pytest.mark.parametrize(("learned_from_iso", "expected"), [(100.0, "learned"), (6400.0, "classical")])
def test_auto_runs_the_learned_denoiser_from_its_iso_up(sample_dng: Path, learned_from_iso: float,
                                                        expected: str) -> None:
    _shipped("mid3")
    recipe = Recipe(stages={"denoise": StageSettings(implementation="auto",
                                                     params={"learned_from_iso": learned_from_iso})})
    notes = engine.render(engine.open(sample_dng), recipe).notes["denoise"]  # the sample reads as ISO 200
    assert notes["implementation"] == expected and notes["equivalent_iso"] == 200
    assert ("model" in notes) == (expected == "learned")


def test_sources_without_raw_noise_get_the_classical_denoiser(tmp_path: Path) -> None:
    import cv2

    from engine.stages.base import Context
    from engine.stages.denoise_learned import AutoDenoise, AutoDenoiseParams

    path = tmp_path / "flat.png"
    cv2.imwrite(str(path), np.full((16, 16, 3), 128, np.uint8))
    ctx = Context(source=engine.open(path), recipe=Recipe())
    data = AutoDenoise().prepare(AutoDenoiseParams(learned_from_iso=0.0), ctx)
    assert data["stage"].implementation == "classical" and data["data"]["strength"] == 0.0


def test_recipes_of_version_1_keep_the_classical_denoiser_and_the_lite_networks() -> None:
    from engine.pipeline import stage_for

    old = Recipe.from_dict({"version": 1, "exposure": 0.5})
    assert stage_for("denoise", old).implementation == "classical"
    pinned = Recipe.from_dict({"version": 1, "stages": {"denoise": {"implementation": "learned"},
                                                        "detail": {"implementation": "learned"}}})
    assert stage_for("denoise", pinned).resolve_params(pinned).model == "lite"
    assert stage_for("detail", pinned).resolve_params(pinned).model == "lite"
    base = Recipe.from_dict({"version": 1, "stages": {"denoise": {"implementation": "learned",
                                                                  "params": {"version": 1, "model": "base"}}}})
    assert stage_for("denoise", base).resolve_params(base).model == "base"
    off = Recipe.from_dict({"version": 1, "stages": {"denoise": {"enabled": False}}})
    assert not off.stage("denoise").enabled
    new = Recipe.from_json(Recipe().to_json())  # written now: the default stays the default
    assert stage_for("denoise", new).implementation == "auto"
    assert stage_for("denoise", new.replace(stages=LEARNED.stages)).resolve_params(LEARNED).model == "mid3"


def test_recipes_of_version_2_keep_the_fast_learned_denoiser() -> None:
    from engine.pipeline import stage_for

    for implementation, from_iso in (("learned", None), ("auto", 1600.0)):
        old = Recipe.from_dict({"version": 2, "stages": {"denoise": {"implementation": implementation}}})
        params = stage_for("denoise", old).resolve_params(old)
        assert params.model == "fast"
        assert getattr(params, "learned_from_iso", None) == from_iso
    stored = Recipe.from_json(old.to_json())  # written again now, it keeps saying so
    assert stage_for("denoise", stored).resolve_params(stored).model == "fast"


def test_recipes_of_version_3_keep_the_classical_default_and_the_mid_learned_denoiser() -> None:
    from engine.pipeline import stage_for

    assert stage_for("denoise", Recipe.from_dict({"version": 3, "exposure": 0.5})).implementation == "classical"
    for implementation, from_iso in (("learned", None), ("auto", 800.0)):
        old = Recipe.from_dict({"version": 3, "stages": {"denoise": {"implementation": implementation}}})
        params = stage_for("denoise", old).resolve_params(old)
        assert params.model == "mid" and getattr(params, "learned_from_iso", None) == from_iso
        stored = Recipe.from_json(old.to_json())
        assert stage_for("denoise", stored).resolve_params(stored).model == "mid"


@pytest.mark.parametrize(("implementation", "version", "model"),
                         [("learned", 2, "fast"), ("learned", 3, "mid"), ("learned", 4, "mid2"), ("learned", 5, "mid3"),
                          ("auto", 1, "fast"), ("auto", 2, "mid"), ("auto", 3, "mid2"), ("auto", 4, "mid2"),
                          ("auto", 5, "mid3")])
def test_stored_params_keep_the_denoiser_of_their_version(implementation: str, version: int, model: str) -> None:
    from engine.pipeline import stage_for

    stored = Recipe.from_dict({"stages": {"denoise": {"implementation": implementation,
                                                      "params": {"version": version, "strength": 80}}}})
    params = stage_for("denoise", stored).resolve_params(stored)
    assert params.model == model and params.strength == 80
    if implementation == "auto":
        from engine.stages.denoise_learned import LEARNED_FROM_ISO

        assert params.learned_from_iso == {"fast": 1600.0, "mid": 800.0, "mid2": 400.0}.get(model, LEARNED_FROM_ISO)


@pytest.mark.parametrize("version", [4, 5, 6, 7, 8])
def test_recipes_of_versions_4_to_8_keep_the_mid2_learned_denoiser(version: int) -> None:
    """Recipe version 9 made denoise-mid3 (learned on the demosaic without false colour) the default; a recipe or
    output written before names no model and keeps mid2, from ISO 400, also when written again now."""
    from engine.pipeline import stage_for

    assert stage_for("denoise", Recipe.from_dict({"version": version})).implementation == "auto"
    for implementation in ("learned", "auto"):
        old = Recipe.from_dict({"version": version, "stages": {"denoise": {"implementation": implementation}}})
        for recipe in (old, Recipe.from_json(old.to_json())):
            params = stage_for("denoise", recipe).resolve_params(recipe)
            assert params.model == "mid2"
            assert getattr(params, "learned_from_iso", 400.0) == 400.0
    implicit = Recipe.from_dict({"version": version})  # auto by default: pinned too
    assert stage_for("denoise", implicit).resolve_params(implicit).model == "mid2"
    assert stage_for("denoise", Recipe.from_dict({"version": 9})).resolve_params(Recipe()).model == "mid3"


@pytest.mark.parametrize("version", [4, 6, 7, 8])
def test_another_denoiser_chosen_for_an_older_recipe_keeps_what_its_params_meant(version: int) -> None:
    """An older recipe (a sidecar, an output's record) holds "auto" with its former params version pinned; that
    version is auto's, so ``--use denoise=classical`` (or a preset naming it) once stopped with "params version 4
    is newer than this hostplug (2)", and ``--use denoise=learned`` on a version 4-6 recipe with "no parameter
    'follow_scale'". The switch keeps what the params meant: the strength, the classical strength at the full-size
    image's before version 7, and the network auto ran (mid2)."""
    from engine.edits import apply_changes
    from engine.pipeline import stage_for
    from engine.xmp.presets import Preset

    old = Recipe.from_dict({"version": version, "stages": {"denoise": {"params": {"version": 3 if version < 7 else 4,
                                                                                  "strength": 40}}}})
    for recipe in (Recipe.from_dict({"version": version}), old):
        strength = recipe.stage("denoise").params.get("strength")
        for implementation, expected in (("classical", {"follow_scale": version >= 7}), ("learned", {"model": "mid2"})):
            preset = Preset(name="p", path=Path("p.xmp"), settings={},
                            stages={"denoise": {"implementation": implementation}})
            for changed in (apply_changes(recipe, {"stages": {"denoise": {"implementation": implementation}}}),
                            preset.apply(recipe), Recipe.from_json(preset.apply(recipe).to_json())):
                stage = stage_for("denoise", changed)
                params = stage.resolve_params(changed)
                assert stage.implementation == implementation and params.strength == strength
                assert {key: getattr(params, key) for key in expected} == expected
    # current params switch as before: what they set, as they are
    now = apply_changes(Recipe(), {"stages": {"denoise": {"implementation": "learned", "params": {"strength": 30}}}})
    assert stage_for("denoise", now).resolve_params(now).model == "mid3"
    again = apply_changes(now, {"stages": {"denoise": {"implementation": "classical"}}})
    assert again.stage("denoise").params == {"strength": 30}


def test_a_rerender_of_a_version_8_output_keeps_mid2_and_can_choose_another_denoiser(tmp_path: Path,
                                                                                     sample_dng: Path) -> None:
    """An output records its recipe of its day; ``hostplug rerender`` reads it as that version (auto with mid2 from
    ISO 400), and ``rerender --use denoise=classical`` of it works (it stopped: auto's params version 4 handed to
    the classical denoiser)."""
    import json

    import pyexiv2

    from engine.output.metadata import XMP_PREFIX, register_namespace
    from engine.pipeline import stage_for

    output = engine.render_file(sample_dng, tmp_path / "old.png", Recipe(),
                                engine.OutputOptions(long_edge=120)).output
    register_namespace()
    with pyexiv2.Image(str(output)) as image:
        recorded = json.loads(image.read_xmp()[f"Xmp.{XMP_PREFIX}.recipe"])
        image.modify_xmp({f"Xmp.{XMP_PREFIX}.recipe": json.dumps({**recorded, "version": 8})})
    again = engine.rerender_file(output)
    params = stage_for("denoise", again.recipe).resolve_params(again.recipe)
    assert (params.model, params.learned_from_iso) == ("mid2", 400.0)
    classical = engine.rerender_file(output, {"stages": {"denoise": {"implementation": "classical"}}})
    assert stage_for("denoise", classical.recipe).implementation == "classical"


def test_sidecars_of_schema_1_keep_the_classical_denoiser_and_presets_pin_nothing() -> None:
    from engine.xmp.recipe_properties import properties_to_recipe, properties_to_settings

    old = properties_to_recipe({"schemaVersion": "1", "exposure": "0.3"}, "old.xmp")
    assert old.stage("denoise").implementation == "classical" and old.exposure == 0.3
    current = properties_to_recipe({"schemaVersion": "4", "exposure": "0.3"}, "new.xmp")
    assert current.stage("denoise").implementation == "auto"  # its default then, named (with its params version)
    _settings, stages = properties_to_settings({"schemaVersion": "1", "exposure": "0.3"}, "preset.xmp")
    assert stages == {}


@pytest.mark.parametrize("schema", [4, 5, 6, 7, 8])
def test_sidecars_of_schema_4_to_8_keep_mid2_from_iso_400_and_presets_pin_nothing(schema: int) -> None:
    """A sidecar's recipe is of its layout's recipe version: schemas 4-8 keep mid2 (auto from ISO 400), also once
    written again at the current schema (``hostplug edit``); a preset of those schemas holds only what it sets."""
    from engine.pipeline import stage_for
    from engine.xmp.presets import Preset
    from engine.xmp.recipe_properties import (
        SCHEMA_VERSION,
        properties_to_recipe,
        properties_to_settings,
        recipe_to_properties,
    )

    def denoiser(recipe: Recipe) -> tuple[str, str, float | None]:
        stage = stage_for("denoise", recipe)
        params = stage.resolve_params(recipe)
        return stage.implementation, params.model, getattr(params, "learned_from_iso", None)

    for stages, expected in ((None, ("auto", "mid2", 400.0)), ('{"denoise":{"implementation":"auto"}}',
                                                               ("auto", "mid2", 400.0)),
                             ('{"denoise":{"implementation":"learned"}}', ("learned", "mid2", None))):
        properties = {"schemaVersion": str(schema), "exposure": "0.3", **({"stages": stages} if stages else {})}
        old = properties_to_recipe(properties, "old.xmp")
        written = recipe_to_properties(old)
        assert written["schemaVersion"] == str(SCHEMA_VERSION)
        assert denoiser(old) == denoiser(properties_to_recipe(written, "again.xmp")) == expected
        settings, preset_stages = properties_to_settings(properties, "preset.xmp")
        preset = Preset(name="p", path=Path("p.xmp"), settings=settings, stages=preset_stages)
        assert denoiser(preset.apply(Recipe()))[1:] == ("mid3", 800.0 if expected[0] == "auto" else None)
    assert denoiser(properties_to_recipe({"schemaVersion": str(SCHEMA_VERSION)}, "new.xmp")) == ("auto", "mid3", 800.0)


@pytest.fixture
def private_weights(weights_copy: Path) -> Path:
    """The default denoiser's weights file in a scratch copy of the weights folder."""
    _shipped("mid3")
    return weights_copy / models.read_manifest()["denoise-mid3"].file


def test_corrupted_weights_give_a_clear_error(private_weights: Path, sample_dng: Path) -> None:
    data = bytearray(private_weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    private_weights.write_bytes(bytes(data))
    expected = models.read_manifest()["denoise-mid3"].sha256
    with pytest.raises(ModelError) as error:
        engine.render(engine.open(sample_dng), LEARNED)
    assert str(private_weights) in str(error.value) and expected in str(error.value)


def test_missing_weights_give_a_clear_error(private_weights: Path, sample_dng: Path) -> None:
    private_weights.unlink()
    with pytest.raises(ModelError, match="missing") as error:
        engine.render(engine.open(sample_dng), LEARNED)
    assert str(private_weights) in str(error.value)
    assert models.read_manifest()["denoise-mid3"].sha256 in str(error.value)


def test_weights_damaged_or_removed_after_they_were_loaded_are_found_by_the_next_render(
        private_weights: Path, sample_dng: Path) -> None:
    # a tester's render service rendered on (exit 0) after a HOSTPLUG_WEIGHTS file was damaged, then removed:
    # the network it had loaded was never checked against its file again
    source = engine.open(sample_dng)
    engine.render(source, LEARNED, preview=64)  # loaded and cached
    data = bytearray(private_weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    private_weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupt or was changed"):
        engine.render(source, LEARNED, preview=64)
    private_weights.unlink()
    with pytest.raises(ModelError, match="missing"):
        engine.render(source, LEARNED, preview=64)


def test_a_process_without_torch_loads_the_network_beside_the_demosaic_to_the_same_pixels(
        sample_dng: Path, tmp_path: Path) -> None:
    """A cold process imports torch in a thread while the raw demosaics; the pixels are those of a process that
    had torch already (this one), which loads the network before rendering."""
    import subprocess
    import sys

    script = ("import sys, numpy as np, engine; from engine.recipe import Recipe, StageSettings\n"
              "from engine.stages.denoise_learned import _load_soon\n"
              "recipe = Recipe(stages={'denoise': StageSettings(implementation='learned')})\n"
              "assert 'torch' not in sys.modules\n"
              "loading = _load_soon('mid3')\n"
              "assert not loading.done()  # torch imports in the thread (about a second) while this one goes on\n"
              "np.save(sys.argv[2], engine.render(engine.open(sys.argv[1]), recipe).pixels)\n")
    subprocess.run([sys.executable, "-c", script, str(sample_dng), str(tmp_path / "cold.npy")], check=True)
    warm = engine.render(engine.open(sample_dng), LEARNED).pixels
    assert np.array_equal(np.load(tmp_path / "cold.npy"), warm)


def test_a_model_retrained_into_the_same_folder_is_loaded_and_rendered_anew(weights_copy: Path,
                                                                           sample_dng: Path) -> None:
    """A resident process (the render service) kept the network it had loaded, and the stages it had cached,
    after the model was retrained into the folder it reads: its renders recorded the new model's hash."""
    from dataclasses import replace

    from safetensors.torch import load_file, save_file

    from engine.stage_cache import StageCache

    _shipped("mid3")
    cache = StageCache()
    source = engine.open(sample_dng)
    before = engine.render(source, LEARNED, preview=128, cache=cache)
    old = denoiser.load("mid3")
    manifest = weights_copy / "manifest.json"
    entries = models.read_manifest(manifest)
    entry = entries["denoise-mid3"]
    save_file({k: v * 1.5 if v.is_floating_point() else v for k, v in load_file(entry.path).items()}, entry.path)
    models.write_manifest({**entries, "denoise-mid3": replace(entry, sha256=models.file_sha256(entry.path))},
                          manifest)
    assert denoiser.load("mid3") is not old
    after = engine.render(source, LEARNED, preview=128, cache=cache)
    assert "denoise" in after.timings and not np.array_equal(after.pixels, before.pixels)


def test_the_classical_strength_follows_the_noise_a_small_render_averaged_away(sample_dng: Path) -> None:
    from dataclasses import replace

    from engine.stages.base import Context
    from engine.stages.denoise import ClassicalDenoise
    from engine.stages.denoise_learned import AutoDenoise

    source = engine.open(sample_dng)
    source.camera = replace(source.camera, iso=6400.0)  # 6 stops of gain: strength 60 at full size
    source.noise_profile = None  # (the file's own profile would decide before its ISO)

    def strength(binning: float, recipe: Recipe | None = None) -> float:
        recipe = recipe or Recipe()
        ctx = Context(source=source, recipe=recipe)
        ctx.binning = binning
        stage = AutoDenoise() if recipe.stage("denoise").implementation == "auto" else ClassicalDenoise()
        stage.prepare(stage.resolve_params(recipe), ctx)
        return ctx.notes["denoise"]["strength"]

    assert strength(1.0) == 60.0
    assert strength(2.0) == 40.0  # 2 x 2 sensor pixels a pixel: green's variance / 2, one stop less gain
    assert strength(4.0) == 0.0  # 4 x 4: variance / 8, as clean as ISO 800 at full size
    # Recipes stored before recipe version 7 re-render a reduced output as they rendered it: at the full-size
    # image's strength; version 7 recipes followed the size already, whatever params version they stored.
    classical_v1 = {"stages": {"denoise": {"implementation": "classical", "params": {"version": 1}}}}
    assert strength(4.0, Recipe.from_dict({"version": 6, **classical_v1})) == 60.0
    assert strength(4.0, Recipe.from_dict({"version": 7, **classical_v1})) == 0.0
    assert strength(4.0, Recipe.from_dict({"version": 3})) == 60.0  # classical by default then
    auto_v3 = Recipe.from_dict({"version": 6, "stages": {"denoise": {"params": {"learned_from_iso": 12800}}}})
    assert auto_v3.stage("denoise").implementation == "auto" and strength(4.0, auto_v3) == 60.0
    auto_now = Recipe(stages={"denoise": StageSettings(implementation="auto", params={"learned_from_iso": 12800})})
    assert strength(4.0, auto_now) == 0.0


def test_a_diverged_training_never_replaces_the_weights(tmp_path: Path) -> None:
    # a tester's `train photofinish --correction nan` wrote a model of NaN over the weights and exited 0
    from engine.errors import HostplugError
    from engine.training.loop import ship

    ship("denoise-test", {"w": torch.ones(4)}, {}, {}, tmp_path)
    before = (tmp_path / "denoise-test.safetensors").read_bytes(), (tmp_path / "manifest.json").read_bytes()
    with pytest.raises(HostplugError, match="diverged: 1 of its weights are not numbers; nothing was written"):
        ship("denoise-test", {"w": torch.tensor([1.0, float("nan"), 2.0, 3.0])}, {}, {}, tmp_path)
    after = (tmp_path / "denoise-test.safetensors").read_bytes(), (tmp_path / "manifest.json").read_bytes()
    assert after == before and sorted(p.name for p in tmp_path.iterdir()) == ["denoise-test.safetensors",
                                                                               "manifest.json"]


def test_a_stop_while_weights_are_shipped_leaves_them_and_their_record_agreeing(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # stopped between replacing the weights and recording their hash, a training left a model no render could load
    import os
    import signal

    from engine.training.loop import ship

    def state(value: float) -> dict[str, torch.Tensor]:
        return {"w": torch.full((4,), value)}

    ship("denoise-test", state(1.0), {}, {}, tmp_path)

    class StoppedError(Exception):
        pass

    def stop(_signum: int, _frame: object) -> None:
        raise StoppedError

    write = models.write_manifest

    def stopped_before_the_record(entries: dict, path: Path) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # Ctrl-C or a kill, just after the new weights took the file's name
        write(entries, path)

    monkeypatch.setattr(models, "write_manifest", stopped_before_the_record)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(StoppedError):
            ship("denoise-test", state(2.0), {}, {}, tmp_path)
    finally:
        signal.signal(signal.SIGTERM, previous)
    recorded = models.read_manifest(tmp_path / "manifest.json")["denoise-test"]
    assert models.file_sha256(tmp_path / recorded.file) == recorded.sha256  # the new weights, recorded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["denoise-test.safetensors", "manifest.json"]


def test_eval_denoise_by_iso_prints_one_json_document_or_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from engine.training import eval_denoiser
    from hostplug.cli import main

    def measured(model: object, name: str, device: str, log: object) -> dict:
        rows = {str(iso): {"learned_over_classical_db": gain} for iso, gain in ((400, 0.4), (800, 1.2))}
        return {"by_iso": rows, "pays_db": 1.0, "learned_from_iso": 800.0, "seconds_per_megapixel": {}}

    monkeypatch.setattr(eval_denoiser, "gain_by_iso", measured)
    runner = CliRunner()
    as_json = runner.invoke(main, ["eval", "denoise", "--sizes", "fast,lite", "--by-iso", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert sorted(json.loads(as_json.stdout)) == ["denoise-fast", "denoise-lite"]  # one document, both sizes
    table = runner.invoke(main, ["eval", "denoise", "--sizes", "fast", "--by-iso"])
    assert table.stdout.splitlines()[0].startswith("Weights: ")  # which weights were measured
    assert table.stdout.splitlines()[4] == "| denoise-fast | +0.40 dB | +1.20 dB | 800.0 |"


def test_eval_denoise_says_and_records_into_the_weights_it_measured(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # --record wrote a candidate's figures into the installed manifest, under the shipped model's entry
    import json

    from conftest import candidate_weights, hostplug

    from engine.training import eval_denoiser

    _shipped("fast")
    fast = models.entry("denoise-fast")
    installed, candidate = candidate_weights(tmp_path, monkeypatch, "denoise-fast")
    published = (installed / "manifest.json").read_bytes()

    def measured(nets: dict, device: str, log: object) -> eval_denoiser.DenoiseResult:
        assert list(nets) == ["learned-fast"]
        psnr = {"none": {800: 30.0}, "learned-fast": {800: 31.5}}
        return eval_denoiser.DenoiseResult(psnr, psnr, {"learned-fast": 0.5})

    monkeypatch.setattr(eval_denoiser, "evaluate", measured)
    monkeypatch.setenv("HOSTPLUG_WEIGHTS", str(candidate))
    models.clear_cache()
    result = hostplug("eval", "denoise", "--sizes", "fast", "--record", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["weights"] == {"denoise-fast": {"folder": str(candidate), "sha256": fast.sha256}}
    assert report["seed"] == eval_denoiser.NOISE_SEED and report["test_set"] == eval_denoiser.TEST_SET
    assert models.read_manifest(candidate / "manifest.json")["denoise-fast"].metrics["gain_linear_db"] == {"800": 1.5}
    assert (installed / "manifest.json").read_bytes() == published  # the published figures stay
    text = hostplug("eval", "denoise", "--sizes", "fast").stdout.splitlines()
    assert text[0] == (f"Weights: {candidate} (denoise-fast sha256 {fast.sha256[:16]}...); noise seed "
                       f"{eval_denoiser.NOISE_SEED}; test set: {eval_denoiser.TEST_SET}")
    assert text[2].startswith("Each cell: PSNR linear / rendered, dB (gain over none: linear / rendered)")
    assert "| learned-fast | 31.50 / 31.50 (+1.50 / +1.50) | 0.50 |" in text
    models.clear_cache()


def test_eval_denoise_refuses_an_unknown_size_before_loading_any(tmp_path: Path) -> None:
    from conftest import error_lines, hostplug

    result = hostplug("eval", "denoise", "--sizes", "fast,bogus")
    assert result.exit_code == 2  # a wrong option, not a missing model (6)
    (line,) = error_lines(result.stderr)
    assert "unknown size 'bogus'; the sizes: fast, mid, mid2, mid3, lite, base" in line


@pytest.mark.parametrize(("where", "code", "words"), [
    ("afile/sub", 5, "the weights cannot be written there (Not a directory)"),
    ("damaged", 6, 'the model manifest cannot be read (not an object with a "models" object)'),
])
def test_a_weights_dir_that_cannot_take_the_weights_is_one_line_before_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, code: int, words: str) -> None:
    # found only once the whole training was done, then a traceback
    from conftest import error_lines, hostplug

    from engine.errors import OptionError
    from engine.training import train_denoiser

    def no_training(*_args: object, **_kwargs: object) -> None:
        raise OptionError("the training starts")  # exit 2

    monkeypatch.setattr(train_denoiser, "train", no_training)
    (tmp_path / "afile").write_text("")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "manifest.json").write_text('{"models": []}')
    result = hostplug("train", "denoise", "--size", "fast", "--steps", "1", "--weights-dir", tmp_path / where)
    assert result.exit_code == code
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"hostplug: error: {tmp_path / where}") and words in line, line
    assert "reinstall" not in line  # the user's folder, not the installed one
    fresh = tmp_path / "new" / "weights"  # one that can be made: checked, and nothing left behind
    started = hostplug("train", "denoise", "--size", "fast", "--steps", "1", "--weights-dir", fresh)
    assert started.exit_code == 2 and "the training starts" in started.stderr
    assert not (tmp_path / "new").exists()


def test_a_checkpoint_in_a_missing_folder_is_a_wrong_option_before_training(tmp_path: Path) -> None:
    from conftest import error_lines, hostplug

    result = hostplug("train", "denoise", "--size", "fast", "--steps", "5", "--checkpoint",
                      tmp_path / "nodir" / "x.pt", "--weights-dir", tmp_path / "out")
    assert result.exit_code == 2
    (line,) = error_lines(result.stderr)
    assert f"no folder {tmp_path / 'nodir'} to save it in" in line
    assert not (tmp_path / "out").exists()


def test_weights_that_cannot_be_written_after_training_are_one_error_and_the_old_ones_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the clean-up of the partial file raised again (NotADirectoryError), hiding the first error
    import errno
    import os

    from engine.errors import OutputError
    from engine.training.loop import ship

    (tmp_path / "afile").write_text("")
    with pytest.raises(OutputError, match="the trained weights of denoise-test cannot be written"):
        ship("denoise-test", {"w": torch.zeros(4)}, {}, {}, tmp_path / "afile" / "sub")
    folder = tmp_path / "weights"
    ship("denoise-test", {"w": torch.zeros(4)}, {}, {}, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def read_only(*_args: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(OutputError, match="Read-only file system"):
        ship("denoise-test", {"w": torch.ones(4)}, {}, {}, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing half-written
