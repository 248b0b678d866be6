"""Running a denoiser over an image of any size: in tiles and bands, in place, with its rendering form.

:func:`denoise_image` is what the learned denoise stage and the evaluation call. The network
(:mod:`engine.models.denoiser`) runs as its rendering form (:mod:`engine.models.denoiser_fused`), in bfloat16 for
a model measured that way on a CPU that has it (:func:`inference_dtype`), on tiles of at most :data:`TILE` pixels
a side in bands of at most :data:`BAND_PIXELS`, each tile read with the network's receptive margin, so the
result equals one pass over the whole image with a few bands of memory beyond it. :func:`denoise_on_device` is the
same maths on a tensor that stays on its device (the torch path, ``--device cuda``), in one pass.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import cv2
import numpy as np
import torch

from engine.models.denoiser import Denoiser, image_scale
from engine.models.denoiser_fused import FusedDenoiser, fuse

if TYPE_CHECKING:
    from engine.io.noise_level import NoiseModel


class NoiseLevel(Protocol):
    """What the denoiser needs of a noise model (:class:`engine.io.noise_level.NoiseModel` is one)."""

    def sigma(self, rgb: np.ndarray, window: tuple[range, range, tuple[int, int]] | None = None) -> np.ndarray:
        """Per-pixel noise standard deviation of linear camera RGB (H, W, 3), float32; ``window``: where ``rgb``
        lies in the image (rows, columns, the image's size)."""
        ...


BAND_PIXELS = 3_000_000  # at most this many pixels a band (two are held at once: 61 MP bands of 312 rows). A
# float32 network (a CPU without bf16) holds twice bf16's activations: on an AVX2 CPU the 61 MP render peaked at
# 2.08 GB with 4 MP bands, 1.97 GB with these, 1.94 GB with 2 MP ones, all 36 s, while the 18 MP denoise took
# 5 % longer with these and 15 % with 2 MP ones (bf16 CPU, 4 MP bands: 1.94 GB at 61 MP, 1.06 GB at 18 MP)
TILE = 1536  # the network runs on tiles of at most this many pixels a side (plus margins; bands cap the rows):
# 18 MP on 2 cores, in a process that keeps freed memory (hostplug.memory), 1.53 s against 1.73 s for 1024 px tiles,
# which pay 27 % for their margins (64 px each side for mid then, 48 now); 1280 and 2048 px measured like 1536
LOW_BLOCK = 8  # denoise_image keeps the input's means of blocks of this many pixels a side
_LOW_SIGMA = 1.5  # ... smoothed by a Gaussian of this many blocks (OpenCV's kernel: 6 blocks each side)
_LOW_REACH = 6


_BFLOAT16_ALLOWED = True


def inference_dtype(model: Denoiser, device: str) -> torch.dtype:
    """The network's arithmetic when rendering: bfloat16 for a model measured that way (``config.bf16``) on a CPU
    with native bf16 instructions, where oneDNN runs it about twice as fast; float32 otherwise (so the networks
    shipped before render as they did), and inside :func:`float32_only`."""
    bf16 = _BFLOAT16_ALLOWED and model.config.bf16 and device == "cpu" and _native_bf16()
    return torch.bfloat16 if bf16 else torch.float32


@contextlib.contextmanager
def float32_only() -> Iterator[None]:
    """Every network in float32 inside the block: the CPU reference that ``benchmarks/bench_gpu.py`` holds a GPU
    (which runs float32) to. bfloat16 moves single pixels by up to about 4e-3 of the linear image, and a
    perturbation of 2e-7 in the input moves them as much again (rounding), so two bfloat16 renders by different
    code paths cannot be held to 1/255."""
    global _BFLOAT16_ALLOWED
    saved, _BFLOAT16_ALLOWED = _BFLOAT16_ALLOWED, False
    try:
        yield
    finally:
        _BFLOAT16_ALLOWED = saved


@cache
def _native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: keep float32
        return False
    return torch.backends.mkldnn.is_available() and any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def _block_means(image: np.ndarray, blocks_h: int, blocks_w: int, period: int = 1) -> np.ndarray:
    """Means of the first ``blocks_h`` x ``blocks_w`` blocks of :data:`LOW_BLOCK` pixels a side, float32; with a
    ``period`` above 1, the means of each of a block's ``period`` x ``period`` positions (rows, then columns) one
    after the other along the last axis."""
    b = LOW_BLOCK
    if period > 1:
        from engine import kernels

        return kernels.position_means(image, blocks_h, blocks_w, period, b)
    return cv2.resize(image[: blocks_h * b, : blocks_w * b], (blocks_w, blocks_h), interpolation=cv2.INTER_AREA)


def _give_back(part: np.ndarray, low: np.ndarray, period: int) -> None:
    """Add ``low`` (rows of :func:`_low_frequency_rows`, one value per cell) to ``part``, a slice of the residual
    starting on the ``period``'s grid: each position of a cell gets its own means back."""
    if period == 1:
        part += low
        return
    from engine import kernels

    kernels.add_per_position(part, low, period)


def _low_frequency_rows(small: np.ndarray, start: int, end: int, width: int, period: int = 1) -> np.ndarray:
    """Rows ``start:end`` (full resolution, ``width`` wide) of ``small`` (block means of a residual) smoothed by
    the Gaussian and bilinearly enlarged; only the small rows within reach are read, so a band gets the rows one
    pass over the whole image gives. With a ``period`` above 1, one value for each cell of ``period`` x
    ``period`` pixels (at its centre): each position of the cell takes its own channels of it."""
    rows = small.shape[0]
    centres = np.arange(start, end, period, dtype=np.float64) + (period - 1) / 2
    fy = (centres + 0.5) / LOW_BLOCK - 0.5
    y0 = np.floor(fy).astype(np.intp)
    wy = np.where(y0 < 0, 0.0, fy - y0).astype(np.float32)[:, None, None]
    y0 = np.clip(y0, 0, rows - 1)
    y1 = np.minimum(y0 + 1, rows - 1)
    a0, a1 = max(0, int(y0[0]) - _LOW_REACH), min(rows, int(y1[-1]) + _LOW_REACH + 1)
    smooth = cv2.GaussianBlur(small[a0:a1], (0, 0), _LOW_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    tall = smooth[y0 - a0] * (1.0 - wy) + smooth[y1 - a0] * wy
    cells = -(-width // period)  # across only (rows match): at the cells' centres, as OpenCV maps them
    return cv2.resize(tall, (cells, len(centres)), interpolation=cv2.INTER_LINEAR)


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
    sigma = noise.sigma(blurred[r0 - b0 : r1 - b0, c0 - d0 : c1 - d0], (range(r0, r1), range(c0, c1), (h, w)))
    image = rgb[r0:r1, c0:c1]
    ph, pw = (-(r1 - r0)) % multiple, (-(c1 - c0)) % multiple
    if ph or pw:  # at the image's bottom or right edge
        mode: Literal["reflect", "edge"] = "reflect" if min(r1 - r0, c1 - c0) > max(ph, pw) else "edge"
        image, sigma = (np.pad(a, ((0, ph), (0, pw), (0, 0)), mode=mode) for a in (image, sigma))
    p = net.pack
    hp, wp = image.shape[0] // p, image.shape[1] // p
    inp = torch.empty((1, hp, wp, 3 * p * p + 3), dtype=next(net.parameters()).dtype)  # channels-last memory
    net.pack_into(inp, torch.from_numpy(image))  # read where it lies: a contiguous copy first cost 0.3 s at 18 MP
    inp[0, ..., 3 * p * p :] = torch.from_numpy(
        sigma if p == 1 else cv2.resize(sigma, (wp, hp), interpolation=cv2.INTER_AREA))  # block means
    residual = np.empty(image.shape, np.float32)
    net.residual_into(net(inp.to(device).permute(0, 3, 1, 2)).cpu(), torch.from_numpy(residual))
    return residual[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0]


def _even_step(length: int, most: int, grid: int = 16) -> int:
    """A step on the ``grid`` that cuts ``length`` into as few parts of at most about ``most`` as it can, of
    nearly equal size (no thin last part)."""
    parts = max(1, math.ceil(length / most))
    return math.ceil(math.ceil(length / parts) / grid) * grid


def denoise_image(model: Denoiser, rgb: np.ndarray, noise: NoiseLevel, *, strength: float = 1.0,
                  device: str = "cpu", tile: int = TILE, means_per_position: bool = True,
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
    (say, red under blue stage light); on the test set it changes PSNR by less than 0.03 dB. With
    ``means_per_position``, a network on packed pixels gets each position of its packing's blocks its own means
    back: its outputs for the four pixels of a 2 x 2 block differ a little in level, which showed as a plaid of 1
    to 2 levels in red, 4 at +2 EV (a tester's, on the Sony's blue-lit shadows).
    """
    h, w = rgb.shape[:2]
    scale = image_scale(rgb)
    margin = model.margin
    # bands start on the network's grid and the blocks', and reach past what the previous band's finish reads
    least = max(margin + 1, (_LOW_REACH + 2) * LOW_BLOCK)
    grid = math.lcm(16, model.multiple)  # tile edges on the network's grid: the margin suffices there (and blocks')
    rows = _even_step(h, max(least, min(tile, BAND_PIXELS // max(w, 1))), grid)
    step = _even_step(w, tile, grid)
    spans = [(start, min(start + rows, h)) for start in range(0, h, rows)]
    blocks_h, blocks_w = h // LOW_BLOCK, w // LOW_BLOCK
    period = model.config.pack if means_per_position else 1
    small = np.zeros((blocks_h, blocks_w, 3 * period * period), np.float32) if blocks_h and blocks_w else None
    net = fuse(model, scale, inference_dtype(model, device), device)

    def finish(start: int, end: int, residual: np.ndarray) -> None:
        for y in range(start, end, 128):  # in slices (on the period's grid): no third band-sized buffer
            part = residual[y - start : min(y + 128, end) - start]
            if small is not None:
                _give_back(part, _low_frequency_rows(small, y, min(y + 128, end), w, period), period)
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
                small[b0:b1] = -_block_means(residual, b1 - b0, blocks_w, period)  # noisy - denoised
            if pending is not None:  # its smoothed residual reaches 64 rows into this band, known now
                finish(*pending)
            pending = (start, end, residual)
            if progress:
                progress(done, len(spans))
    if pending is not None:
        finish(*pending)
    return rgb


def denoise_on_device(model: Denoiser, rgb: torch.Tensor, noise: NoiseModel, *, strength: float = 1.0,
                      means_per_position: bool = True) -> torch.Tensor:
    """:func:`denoise_image` of a (H, W, 3) float32 tensor on its device (the torch path, ``--device cuda``), in
    place and in one pass: the same noise map, network, restore of the local means and blend, with every step on
    the device. The network runs in float32 there (:func:`inference_dtype`). A device too small for the whole
    image at once (a 61 MP raw needs about 6 GB) gets :func:`denoise_image`'s tiles instead, one at a time."""
    try:
        residual = _residual_on_device(model, rgb, noise, model.config.pack if means_per_position else 1)
    except torch.OutOfMemoryError:
        residual = None  # outside the handler, so the traceback no longer holds the failed attempt's tensors
    if residual is None:
        from engine import kernels

        torch.cuda.empty_cache()
        host = denoise_image(model, kernels.to_host(rgb), noise, strength=strength, device=str(rgb.device),
                             means_per_position=means_per_position)
        return rgb.copy_(torch.from_numpy(host))
    with torch.inference_mode():
        if strength < 1.0:
            residual *= strength
        return rgb.add_(residual)


def _residual_on_device(model: Denoiser, rgb: torch.Tensor, noise: NoiseModel, period: int = 1) -> torch.Tensor:
    """What :func:`denoise_on_device` adds to ``rgb`` at full strength (restore of the local means included)."""
    import torch.nn.functional as F

    from engine import kernels

    h, w = rgb.shape[:2]
    device = rgb.device
    net = fuse(model, image_scale(rgb), inference_dtype(model, str(device)), str(device))
    p, multiple = net.pack, net.multiple
    x = rgb.permute(2, 0, 1)[None]
    with torch.inference_mode():
        blurred = F.avg_pool2d(kernels.pad_torch(x, 1, 1, 1, 1, "reflect"), 3, stride=1)  # cv2.blur, reflect-101
        shot, read = (torch.tensor(v, dtype=torch.float32, device=device).view(1, 3, 1, 1)
                      for v in (noise.shot, noise.read))
        if noise.shading is not None:  # the lens-shading maps raised the noise with the signal (NoiseModel)
            gain = torch.from_numpy(noise.shading_gain(range(h), range(w), (h, w))).to(device)
            gain = gain.permute(2, 0, 1)[None]
            shot, read = shot * gain, read * gain * gain
        sigma = torch.sqrt(torch.clamp(blurred, min=0.0) * shot + read)
        del blurred
        ph, pw = (-h) % multiple, (-w) % multiple
        image = x
        if ph or pw:  # as a tile at the image's bottom or right edge
            mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
            image, sigma = (F.pad(a, (0, pw, 0, ph), mode=mode) for a in (image, sigma))
        hp, wp = image.shape[-2] // p, image.shape[-1] // p
        inp = torch.empty((1, hp, wp, 3 * p * p + 3), dtype=next(net.parameters()).dtype, device=device)
        net.pack_into(inp, image[0].permute(1, 2, 0).contiguous())
        inp[0, ..., 3 * p * p:] = F.avg_pool2d(sigma, p)[0].permute(1, 2, 0)  # block means, as INTER_AREA
        del sigma, image
        residual = torch.empty((hp * p, wp * p, 3), dtype=torch.float32, device=device)
        net.residual_into(net(inp.permute(0, 3, 1, 2)), residual)
        del inp
        residual = residual[:h, :w]
        blocks_h, blocks_w = h // LOW_BLOCK, w // LOW_BLOCK
        if blocks_h and blocks_w:
            residual += _low_frequency_on_device(residual, blocks_h, blocks_w, period)
    return residual


def _low_frequency_on_device(residual: torch.Tensor, blocks_h: int, blocks_w: int, period: int = 1) -> torch.Tensor:
    """What :func:`denoise_image` gives back to keep the input's local means, for the whole (H, W, 3) residual: its
    8 x 8 block means (of each position of a ``period`` x ``period`` cell), negated, smoothed by the Gaussian and
    enlarged as :func:`_low_frequency_rows` does (rows at the cells' own spacing, columns stretched over the
    width as OpenCV's resize does), each pixel taking its position's."""
    import torch.nn.functional as F

    from engine import kernels

    h, w = residual.shape[:2]
    b, p = LOW_BLOCK, period
    blocks = residual[: blocks_h * b, : blocks_w * b].permute(2, 0, 1)[None]
    small = -torch.cat([F.avg_pool2d(blocks[..., dy::p, dx::p], b // p) for dy in range(p) for dx in range(p)], 1)
    smooth = kernels.gaussian_blur_torch(small, _LOW_SIGMA)[0]  # 3 p p, blocks_h, blocks_w
    rows, cols = -(-h // p), -(-w // p)
    centres = torch.arange(rows, device=residual.device, dtype=torch.float64) * p + (p - 1) / 2
    fy = (centres + 0.5) / b - 0.5
    y0 = torch.floor(fy).long()
    wy = torch.where(y0 < 0, torch.zeros_like(fy), fy - y0).float()[None, :, None]
    y0 = torch.clamp(y0, 0, blocks_h - 1)
    y1 = torch.clamp(y0 + 1, max=blocks_h - 1)
    tall = smooth[:, y0] * (1.0 - wy) + smooth[:, y1] * wy  # 3 p p, rows, blocks_w
    wide = F.interpolate(tall[None], size=(rows, cols), mode="bilinear", align_corners=False)[0]
    cells = wide.view(p, p, 3, rows, cols).permute(3, 0, 4, 1, 2).reshape(rows * p, cols * p, 3)
    return cells[:h, :w]  # each pixel its cell's values for its position
