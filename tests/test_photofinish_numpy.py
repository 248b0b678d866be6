"""The numpy form of photofinishing (what a CPU render runs) against the torch form (what trains): same parameters,
same pixels, for every shipped style. That a render never imports torch: tests/test_startup.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import models
from engine import operators_numpy as np_ops
from engine.models import photofinish_net as torch_net
from engine.models.photofinish_numpy import PhotofinishArrays, thumbnail
from engine.stages.base import Context
from engine.stages.photofinish import Photofinish, PhotofinishParams, apply_operators
from engine.stages.photofinish_learned import LearnedPhotofinish, load_arrays, load_network
from engine.styles import STYLES

PHOTOFINISH_MODELS = sorted(name for name in models.read_manifest() if name.startswith("photofinish-"))
BLEND = "warm:0.7,moody:0.3"
# Both forms compute in float32 with different maths libraries (tanh, pow, log differ by an ulp). Almost every pixel
# agrees within 1e-6; the worst, 1.3/65535, sits just below white, where the tone curve's (1 - x) turns an ulp of
# the highlight shoulder's tanh into a visible relative difference. Two 16-bit steps bound it with some margin.
TOLERANCE = 2 / 65535


def _scene(seed: int, scale: float = 1.0) -> np.ndarray:
    """A linear image with smooth gradients, saturated patches, deep shadows and clipped highlights."""
    rng = np.random.default_rng(seed)
    h, w = 240, 360
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.02 + 0.3 * (x / w) ** 2 + 0.1 * np.sin(y / 17.0) ** 2
    image = base[..., None] * rng.uniform(0.5, 1.5, 3).astype(np.float32)
    for _ in range(12):
        top, left = rng.integers(0, h - 40), rng.integers(0, w - 40)
        image[top:top + 40, left:left + 40] = rng.uniform(0.0, 1.2, 3) ** 2
    image[:30, -60:] = 4.0  # a light source beyond the sensor's white
    image += rng.normal(0.0, 0.002, image.shape).astype(np.float32)
    return np.maximum(image * scale, 0.0).astype(np.float32)


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    """A colour chart, a contrasty scene, the same scene 6 stops darker."""
    from engine.training import synthetic

    chart = synthetic.render_raw(synthetic.camera_from_colour(), synthetic.illuminant("D65"),
                                 synthetic.scene_colorchecker(90, 140), noise=False).linear_srgb
    return [np.ascontiguousarray(chart, dtype=np.float32), _scene(0), _scene(1, 2.0**-6)]


def _torch_params(style: str, low: np.ndarray, auto: bool) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = load_network(style)(torch_net.thumbnail(low), auto_exposure=auto)
    return {name: value[0].numpy() if value.dim() == 1 else value[0:1].numpy() for name, value in out.items()}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_numpy_network_predicts_the_parameters_of_the_torch_network(style: str, scenes: list[np.ndarray]) -> None:
    for low in scenes:
        for auto in (False, True):
            expected = _torch_params(style, low, auto)
            got = load_arrays(style)(thumbnail(low), auto_exposure=auto)
            assert set(got) == set(expected) - {"raw"}  # "raw" pre-activations only serve training's regularisers
            for name, value in got.items():
                np.testing.assert_allclose(np.asarray(value), expected[name], rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("name", PHOTOFINISH_MODELS)
def test_numpy_network_holds_exactly_the_torch_networks_tensors(name: str) -> None:
    """Whatever weights the manifest names (new styles included), the numpy form reads them as the torch form."""
    architecture = models.entry(name).architecture
    torch_shapes = {key: tuple(t.shape) for key, t in torch_net.PhotofinishNet(**architecture).state_dict().items()}
    assert PhotofinishArrays(**architecture).shapes() == torch_shapes
    assert models.build_network(name, PhotofinishArrays).weights  # loads, verified, through safetensors' numpy form


def test_numpy_network_refuses_weights_that_do_not_fit() -> None:
    state = models.load_state("photofinish-natural", "numpy")
    net = PhotofinishArrays(**models.entry("photofinish-natural").architecture)
    with pytest.raises(RuntimeError, match="do not match"):
        net.load_state_dict({k: v for k, v in state.items() if k != "scalars.bias"})
    with pytest.raises(RuntimeError, match="do not match"):
        net.load_state_dict({**state, "scalars.bias": np.zeros(3, dtype=np.float32)})


RENDERS = [PhotofinishParams(style=s) for s in sorted(STYLES)] + [
    PhotofinishParams(style=BLEND),
    PhotofinishParams(style=BLEND, strength=1.4, exposure=0.7, contrast=30, highlights=-40, shadows=50,
                      saturation=-20, vibrance=40),
    PhotofinishParams(style="vivid", auto_exposure=True, contrast=-25),
]


@pytest.mark.parametrize("params", RENDERS, ids=lambda p: f"{p.style}-{p.strength}-{p.contrast}-{p.auto_exposure}")
def test_numpy_operators_render_the_pixels_of_the_torch_operators(params: PhotofinishParams,
                                                                  scenes: list[np.ndarray]) -> None:
    stage = LearnedPhotofinish()
    for low in scenes:
        operators = stage.operators_for(params, low)
        got = np_ops.apply(low, operators)
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(low.transpose(2, 0, 1)))[None]
            expected = apply_operators(x, operators)[0].permute(1, 2, 0).numpy()
        assert got.dtype == np.float32 and got.shape == low.shape
        assert np.abs(got - expected).max() <= TOLERANCE


def test_classical_operators_render_the_pixels_of_the_torch_operators(scenes: list[np.ndarray]) -> None:
    params = PhotofinishParams(contrast=40, shadows=60, highlights=-30, saturation=25, vibrance=-35)
    for low in scenes:
        operators = Photofinish().operators_for(params, low)
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(low.transpose(2, 0, 1)))[None]
            expected = apply_operators(x, operators)[0].permute(1, 2, 0).numpy()
        assert np.abs(np_ops.apply(low, operators) - expected).max() <= TOLERANCE


def test_stage_pins_the_parameters_the_torch_network_predicts(scenes: list[np.ndarray]) -> None:
    """The stage's JSON parameters are the torch network's, rounded alike: at most one step of the last digit
    apart (a value within 1e-5 of a rounding boundary may round the other way)."""
    for style in sorted(STYLES):
        for low in scenes:
            got = LearnedPhotofinish().operators_for(PhotofinishParams(style=style), low)
            with torch.no_grad():
                expected = torch_net.to_json(load_network(style)(torch_net.thumbnail(low)))
            for name, value in expected.items():
                np.testing.assert_allclose(np.asarray(got[name]), np.asarray(value), rtol=0, atol=1.01e-4,
                                           err_msg=f"{style} {name}")


def test_the_stage_renders_with_numpy_on_the_cpu(scenes: list[np.ndarray]) -> None:
    low = scenes[1]
    ctx = Context(source=None, recipe=None, device="cpu")  # type: ignore[arg-type]  # process reads device, notes
    params = PhotofinishParams(style=BLEND)
    out = LearnedPhotofinish().process(low, {"params": params}, ctx)
    assert np.array_equal(out, np_ops.apply(low, ctx.notes["photofinish"]["operators"]))



@pytest.mark.parametrize(("grid", "table"), [((1, 1, 1, 1, 1), (1, 2, 1, 1)), ((1, 1, 1, 1, 2), (1, 2, 1, 2)),
                                             ((1, 1, 3, 5, 2), (1, 2, 4, 7))])
def test_numpy_operators_take_grids_and_tables_of_any_size_as_torch_does(grid: tuple[int, ...],
                                                                         table: tuple[int, ...],
                                                                         scenes: list[np.ndarray]) -> None:
    """Pinned parameters (a sidecar, an output's XMP) may hold grids of other sizes than the networks predict."""
    rng = np.random.default_rng(3)
    operators = {"gain_ev": 0.5, "knee": 0.8, "tone": [1.0, 1.15, 1.2], "gamma": 2.2,
                 "local_tone": rng.normal(0.0, 0.5, grid).round(4).tolist(),
                 "chroma": rng.normal(0.0, 0.3, table).round(4).tolist()}
    low = scenes[1]
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(low.transpose(2, 0, 1)))[None]
        expected = apply_operators(x, operators)[0].permute(1, 2, 0).numpy()
    assert np.abs(np_ops.apply(low, operators) - expected).max() <= TOLERANCE
