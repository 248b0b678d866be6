"""The detail network: a tiny full-resolution residual net on display-encoded luminance.

Three 3 x 3 convolutions (1 -> 8 -> 8 -> 1 channels, leaky ReLU between) predict a luminance residual that is
added to all three channels, scaled by the sharpening strength (0: off, 1: the trained restoration). Its
receptive field is 7 x 7 px, so a large image is processed in horizontal strips with a 3 px halo and gives the
same pixels as one pass. About 0.7 k parameters.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.colour import LUMA

HALO = 3
STRIP_ROWS = 256


class DetailNet(nn.Module):
    """Display-encoded luminance (N x 1 x H x W) -> luminance residual (same shape)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(width, 1, 3, padding=1),
        )
        last = self.body[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """The residual to add to luminance."""
        return self.body(y)


def enhance(net: DetailNet, rgb: torch.Tensor, strength: float | torch.Tensor = 1.0) -> torch.Tensor:
    """``rgb + strength * residual(luminance)`` on N x 3 x H x W display-encoded images (differentiable)."""
    w = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).reshape(1, 3, 1, 1)
    y = (rgb * w).sum(dim=1, keepdim=True)
    return rgb + strength * net(y)


def enhance_image(net: DetailNet, image: np.ndarray, strength: float, device: str = "cpu") -> np.ndarray:
    """Apply the network to an H x W x 3 float32 image in strips (bounded memory); returns a new array."""
    h = image.shape[0]
    y = torch.from_numpy(np.ascontiguousarray(image @ np.asarray(LUMA, dtype=np.float32)))[None, None]
    out = image.copy()
    with torch.no_grad():
        for top in range(0, h, STRIP_ROWS):
            lo, hi = max(0, top - HALO), min(h, top + STRIP_ROWS + HALO)
            strip = y[:, :, lo:hi].to(device)
            residual = net(strip)[0, 0, top - lo:top - lo + min(STRIP_ROWS, h - top)].cpu().numpy()
            out[top:top + residual.shape[0]] += strength * residual[..., None]
    return out


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
