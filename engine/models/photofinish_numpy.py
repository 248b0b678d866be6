"""The photofinishing network's forward pass in numpy: what a render runs, without importing torch.

Why two forms: :class:`engine.models.photofinish_net.PhotofinishNet` is the torch network, differentiable, which
training needs (and which defines the architecture and writes the weights). Rendering only needs its forward pass
on one 64 x 64 thumbnail, a few thousand multiply-adds, for which ``import torch`` (about 1.6 s) would cost a cold
render more than everything else it starts up. :class:`PhotofinishArrays` is that forward pass in numpy: it is
built from the same manifest entry (the same ``architecture`` arguments), reads the same safetensors file
(through safetensors' numpy loader) with the same tensor names, and refuses weights whose names or shapes differ
from what the torch network would hold. The constants both forms share are declared here, once, torch-free.
``tests/test_photofinish_numpy.py`` checks that both predict the same parameters for every shipped style.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from engine import operators_numpy as ops
from engine.errors import ModelError

THUMB = 64
LTM_BINS, LTM_CELLS = 8, 8
CHROMA_SIZE, CHROMA_COARSE = 17, 9
N_STATS = 12
EV_LIMITS = (-4.0, 12.0)
STAT_QUANTILES = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98)
FLOOR = 2.0**-14  # the darkest level the network's inputs resolve
LEAK = 0.1  # the LeakyReLU slope
N_SCALARS = 7  # ev offset, knee, a, b, c, gamma, share of the exposure estimate

_F = np.float32


def thumbnail(linear: np.ndarray, size: int = THUMB) -> np.ndarray:
    """A size x size x 3 area-averaged thumbnail of an H x W x 3 linear image (aspect not kept)."""
    return cv2.resize(np.ascontiguousarray(linear, dtype=np.float32), (size, size), interpolation=cv2.INTER_AREA)


def base_exposure(x: np.ndarray) -> float:
    """Classical exposure estimate: stops that bring the median luminance (the lower middle value, as torch's
    ``median``) to 0.18."""
    y = np.log2(np.maximum(ops.luminance(x), _F(FLOOR))).ravel()
    median = np.partition(y, (y.size - 1) // 2)[(y.size - 1) // 2]
    return float(np.clip(_F(math.log2(0.18)) - median, *EV_LIMITS))


def white_exposure(x: np.ndarray) -> float:
    """White-point exposure estimate: stops that bring the 99.9th percentile of the brightest channel to 1."""
    brightest = np.maximum(np.maximum(np.maximum(x[..., 0], x[..., 1]), x[..., 2]), _F(FLOOR))
    return float(np.clip(-np.log2(_F(np.quantile(brightest, 0.999))), *EV_LIMITS))


def _stats(x: np.ndarray) -> np.ndarray:
    """Global statistics of an exposure-normalised thumbnail (N_STATS): log2-luminance percentiles, their spread,
    and the mean, spread and cast of the log-chromaticity (standard deviations unbiased, as torch's)."""
    y = np.log2(np.maximum(ops.luminance(x), _F(FLOOR))).ravel()
    q = np.quantile(y, STAT_QUANTILES).astype(np.float32)
    _, u, v = ops.log_chroma(np.maximum(x, _F(FLOOR)))
    u, v = np.clip(u.ravel(), _F(-3.0), _F(3.0)), np.clip(v.ravel(), _F(-3.0), _F(3.0))
    chroma = np.sqrt(u**2 + v**2)
    return np.concatenate([q / _F(4.0), [y.std(ddof=1) / _F(4.0), chroma.mean(), chroma.std(ddof=1), u.mean(),
                                         v.mean()]]).astype(np.float32)


def _leaky(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, x * _F(LEAK))


def _conv_stride2(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """3 x 3 convolution, stride 2, zero padding 1 (``nn.Conv2d(cin, cout, 3, stride=2, padding=1)``), C x H x W."""
    c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    ho, wo = (h + 1) // 2, (w + 1) // 2
    patches = np.stack([padded[:, i:i + 2 * ho:2, j:j + 2 * wo:2] for i in range(3) for j in range(3)], axis=1)
    out = weight.reshape(weight.shape[0], -1) @ patches.reshape(c * 9, ho * wo)  # (cin, ky, kx) order, as torch
    return (out + bias[:, None]).reshape(-1, ho, wo)


def _interpolate(coarse: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of C x n x n to C x size x size with the corners kept (``align_corners=True``)."""
    n = coarse.shape[-1]
    pos = np.arange(size, dtype=np.float32) * _F((n - 1) / (size - 1))
    lower = np.minimum(pos.astype(np.intp), n - 2)
    frac = pos - lower.astype(np.float32)
    weights = np.zeros((size, n), dtype=np.float32)
    weights[np.arange(size), lower] = _F(1.0) - frac
    weights[np.arange(size), lower + 1] += frac
    return np.einsum("yi,cij,xj->cyx", weights, coarse, weights)


class PhotofinishArrays:
    """The forward pass of :class:`~engine.models.photofinish_net.PhotofinishNet` with the same constructor
    arguments, on numpy arrays; weights from :meth:`load_state_dict` (safetensors' numpy form)."""

    weights_format = "numpy"  # engine.models loads this network's weights as numpy arrays

    def __init__(self, width: int = 8, features: int = 48, chroma_limit: float = 1.5, exposure: str = "white",
                 render_ev: float = 1.5, correction: float = 1.0, hidden: int = 16) -> None:
        if exposure not in ("white", "raw"):
            raise ValueError(f"exposure must be 'white' or 'raw', not {exposure!r}")
        self.width, self.features, self.hidden, self.chroma_limit = width, features, hidden, chroma_limit
        self.exposure, self.render_ev, self.correction = exposure, float(render_ev), float(correction)
        self.weights: dict[str, np.ndarray] = {}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the torch network with these arguments holds, by its state-dict name, and its shape."""
        w, f, hidden = self.width, self.features, self.hidden
        out: dict[str, tuple[int, ...]] = {}
        for i, (cin, cout) in enumerate([(3, w), (w, 2 * w), (2 * w, 4 * w)]):
            out |= {f"encoder.{i}.0.weight": (cout, cin, 3, 3), f"encoder.{i}.0.bias": (cout,)}
        for name, (fan_in, fan_out) in {"global_fc.0": (N_STATS + 2, f), "global_fc.2": (f, f),
                                        "scalars": (f, N_SCALARS), "chroma.0": (f, hidden),
                                        "chroma.2": (hidden, 2 * CHROMA_COARSE**2)}.items():
            out |= {f"{name}.weight": (fan_out, fan_in), f"{name}.bias": (fan_out,)}
        for name, (cin, cout) in {"ltm.0": (4 * w + f, hidden), "ltm.2": (hidden, LTM_BINS)}.items():
            out |= {f"{name}.weight": (cout, cin, 1, 1), f"{name}.bias": (cout,)}
        if self.exposure == "raw":
            out["auto_offset"] = ()
        return out

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Take the weights (exactly the tensors :meth:`shapes` names; ``RuntimeError`` otherwise, as torch)."""
        expected = self.shapes()
        got = {name: tuple(np.shape(value)) for name, value in state.items()}
        if got != expected:
            wrong = sorted(set(got.items()) ^ set(expected.items()))
            raise RuntimeError(f"weights do not match the architecture: {wrong[:4]}")
        self.weights = {name: np.asarray(value, dtype=np.float32) for name, value in state.items()}

    def eval(self) -> PhotofinishArrays:
        """Itself (the numpy forward pass has no training mode); for :func:`engine.models.build_network`."""
        return self

    def _linear(self, name: str, x: np.ndarray) -> np.ndarray:
        return self.weights[f"{name}.weight"] @ x + self.weights[f"{name}.bias"]

    def __call__(self, thumb: np.ndarray, auto_exposure: bool = False) -> dict[str, Any]:
        """Operator parameters (float32 numbers and arrays, as the torch network's first batch item) for one
        THUMB x THUMB x 3 linear thumbnail; ``auto_exposure`` as :meth:`PhotofinishNet.forward`."""
        if not self.weights:
            raise ModelError("the photofinish network has no weights loaded")
        if auto_exposure and self.exposure == "raw":
            shift = _F(white_exposure(thumb)) + self.weights["auto_offset"] - _F(self.render_ev)
            params = self(thumb * np.exp2(shift))
            return {**params, "gain_ev": params["gain_ev"] + shift}
        thumb = np.asarray(thumb, dtype=np.float32)
        base = _F(white_exposure(thumb))
        x = thumb * np.exp2(base)
        h = np.clip((np.log2(np.maximum(x, _F(FLOOR))) + _F(5.0)) / _F(5.0), _F(-2.0), _F(2.0)).transpose(2, 0, 1)
        for i in range(3):
            h = _leaky(_conv_stride2(h, self.weights[f"encoder.{i}.0.weight"], self.weights[f"encoder.{i}.0.bias"]))
        estimates = np.array([base, base_exposure(thumb)], dtype=np.float32) / _F(8.0)
        g = _leaky(self._linear("global_fc.0", np.concatenate([_stats(x), estimates])))
        g = _leaky(self._linear("global_fc.2", g))
        s = self._linear("scalars", g)
        cells = h.shape[1:]
        local = np.concatenate([h, np.broadcast_to(g[:, None, None], (g.size, *cells))]).reshape(-1, h[0].size)
        hidden = _leaky(self.weights["ltm.0.weight"][:, :, 0, 0] @ local + self.weights["ltm.0.bias"][:, None])
        ltm = self.weights["ltm.2.weight"][:, :, 0, 0] @ hidden + self.weights["ltm.2.bias"][:, None]
        grid = _F(2.0) * np.tanh(ltm.reshape(LTM_BINS, *cells) / _F(2.0))
        limit = _F(self.chroma_limit)
        hidden_c = _leaky(self._linear("chroma.0", g))
        coarse = limit * np.tanh(self._linear("chroma.2", hidden_c) / limit)
        coarse = coarse.reshape(2, CHROMA_COARSE, CHROMA_COARSE)
        t = np.tanh(s)
        a = np.exp(_F(0.9) * t[2])
        b = _F(1.15) * np.exp(_F(0.9) * t[3])
        if self.exposure == "white":
            gain = _F(1.0) / (_F(1.0) + np.exp(-s[6])) * base + _F(3.0) * np.tanh(s[0] / _F(3.0))
        else:
            correction = _F(self.correction)
            gain = _F(self.render_ev) + correction * np.tanh(s[0] / _F(max(self.correction, 1e-6)))
        return {
            "gain_ev": gain,
            "knee": _F(0.75) + _F(0.2) * t[1],
            "a": a,
            "b": b,
            "c": ops.tone_curve_midpoint(a, b) * np.exp(_F(0.7) * t[4]),
            "local_tone": grid[None, None],
            "chroma": _interpolate(coarse, CHROMA_SIZE)[None],
            "gamma": _F(2.2) * np.exp(_F(0.4) * t[5]),
        }


def to_json(p: dict[str, Any]) -> dict[str, Any]:
    """The parameters (:meth:`PhotofinishArrays.__call__`'s, or one image's of the torch network) in the JSON form
    the photofinish stage pins, rounded as the classical ones (the grids in double precision, so rounding again
    is a no-op)."""

    def num(name: str, digits: int = 4) -> float:
        return round(float(p[name]), digits)

    return {
        "gain_ev": num("gain_ev"),
        "knee": num("knee"),
        "tone": [num("a"), num("b"), num("c", 6)],
        "local_tone": np.asarray(p["local_tone"], dtype=np.float64).round(4).tolist(),
        "chroma": np.asarray(p["chroma"], dtype=np.float64).round(4).tolist(),
        "gamma": num("gamma"),
    }
