"""The learned denoiser: a NAFNet-style residual U-Net on demosaiced linear camera RGB, conditioned on noise.

Input: the image ``x`` (H, W, 3; raw signal units, not white balanced) and its per-pixel, per-channel noise
standard deviation ``sigma`` (from :mod:`engine.io.noise_level`), both divided by one scale per image
(:func:`image_scale`), so dark and bright images look alike to the network. Output: ``x + scale * r`` with ``r``
the network's residual.

Architecture (Chen et al. 2022, "Simple Baselines for Image Restoration"): a 3x3 convolution to ``width``
channels, three encoder levels (NAF blocks, then a 2x2 stride-2 convolution doubling the channels), a middle
level, three decoder levels (a 1x1 convolution and pixel shuffle halving the channels, plus the encoder's skip)
and a 3x3 convolution to the residual. A NAF block is LayerNorm, 1x1 conv to 2c, depthwise 3x3, SimpleGate
(x1 * x2), 1x1 conv, then LayerNorm, 1x1 conv to 2c, SimpleGate, 1x1 conv, each branch added with a learned
per-channel scale. NAFNet's simplified channel attention (a global average) is left out: every output pixel
then depends only on a bounded neighbourhood (:attr:`Denoiser.margin`), so tiled inference equals whole-image
inference, and the noise map already gives the global conditioning.

Sizes (:data:`SIZES`): "lite" width 16 at full resolution, "base" width 24 with two middle blocks, "fast" width 32 on
4 x 4 packed pixels with two levels, "mid" lite's widths on 2 x 2 packed pixels (rendered in bfloat16 where the CPU
has it), "mid2" the same network trained six times longer (as good as lite), "mid3" mid2 trained on the demosaic of
recipe version 8, whose median passes take out its false colour. Rendering runs a network over an
image of any size with :func:`engine.models.denoise_tiles.denoise_image`, as its folded rendering form
(:mod:`engine.models.denoiser_fused`); training and :func:`denoise_tensor` use it as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DenoiserConfig:
    """Constructor arguments of :class:`Denoiser` (stored in the manifest's ``architecture``)."""

    width: int = 16
    enc_blocks: tuple[int, ...] = (1, 1, 1)
    middle_blocks: int = 1
    dec_blocks: tuple[int, ...] = (1, 1, 1)
    in_channels: int = 6  # image + noise sigma
    pack: int = 1  # space-to-depth factor: the network runs at 1/pack of the resolution (see Denoiser)
    edge_kernel: int = 3  # kernel size of the first and last convolutions
    bf16: bool = False  # rendering runs it in bfloat16 where the CPU has native bf16 (see inference_dtype)


SIZES = {
    "fast": DenoiserConfig(width=32, enc_blocks=(1, 1), dec_blocks=(1, 1), pack=4),
    "mid": DenoiserConfig(width=16, pack=2, bf16=True),
    "mid2": DenoiserConfig(width=16, pack=2, bf16=True),  # mid's network, trained six times longer
    "mid3": DenoiserConfig(width=16, pack=2, bf16=True),  # mid2's, on the demosaic without its false colour
    "lite": DenoiserConfig(width=16),
    "base": DenoiserConfig(width=24, middle_blocks=2),
}


def matrix_product_is_faster(x: torch.Tensor) -> bool:
    """Whether a 1 x 1 convolution of ``x`` runs faster as a matrix product over its pixels than as oneDNN's
    convolution. Measured on 2-core CPUs, channels-last: in bfloat16 (on a CPU with native bf16) the
    convolution takes a slow path and the product wins; in float32 on an AVX2 CPU (no AVX-512) the convolution is
    about 2x faster than the product, whose bias costs a copy of the output, and the whole denoiser 25-30 %."""
    return x.dtype != torch.float32 or x.device.type != "cpu"


class Pointwise(nn.Conv2d):
    """A 1 x 1 convolution, as one matrix product over the pixels of a channels-last tensor where that is faster
    (:func:`matrix_product_is_faster`); the same weights and results as ``nn.Conv2d``."""

    def __init__(self, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__(c_in, c_out, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not matrix_product_is_faster(x):
            return F.conv2d(x, self.weight, self.bias)
        y = F.linear(x.permute(0, 2, 3, 1), self.weight.view(self.out_channels, self.in_channels), self.bias)
        return y.permute(0, 3, 1, 2)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel (NCHW)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one fused kernel over the channel axis (a view when x is channels-last, as the model keeps it)
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, 1e-6)
        return y.permute(0, 3, 1, 2)


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """NAFNet's gate: split the channels in two halves and multiply them."""
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    """A NAFNet block without channel attention (see the module docstring)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(c)
        self.conv1 = Pointwise(c, 2 * c)
        self.dwconv = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.conv2 = Pointwise(c, c)
        self.norm2 = LayerNorm2d(c)
        self.conv3 = Pointwise(c, 2 * c)
        self.conv4 = Pointwise(c, c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(simple_gate(self.dwconv(self.conv1(self.norm1(x)))))
        x = x + self.beta * y
        z = self.conv4(simple_gate(self.conv3(self.norm2(x))))
        return x + self.gamma * z


class Denoiser(nn.Module):
    """The U-Net; ``forward`` takes (N, 6, H, W) scaled image + sigma, H and W multiples of 8, returns residual."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        c = config.width
        self.config = config
        p2 = config.pack * config.pack
        k = config.edge_kernel
        self.intro = nn.Conv2d(3 * p2 + config.in_channels - 3, c, k, padding=k // 2)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        for n in config.enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[NAFBlock(c) for _ in range(config.middle_blocks)])
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for n in config.dec_blocks:
            self.ups.append(nn.Sequential(Pointwise(c, 2 * c, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
        self.ending = nn.Conv2d(c, 3 * p2, k, padding=k // 2)

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this (the packing times the down-sampling levels)."""
        return self.config.pack * 2 ** len(self.config.enc_blocks)

    @property
    def margin(self) -> int:
        """Pixels of context a tile needs each side, for a tile whose edges lie on the :attr:`multiple` grid (as
        :func:`engine.models.denoise_tiles.denoise_image` cuts them).

        Each 3 x 3 convolution at a level of scale ``s`` (pixels per network position) reaches ``s`` pixels
        further; the packing, the 2 x 2 down-samplings and the pixel shuffles add nothing across an edge on the
        grid, since none of their blocks straddles it (from an edge off the grid an impulse reaches up to one
        more block per level: 63 px for fast). Measured with impulses at every offset (tests/test_denoiser.py):
        mid and fast 48 px, lite 24, base 32, as computed here.
        """
        config = self.config
        scale = config.pack
        radius = 2 * (config.edge_kernel // 2) * scale
        for enc, dec in zip(config.enc_blocks, config.dec_blocks, strict=True):
            radius += (enc + dec) * scale
            scale *= 2
        radius += config.middle_blocks * scale
        return -(-radius // self.multiple) * self.multiple

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        p = self.config.pack
        if p > 1:
            inp = torch.cat([F.pixel_unshuffle(inp[:, :3], p), F.avg_pool2d(inp[:, 3:], p)], dim=1)
        return self.packed_forward(inp)

    def packed_forward(self, inp: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` on an input already packed: the image's ``pack`` x ``pack`` blocks as channels
        (``pixel_unshuffle``'s order) and the blocks' mean sigma."""
        p = self.config.pack
        x = u_net_pass(self, inp, lambda skip, up: up + skip)
        return F.pixel_shuffle(x, p) if p > 1 else x


def u_net_pass(net: Any, inp: torch.Tensor,
               merge: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The U-Net's pass, shared by :class:`Denoiser` and its rendering form: ``net.intro``, each encoder and its
    down-sampling (keeping the encoder's output as a skip), ``net.middle``, each decoder on ``merge(skip,
    up(x))``, and ``net.ending``."""
    x = net.intro(inp)
    skips = []
    for encoder, down in zip(net.encoders, net.downs, strict=True):
        x = encoder(x)
        skips.append(x)
        x = down(x)
    x = net.middle(x)
    for up, decoder, skip in zip(net.ups, net.decoders, reversed(skips), strict=True):
        x = decoder(merge(skip, up(x)))
    return net.ending(x)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def image_scale(rgb: np.ndarray | torch.Tensor) -> float:
    """One scale per image: the 99th percentile of the brightest channel (on a sparse grid, the only pixels that
    come to the host from a device tensor), in [1/512, 1]."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 65536)))
    grid = rgb[::step, ::step]
    brightest = (grid.detach().cpu().numpy() if isinstance(grid, torch.Tensor) else np.asarray(grid)).max(axis=-1)
    return float(np.clip(np.percentile(brightest, 99.0), 1.0 / 512.0, 1.0))


def network_input(rgb: torch.Tensor, sigma: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """(N, 6, H, W): image and sigma divided by the image scale (per sample when ``scale`` is (N,))."""
    if isinstance(scale, torch.Tensor):
        scale = scale.view(-1, 1, 1, 1)
    return torch.cat([rgb, sigma], dim=1) / scale


def denoise_tensor(model: Denoiser, rgb: torch.Tensor, sigma: torch.Tensor,
                   scale: float | torch.Tensor) -> torch.Tensor:
    """Denoised (N, 3, H, W) from image and sigma tensors of any size (padded by reflection to the model's
    :attr:`~Denoiser.multiple`)."""
    h, w = rgb.shape[-2:]
    multiple = model.multiple
    ph, pw = (-h) % multiple, (-w) % multiple
    inp = network_input(rgb, sigma, scale)
    if ph or pw:
        inp = F.pad(inp, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    residual = model(inp)[..., :h, :w]
    if isinstance(scale, torch.Tensor):
        scale = scale.view(-1, 1, 1, 1)
    return rgb + residual * scale


def config_from(architecture: dict[str, Any]) -> DenoiserConfig:
    """A :class:`DenoiserConfig` from a manifest's ``architecture`` (JSON lists back to tuples)."""
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in architecture.items()}
    return DenoiserConfig(**values)


def load(size: str = "lite") -> Denoiser:
    """The shipped denoiser of a size, verified against the manifest (ModelError naming the file when not)."""
    from engine.models import build_network

    return build_network(f"denoise-{size}", lambda **architecture: Denoiser(config_from(architecture)))
