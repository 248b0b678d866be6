"""The photofinishing network: a thumbnail of the linear image in, the parameters of every operator out.

One network per picture style. It reads a :data:`THUMB` x :data:`THUMB` thumbnail of the linear, scene-referred
image, brought to a normalised brightness by a classical exposure estimate, and predicts

- from global statistics of the thumbnail (log2-luminance percentiles and spread, chroma mean, spread and cast;
  and how bright the picture was as exposed, through two exposure estimates; an MLP): ``gain_ev`` as
  ``share * estimate + offset`` (``share`` in 0..1: how much of the full correction to apply; ``offset`` +-3
  EV), ``knee`` (highlight shoulder),
  tone curve ``a``, ``b``, ``c``, display ``gamma``, each bounded around a sensible value, and ``chroma``: a
  2 x 9 x 9 table of log-chroma offsets (+-``chroma_limit``: 1.5, or 3 for monochrome, which must cancel
  any chroma), upsampled to the operators' 17 x 17 table;
- from a small convolutional encoder's 8 x 8 feature map plus the global features: ``local_tone``, a bilateral
  grid (1 x 1 x 8 x 8 x 8) of log2 gains, +-2 stops.

The exposure estimate is the *white point*: the gain that brings the 99.9th percentile of the brightest channel
to 1 (:func:`white_exposure`, like LibRaw's auto-brightness). Photographs nearly always reach white somewhere,
so it misjudges a picture by 0.4 EV (standard deviation over 16 photographs of the installed wheels), where the
median-to-mid-grey estimate (:func:`base_exposure`, still an input) misjudges by 1.6 EV: a dark background or a
bright sky moves the median, not the white. Trained on the same photographs with the same settings, the natural
network scored 32.4 dB PSNR on the held-out photographs (photofinishing alone, three exposures each) with the
white-point estimate, 19.4 dB with the median one. The median estimate stays an input, so a picture without
whites (the held-out cat) can still be told from one with them.

Global parameters come from statistics rather than from convolutional features on purpose: trained on a handful of
photographs, statistics generalise to unseen pictures, deep features memorise the training ones. Every output head
starts at zero, which decodes to mild defaults (a = 1, b = 1.15, gamma 2.2, identity grids): training only has to
learn what a style changes. About 14 k parameters.

This torch form is the one that trains (it is differentiable) and defines the architecture. A render runs the
same forward pass in numpy, :class:`engine.models.photofinish_numpy.PhotofinishArrays`, from the same weights and
manifest arguments, without the 1.6 s of ``import torch``; the constants both forms share are declared there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import operators as ops
from engine.models import photofinish_numpy
from engine.models.photofinish_numpy import (
    CHROMA_COARSE,
    CHROMA_SIZE,
    EV_LIMITS,
    FLOOR,
    LEAK,
    LTM_BINS,
    N_SCALARS,
    N_STATS,
    STAT_QUANTILES,
    THUMB,
)

__all__ = ["THUMB", "PhotofinishNet", "base_exposure", "parameter_count", "run_operators", "thumbnail", "to_json",
           "white_exposure"]


def thumbnail(linear: np.ndarray, size: int = THUMB) -> torch.Tensor:
    """:func:`engine.models.photofinish_numpy.thumbnail` as a 1 x 3 x size x size tensor."""
    small = photofinish_numpy.thumbnail(linear, size)
    return torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))[None]


def base_exposure(x: torch.Tensor) -> torch.Tensor:
    """Classical exposure estimate (N,): stops that bring the median luminance to 0.18 (the median, unlike the
    log-average, ignores how much of the frame is black)."""
    y = torch.log2(ops.luminance(x).clamp(min=FLOOR)).flatten(1)
    return (math.log2(0.18) - y.median(dim=1).values).clamp(*EV_LIMITS)


def white_exposure(x: torch.Tensor) -> torch.Tensor:
    """White-point exposure estimate (N,): stops that bring the 99.9th percentile of the brightest channel to 1
    (the brightest channel, so a saturated light is not pushed into clipping)."""
    brightest = x.amax(dim=1).flatten(1).clamp(min=FLOOR)
    return (-torch.log2(torch.quantile(brightest, 0.999, dim=1))).clamp(*EV_LIMITS)


def _stats(x: torch.Tensor) -> torch.Tensor:
    """Global statistics of an exposure-normalised thumbnail (N x N_STATS): log2-luminance percentiles, their
    spread, and the mean, spread and cast of the log-chromaticity."""
    y = torch.log2(ops.luminance(x).clamp(min=FLOOR)).flatten(1)
    q = torch.quantile(y, torch.tensor(STAT_QUANTILES, device=x.device), dim=1).T
    _, u, v = ops.log_chroma(x.clamp(min=FLOOR))
    u, v = u.flatten(1).clamp(-3.0, 3.0), v.flatten(1).clamp(-3.0, 3.0)
    chroma = torch.sqrt(u**2 + v**2)
    return torch.cat([q / 4.0, y.std(dim=1, keepdim=True) / 4.0, chroma.mean(dim=1, keepdim=True),
                      chroma.std(dim=1, keepdim=True), u.mean(dim=1, keepdim=True), v.mean(dim=1, keepdim=True)],
                     dim=1)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(LEAK))


class PhotofinishNet(nn.Module):
    """Thumbnail -> operator parameters (see the module docstring)."""

    auto_offset: torch.Tensor  # a buffer, registered only by ``raw``-exposure networks

    def __init__(self, width: int = 8, features: int = 48, chroma_limit: float = 1.5, exposure: str = "white",
                 render_ev: float = 1.5, correction: float = 1.0, hidden: int = 16) -> None:
        super().__init__()
        if exposure not in ("white", "raw"):
            raise ValueError(f"exposure must be 'white' or 'raw', not {exposure!r}")
        self.chroma_limit = chroma_limit
        self.exposure, self.render_ev, self.correction = exposure, float(render_ev), float(correction)
        w = width
        self.width, self.features, self.hidden = width, features, hidden
        self.encoder = nn.ModuleList([_conv(3, w), _conv(w, 2 * w), _conv(2 * w, 4 * w)])
        self.global_fc = nn.Sequential(nn.Linear(N_STATS + 2, features), nn.LeakyReLU(LEAK),
                                       nn.Linear(features, features), nn.LeakyReLU(LEAK))
        self.scalars = nn.Linear(features, N_SCALARS)  # ev offset, knee, a, b, c, gamma, share of the estimate
        self.ltm = nn.Sequential(nn.Conv2d(4 * w + features, hidden, 1), nn.LeakyReLU(LEAK),
                                 nn.Conv2d(hidden, LTM_BINS, 1))
        self.chroma = nn.Sequential(nn.Linear(features, hidden), nn.LeakyReLU(LEAK),
                                    nn.Linear(hidden, 2 * CHROMA_COARSE * CHROMA_COARSE))
        if exposure == "raw":
            # --auto-exposure: the white-point estimate plus this offset (set after training, see the docstring)
            self.register_buffer("auto_offset", torch.zeros(()))
        for head in (self.scalars, self.ltm[-1], self.chroma[-1]):
            assert isinstance(head, (nn.Linear, nn.Conv2d)) and head.bias is not None
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def architecture(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this network (the manifest's ``architecture``); the
        white-point networks keep the three arguments their manifest entries always had."""
        arch: dict[str, Any] = {"width": self.width, "features": self.features, "chroma_limit": self.chroma_limit}
        if self.hidden != 16:
            arch["hidden"] = self.hidden
        if self.exposure == "raw":
            arch.update(exposure="raw", render_ev=self.render_ev, correction=self.correction)
        return arch

    def forward(self, thumb: torch.Tensor, auto_exposure: bool = False) -> dict[str, torch.Tensor]:
        """Operator parameters (tensors with a batch dimension) for N x 3 x THUMB x THUMB linear thumbnails.

        ``auto_exposure`` matters only to a ``raw``-exposure network: the white point is metered instead."""
        if auto_exposure and self.exposure == "raw":
            return self._metered(thumb)
        base = white_exposure(thumb)
        x = thumb * torch.exp2(base).reshape(-1, 1, 1, 1)
        h = ((torch.log2(x.clamp(min=FLOOR)) + 5.0) / 5.0).clamp(-2.0, 2.0)
        for layer in self.encoder:
            h = layer(h)
        estimates = torch.stack([base, base_exposure(thumb)], dim=1) / 8.0
        g = self.global_fc(torch.cat([_stats(x), estimates], dim=1))
        s = self.scalars(g)
        local = h  # 8 x 8 cells
        local = torch.cat([local, g[:, :, None, None].expand(-1, -1, *local.shape[2:])], dim=1)
        grid = 2.0 * torch.tanh(self.ltm(local) / 2.0)  # N x D x GH x GW
        limit = self.chroma_limit
        coarse = limit * torch.tanh(self.chroma(g) / limit).reshape(-1, 2, CHROMA_COARSE, CHROMA_COARSE)
        a = torch.exp(0.9 * torch.tanh(s[:, 2]))
        b = 1.15 * torch.exp(0.9 * torch.tanh(s[:, 3]))
        if self.exposure == "white":
            gain = torch.sigmoid(s[:, 6]) * base + 3.0 * torch.tanh(s[:, 0] / 3.0)
        else:
            gain = self.render_ev + self.correction * torch.tanh(s[:, 0] / max(self.correction, 1e-6))
        return {
            "gain_ev": gain,
            "knee": 0.75 + 0.2 * torch.tanh(s[:, 1]),
            "a": a,
            "b": b,
            "c": ops.tone_curve_midpoint(a, b) * torch.exp(0.7 * torch.tanh(s[:, 4])),
            "local_tone": grid[:, None],
            "chroma": F.interpolate(coarse, size=(CHROMA_SIZE, CHROMA_SIZE), mode="bilinear", align_corners=True),
            "gamma": 2.2 * torch.exp(0.4 * torch.tanh(s[:, 5])),
            "raw": torch.cat([s, coarse.flatten(1)], dim=1),  # pre-activations, for training's regularisers
        }

    def _metered(self, thumb: torch.Tensor) -> dict[str, torch.Tensor]:
        """``auto_exposure``: rescale the raw as if it had been exposed to its white point (plus the calibrated
        offset), then render it as any raw. Every parameter, not only the gain, then sees the same picture
        whatever the raw's exposure, so frames of one scene shot 2 stops apart come out alike."""
        shift = white_exposure(thumb) + self.auto_offset - self.render_ev
        params = self.forward(thumb * torch.exp2(shift).reshape(-1, 1, 1, 1))
        return {**params, "gain_ev": params["gain_ev"] + shift}


def run_operators(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """The operator chain on N x 3 x H x W linear images with per-image (batched) parameters."""
    x = ops.digital_gain(x, p["gain_ev"])
    x = ops.highlight_shoulder(x, p["knee"])
    x = ops.tone_curve(x, p["a"], p["b"], p["c"])
    x = ops.local_tone_map(x, p["local_tone"])
    x = ops.chroma_map(x, p["chroma"], stop_at_gamut=True)  # as photofinish params version 4 render
    return ops.gamma(x, p["gamma"])


def to_json(p: dict[str, torch.Tensor], index: int = 0) -> dict[str, Any]:
    """Image ``index``'s parameters in the JSON form the photofinish stage pins
    (:func:`engine.models.photofinish_numpy.to_json` of that image's values; the grids keep a batch of one)."""
    one = {name: p[name][index] for name in ("gain_ev", "knee", "a", "b", "c", "gamma")}
    one |= {name: p[name][index:index + 1] for name in ("local_tone", "chroma")}
    return photofinish_numpy.to_json({name: value.detach().cpu().numpy() for name, value in one.items()})


def parameter_count(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters())
