"""The detail network: a tiny residual net on display-encoded luminance.

Three 3 x 3 convolutions (``width`` channels, leaky ReLU between) predict a luminance residual that is added to
all three channels, scaled by the sharpening strength (0: off, 1: the trained restoration). With ``pack`` 2 the
luminance is first packed into 2 x 2 blocks (``pixel_unshuffle``: 4 channels at half resolution) and the
residual unpacked again, so the convolutions run on a quarter of the positions with channels enough for the
CPU's vector units: "fast" (width 8, pack 2, about 1.2 k parameters) is several times quicker than "lite"
(width 8, pack 1, 0.7 k parameters) at the same sharpness. The receptive field is a few pixels (:attr:`halo`),
so a large image is processed in horizontal strips with that halo and gives the same pixels as one pass.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.colour import LUMA
from engine.models.channel_blocks import padded_outputs

STRIP_ROWS = 512  # 18 MP on an AVX2 CPU: 254 ms against 285 ms for 256-row strips (the rendering copy's network)
SIZES: dict[str, dict[str, int]] = {"lite": {"width": 8, "pack": 1}, "fast": {"width": 8, "pack": 2}}


class DetailNet(nn.Module):
    """Display-encoded luminance (N x 1 x H x W) -> luminance residual (same shape)."""

    memory_format = torch.contiguous_format  # the rendering copy's is channels-last (rendering_copy)

    def __init__(self, width: int = 8, pack: int = 1) -> None:
        super().__init__()
        self.pack = pack
        cells = pack * pack
        self.body = nn.Sequential(
            nn.Conv2d(cells, width, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(width, cells, 3, padding=1),
        )
        last = self.body[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    @property
    def halo(self) -> int:
        """Rows of context a strip needs each side (the receptive radius, rounded up to the packing grid)."""
        return 4 * self.pack

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """The residual to add to luminance."""
        p = self.pack
        if p == 1:
            return self.body(y.contiguous(memory_format=self.memory_format))[:, :1].contiguous()
        h, w = y.shape[-2:]
        padded = F.pad(y, (0, (-w) % p, 0, (-h) % p), mode="replicate")
        packed = F.pixel_unshuffle(padded, p).contiguous(memory_format=self.memory_format)
        return F.pixel_shuffle(self.body(packed)[:, : p * p].contiguous(), p)[..., :h, :w]


def rendering_copy(net: DetailNet) -> DetailNet:
    """``net`` for rendering on a CPU, the same function: channels-last, and its last convolution's outputs
    padded to the CPU's block of channels (:func:`engine.models.channel_blocks.padded_outputs`; forward reads
    only the real ones). 18 MP on a 2-core AVX2 CPU: 254 against 376 ms."""
    copy_ = copy.deepcopy(net)
    last = copy_.body[-1]
    assert isinstance(last, nn.Conv2d)
    copy_.body[-1] = padded_outputs(last)
    copy_.memory_format = torch.channels_last
    return copy_.to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]


def enhance(net: DetailNet, rgb: torch.Tensor, strength: float | torch.Tensor = 1.0) -> torch.Tensor:
    """``rgb + strength * residual(luminance)`` on N x 3 x H x W display-encoded images (differentiable)."""
    w = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).reshape(1, 3, 1, 1)
    y = (rgb * w).sum(dim=1, keepdim=True)
    return rgb + strength * net(y)


def enhance_image(net: DetailNet, image: np.ndarray, strength: float, device: str = "cpu",
                  out: np.ndarray | None = None) -> np.ndarray:
    """Apply the network to an H x W x 3 float32 image in strips (bounded memory); returns a new array, or
    ``out`` (which may be ``image`` itself: the network reads a luminance copy made first)."""
    h, halo = image.shape[0], net.halo
    y = torch.from_numpy(np.ascontiguousarray(image @ np.asarray(LUMA, dtype=np.float32)))[None, None]
    out = image.copy() if out is None else out
    net = rendering_copy(net) if device == "cpu" else net
    with torch.inference_mode():
        for top in range(0, h, STRIP_ROWS):
            lo, hi = max(0, top - halo), min(h, top + STRIP_ROWS + halo)
            strip = y[:, :, lo:hi].to(device)
            residual = net(strip)[0, 0, top - lo:top - lo + min(STRIP_ROWS, h - top)].cpu()
            # torch broadcasts the residual over the three channels faster than numpy (73 against 150 ms at 18 MP)
            torch.from_numpy(out[top:top + residual.shape[0]]).add_(residual[..., None], alpha=strength)
    return out


def enhance_on_device(net: DetailNet, image: torch.Tensor, strength: float) -> torch.Tensor:
    """:func:`enhance_image` of a (H, W, 3) tensor on its device, in place and in one pass (the torch path)."""
    if next(net.parameters()).device != image.device:  # a copy: the loaded network stays where callers expect it
        net = copy.deepcopy(net).to(image.device)
    with torch.inference_mode():
        y = image @ torch.tensor(LUMA, dtype=image.dtype, device=image.device)
        image += strength * net(y[None, None])[0, 0, ..., None]
    return image


def degrade(sharp: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What the detail stage receives, simulated: a Gaussian blur of ``sigma`` px per image (the softness of
    low-resolution photofinishing, guided upsampling and demosaicing) plus Gaussian noise of std ``noise``."""
    n = sharp.shape[0]
    radius = 4
    x = torch.arange(-radius, radius + 1, dtype=sharp.dtype)
    k = torch.exp(-(x[None] ** 2) / (2.0 * sigma[:, None] ** 2))
    k = k / k.sum(dim=1, keepdim=True)  # N x (2r+1)
    padded = F.pad(sharp, (radius, radius, radius, radius), mode="reflect")
    c = sharp.shape[1]
    kx = k.repeat_interleave(c, dim=0)[:, None, None, :]  # (N*C) x 1 x 1 x K
    ky = k.repeat_interleave(c, dim=0)[:, None, :, None]
    flat = padded.reshape(1, n * c, *padded.shape[2:])
    blurred = F.conv2d(F.conv2d(flat, kx, groups=n * c), ky, groups=n * c).reshape(sharp.shape)
    grain = torch.randn(sharp.shape, generator=generator, dtype=sharp.dtype) * noise.reshape(-1, 1, 1, 1)
    return (blurred + grain).clamp(0.0, 1.0)
