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
then depends only on a bounded neighbourhood (:data:`RECEPTIVE_MARGIN`), so tiled inference equals whole-image
inference, and the noise map already gives the global conditioning.

Sizes (:data:`SIZES`): "lite" width 16 at full resolution, "base" width 24 with two middle blocks, "fast" width 32 on
4 x 4 packed pixels with two levels, "mid" lite's widths on 2 x 2 packed pixels (run in bfloat16 where the CPU has
it: :func:`inference_dtype`), "mid2" the same network trained six times longer (as good as lite).
:func:`denoise_image` runs a network over an image of any size in tiles, in place, with a few bands of memory beyond
the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from engine.models.denoiser_fused import FusedDenoiser


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
    "lite": DenoiserConfig(width=16),
    "base": DenoiserConfig(width=24, middle_blocks=2),
}


class Pointwise(nn.Conv2d):
    """A 1 x 1 convolution computed as one matrix product over the pixels of a channels-last tensor (PyTorch's
    CPU convolution takes a slow path for 1 x 1 kernels); the same weights and results as ``nn.Conv2d``."""

    def __init__(self, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__(c_in, c_out, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        """Pixels of context a tile needs each side: at least the receptive radius, on the :attr:`multiple` grid.

        Each 3 x 3 convolution at a level of scale ``s`` (pixels per network position) reaches ``s`` pixels
        further, as does each 2 x 2 down-sampling; the radius is their sum plus one packed position (a pixel's
        offset within it). Measured with an impulse (tests/test_denoiser.py): fast 63 px of 64, lite 30 of 32.
        """
        config = self.config
        scale = config.pack
        radius = 2 * (config.edge_kernel // 2) * scale + config.pack
        for enc, dec in zip(config.enc_blocks, config.dec_blocks, strict=True):
            radius += (enc + dec + 1) * scale
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
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(up(x) + skip)
        x = self.ending(x)
        return F.pixel_shuffle(x, p) if p > 1 else x


class NoiseLevel(Protocol):
    """What the denoiser needs of a noise model (:class:`engine.io.noise_level.NoiseModel` is one)."""

    def sigma(self, rgb: np.ndarray) -> np.ndarray:
        """Per-pixel noise standard deviation of linear camera RGB (H, W, 3), float32."""
        ...


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def image_scale(rgb: np.ndarray) -> float:
    """One scale per image: the 99th percentile of the brightest channel (on a sparse grid), in [1/512, 1]."""
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 65536)))
    brightest = np.asarray(rgb[::step, ::step]).max(axis=-1)
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


BAND_PIXELS = 4_000_000  # at most this many pixels a band (two are held at once: 61 MP bands of 416 rows; 6 MP
# bands measured 1.97 GB at 61 MP and 1.33 GB at 18 MP, these 1.94 and 1.06 GB)
TILE = 1536  # the network runs on tiles of at most this many pixels a side (plus margins; bands cap the rows):
# 18 MP on 2 cores, in a process that keeps freed memory (hostplug.memory), 1.53 s against 1.73 s for 1024 px tiles,
# which pay 27 % for their margins (64 px each side for mid); 1280 and 2048 px measured like 1536
LOW_BLOCK = 8  # denoise_image keeps the input's means of blocks of this many pixels a side
_LOW_SIGMA = 1.5  # ... smoothed by a Gaussian of this many blocks (OpenCV's kernel: 6 blocks each side)
_LOW_REACH = 6


def inference_dtype(model: Denoiser, device: str) -> torch.dtype:
    """The network's arithmetic when rendering: bfloat16 for a model measured that way (``config.bf16``) on a CPU
    with native bf16 instructions, where oneDNN runs it about twice as fast; float32 otherwise (so the networks
    shipped before render as they did)."""
    return torch.bfloat16 if model.config.bf16 and device == "cpu" and _native_bf16() else torch.float32


@cache
def _native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: keep float32
        return False
    return torch.backends.mkldnn.is_available() and any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def _block_means(image: np.ndarray, blocks_h: int, blocks_w: int) -> np.ndarray:
    """Means of the first ``blocks_h`` x ``blocks_w`` blocks of :data:`LOW_BLOCK` pixels a side, float32."""
    b = LOW_BLOCK
    return cv2.resize(image[: blocks_h * b, : blocks_w * b], (blocks_w, blocks_h), interpolation=cv2.INTER_AREA)


def _low_frequency_rows(small: np.ndarray, start: int, end: int, width: int) -> np.ndarray:
    """Rows ``start:end`` (full resolution, ``width`` wide) of ``small`` (block means of a residual) smoothed by
    the Gaussian and bilinearly enlarged; only the small rows within reach are read, so a band gets the rows one
    pass over the whole image gives."""
    rows = small.shape[0]
    fy = (np.arange(start, end, dtype=np.float64) + 0.5) / LOW_BLOCK - 0.5
    y0 = np.floor(fy).astype(np.intp)
    wy = np.where(y0 < 0, 0.0, fy - y0).astype(np.float32)[:, None, None]
    y0 = np.clip(y0, 0, rows - 1)
    y1 = np.minimum(y0 + 1, rows - 1)
    a0, a1 = max(0, int(y0[0]) - _LOW_REACH), min(rows, int(y1[-1]) + _LOW_REACH + 1)
    smooth = cv2.GaussianBlur(small[a0:a1], (0, 0), _LOW_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    tall = smooth[y0 - a0] * (1.0 - wy) + smooth[y1 - a0] * wy
    return cv2.resize(tall, (width, end - start), interpolation=cv2.INTER_LINEAR)  # across only: rows match


def _denoise_tile(net: FusedDenoiser, rgb: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], margin: int,
                  noise: NoiseLevel, device: str) -> np.ndarray:
    """The network's residual for ``rgb[rows, cols]`` (h, w, 3, float32), read with ``margin`` pixels of context
    each side (from the network's grid) and one more for the noise map's blur."""
    h, w = rgb.shape[:2]
    multiple = net.multiple
    (y0, y1), (x0, x1) = rows, cols
    r0, r1 = max(0, (y0 - margin) // multiple * multiple), min(h, y1 + margin)
    c0, c1 = max(0, (x0 - margin) // multiple * multiple), min(w, x1 + margin)
    b0, b1, d0, d1 = max(0, r0 - 1), min(h, r1 + 1), max(0, c0 - 1), min(w, c1 + 1)
    blurred = cv2.blur(rgb[b0:b1, d0:d1], (3, 3), borderType=cv2.BORDER_REFLECT_101)
    sigma = noise.sigma(blurred[r0 - b0 : r1 - b0, c0 - d0 : c1 - d0])
    image = rgb[r0:r1, c0:c1]
    ph, pw = (-(r1 - r0)) % multiple, (-(c1 - c0)) % multiple
    if ph or pw:  # at the image's bottom or right edge
        mode: Literal["reflect", "edge"] = "reflect" if min(r1 - r0, c1 - c0) > max(ph, pw) else "edge"
        image, sigma = (np.pad(a, ((0, ph), (0, pw), (0, 0)), mode=mode) for a in (image, sigma))
    p = net.pack
    hp, wp = image.shape[0] // p, image.shape[1] // p
    inp = torch.empty((1, hp, wp, 3 * p * p + 3), dtype=next(net.parameters()).dtype)  # channels-last memory
    net.pack_into(inp, torch.from_numpy(np.ascontiguousarray(image)))
    inp[0, ..., 3 * p * p :] = torch.from_numpy(
        sigma if p == 1 else cv2.resize(sigma, (wp, hp), interpolation=cv2.INTER_AREA))  # block means
    residual = np.empty(image.shape, np.float32)
    net.residual_into(net(inp.to(device).permute(0, 3, 1, 2)).cpu(), torch.from_numpy(residual))
    return residual[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0]


def _even_step(length: int, most: int) -> int:
    """A step on the 16-pixel grid that cuts ``length`` into as few parts of at most about ``most`` as it can,
    of nearly equal size (no thin last part)."""
    parts = max(1, math.ceil(length / most))
    return math.ceil(math.ceil(length / parts) / 16) * 16


def denoise_image(model: Denoiser, rgb: np.ndarray, noise: NoiseLevel, *, strength: float = 1.0,
                  device: str = "cpu", tile: int = TILE,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Denoise linear camera RGB (H, W, 3, float32) **in place**, blended with the input by ``strength``
    (0..1), and return it.

    The network runs on tiles of ``tile`` pixels a side, in bands of ``tile`` rows (fewer where a band would
    exceed :data:`BAND_PIXELS`), each read with the network's
    :attr:`~Denoiser.margin` of context; its noise map is ``noise.sigma`` of a 3 x 3 box blur of the tile. A
    band is written back only after the next one has been read, so every tile sees the original pixels and the
    result equals one pass over the whole image, with a few bands of memory beyond the image.
    The result keeps the input's local means (the means of 8 x 8 blocks of the difference, smoothed and
    enlarged, are given back): noise averages out at those scales, so this removes nothing worth keeping, and it
    guards against the network shifting colours where a real camera's scene lies outside what it was trained on
    (say, red under blue stage light); on the test set it changes PSNR by less than 0.03 dB.
    """
    h, w = rgb.shape[:2]
    scale = image_scale(rgb)
    margin = model.margin
    # bands start on the network's grid and the blocks', and reach past what the previous band's finish reads
    least = max(margin + 1, (_LOW_REACH + 2) * LOW_BLOCK)
    rows = _even_step(h, max(least, min(tile, BAND_PIXELS // max(w, 1))))
    step = _even_step(w, tile)
    spans = [(start, min(start + rows, h)) for start in range(0, h, rows)]
    blocks_h, blocks_w = h // LOW_BLOCK, w // LOW_BLOCK
    small = np.zeros((blocks_h, blocks_w, 3), np.float32) if blocks_h and blocks_w else None
    from engine.models import denoiser_fused  # it builds on this module's classes

    net = denoiser_fused.fuse(model, scale, inference_dtype(model, device), device)

    def finish(start: int, end: int, residual: np.ndarray) -> None:
        for y in range(start, end, 128):  # in slices: no third band-sized buffer
            part = residual[y - start : min(y + 128, end) - start]
            if small is not None:
                part += _low_frequency_rows(small, y, min(y + 128, end), w)
            if strength < 1.0:
                part *= np.float32(strength)
            rgb[y : y + len(part)] += part

    pending: tuple[int, int, np.ndarray] | None = None
    with torch.inference_mode():
        for done, (start, end) in enumerate(spans, 1):
            residual = np.empty((end - start, w, 3), np.float32)  # the change the network makes to the band
            for x in range(0, w, step):
                cols = (x, min(x + step, w))
                residual[:, cols[0] : cols[1]] = _denoise_tile(net, rgb, (start, end), cols, margin, noise, device)
            if small is not None and start // LOW_BLOCK < blocks_h:  # bands start on the block grid
                b0, b1 = start // LOW_BLOCK, min(blocks_h, end // LOW_BLOCK)
                small[b0:b1] = -_block_means(residual, b1 - b0, blocks_w)  # noisy - denoised
            if pending is not None:  # its smoothed residual reaches 64 rows into this band, known now
                finish(*pending)
            pending = (start, end, residual)
            if progress:
                progress(done, len(spans))
    if pending is not None:
        finish(*pending)
    return rgb


def config_from(architecture: dict[str, Any]) -> DenoiserConfig:
    """A :class:`DenoiserConfig` from a manifest's ``architecture`` (JSON lists back to tuples)."""
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in architecture.items()}
    return DenoiserConfig(**values)


def load(size: str = "lite") -> Denoiser:
    """The shipped denoiser of a size, verified against the manifest (ModelError naming the file when not)."""
    from engine.models import build_network

    return build_network(f"denoise-{size}", lambda **architecture: Denoiser(config_from(architecture)))
