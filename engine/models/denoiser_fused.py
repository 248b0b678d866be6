"""The learned denoiser's rendering form: the trained network with its constant arithmetic folded into its weights.

Training uses :class:`engine.models.denoiser.Denoiser` as it is; rendering runs :func:`fuse`'s copy, which gives
the same function (within float rounding) in fewer, cheaper passes over memory. On a 2-core CPU in bfloat16 the
network's time went down by about a third. What is folded, and why:

- **The image scale.** The network reads ``image / scale`` and its residual is multiplied by ``scale``: the first
  convolution's weights take the division and the last one's weights and bias the multiplication, so there is
  no pass over the tile for either.
- **Layer norms.** oneDNN's layer norm over 16 or 32 channels of a channels-last tensor costs about ten
  element-wise passes. Here it is two 16 x 16 (or 32 x 32) matrix products, one that subtracts the channels'
  mean (computed in float32 inside the product, so bfloat16 rounds only the centred value, as the library's
  norm does) and one that averages the squares, then a multiplication. The norm's own scale and shift go into
  the 1 x 1 convolution that follows it. In float32 on a CPU a compiled loop (:func:`engine.kernels.channel_norm`)
  normalises each pixel in one pass instead: on a 2-core AVX2 CPU the network then took 176 ms per tile, against
  206 ms with the products and 184 ms with torch's own layer norm from 32 channels up.
- **Block scales.** A NAF block adds ``beta * branch``: ``beta`` goes into the branch's last convolution, and the
  sum is made in place.
- **Pixel shuffles.** The up-sampling convolutions' and the last convolution's output channels are reordered so
  that the shuffle is a strided view: the up-sampled features are added into the skip connection in place, and
  the residual is read out straight into a tile of full-resolution pixels.
- **Packing.** The first convolution's input channels are reordered the same way, so a tile of pixels is packed
  by one copy of runs of ``pack x 3`` values.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.channel_blocks import padded_outputs
from engine.models.denoiser import (
    Denoiser,
    LayerNorm2d,
    NAFBlock,
    Pointwise,
    simple_gate,
    u_net_pass,
)


def _pixel_order(p: int, groups: int) -> torch.Tensor:
    """Index that reorders ``pixel_shuffle``'s channels ``(group, dy, dx)`` into ``(dy, dx, group)``: each packed
    position's channels are then its ``p x p`` pixels in raster order, ``groups`` values each, as channels-last
    memory of the full-resolution pixels lays them out."""
    return torch.arange(groups * p * p).view(groups, p, p).permute(1, 2, 0).reshape(-1)


def _conv(c_in: int, c_out: int, kernel: int, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    """A convolution (a :class:`Pointwise` one for 1 x 1 kernels) with the given weights."""
    conv = Pointwise(c_in, c_out, bias=bias is not None) if kernel == 1 else \
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
    conv.weight = nn.Parameter(weight.detach().reshape(c_out, c_in, kernel, kernel).clone())
    conv.bias = None if bias is None else nn.Parameter(bias.detach().clone())
    return conv


def _params(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A convolution's weight (out, in, k, k) and bias (zeros where it has none)."""
    weight = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
    return weight, bias


class CentredNorm(nn.Module):
    """A channels' layer norm without its affine part: two matrix products, or in float32 on a CPU one compiled
    pass (see the module docstring)."""

    centre: torch.Tensor
    mean: torch.Tensor
    eps: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        mean = torch.full((channels, channels), 1.0 / channels)
        self.register_buffer("centre", torch.eye(channels) - mean)
        self.register_buffer("mean", mean)
        self.register_buffer("eps", torch.full((channels,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and x.device.type == "cpu":
            return _norm_in_one_pass(x)
        pixels = x.permute(0, 2, 3, 1)  # channels-last memory: a view
        centred = F.linear(pixels, self.centre)
        variance = F.linear(centred * centred, self.mean, self.eps)
        return centred.mul_(variance.rsqrt_()).permute(0, 3, 1, 2)


def _norm_in_one_pass(x: torch.Tensor) -> torch.Tensor:
    """:class:`CentredNorm` of a float32 tensor on the CPU, by a compiled loop over its pixels (one read, one
    write; the two products cost five passes over memory)."""
    from engine import kernels

    c = x.shape[1]
    pixels = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view when x is channels-last, as the network keeps it
    out = torch.empty_like(x, memory_format=torch.channels_last)
    kernels.channel_norm(pixels.numpy(), out.permute(0, 2, 3, 1).view(-1, c).numpy(), 1e-6)
    return out


def _after_norm(norm: LayerNorm2d, conv: Pointwise) -> nn.Conv2d:
    """``conv`` applied after ``norm``'s scale and shift, as one convolution."""
    weight, bias = _params(conv)
    matrix = weight.view(conv.out_channels, conv.in_channels)
    return _conv(conv.in_channels, conv.out_channels, 1, matrix * norm.weight.detach(),
                 bias + matrix @ norm.bias.detach())


def _scaled(conv: Pointwise, scale: torch.Tensor) -> nn.Conv2d:
    """``conv`` with its outputs multiplied by a per-channel ``scale`` (shape (1, C, 1, 1))."""
    weight, bias = _params(conv)
    s = scale.detach().view(-1)
    return _conv(conv.in_channels, conv.out_channels, 1, weight * s.view(-1, 1, 1, 1), bias * s)


class FusedNAFBlock(nn.Module):
    """A :class:`NAFBlock` with its norms' affine parts and its branch scales folded; adds in place."""

    def __init__(self, block: NAFBlock) -> None:
        super().__init__()
        c = block.conv2.out_channels
        self.norm1, self.norm2 = CentredNorm(c), CentredNorm(c)
        self.conv1 = _after_norm(block.norm1, block.conv1)
        self.dwconv = block.dwconv
        self.conv2 = _scaled(block.conv2, block.beta)
        self.conv3 = _after_norm(block.norm2, block.conv3)
        self.conv4 = _scaled(block.conv4, block.gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x += self.conv2(simple_gate(self.dwconv(self.conv1(self.norm1(x)))))
        x += self.conv4(simple_gate(self.conv3(self.norm2(x))))
        return x


def _fused_blocks(blocks: nn.Module) -> nn.Sequential:
    return nn.Sequential(*(FusedNAFBlock(block) for block in blocks.children() if isinstance(block, NAFBlock)))


class FusedDenoiser(nn.Module):
    """:meth:`Denoiser.packed_forward` for one image scale, reading and writing pixels in raster order.

    Its input is a channels-last (1, C, H/pack, W/pack) tensor whose first ``3 * pack**2`` channels are each
    packed position's pixels in raster order, 3 values each (:meth:`pack_into`), and whose last 3 are the mean
    noise sigma, both in the image's own units (not divided by its scale); :meth:`residual_into` writes the
    network's change to the pixels, in the same units."""

    def __init__(self, model: Denoiser, scale: float) -> None:
        super().__init__()
        config = model.config
        self.pack = p = config.pack
        self.multiple = model.multiple
        k, width, image_channels = config.edge_kernel, config.width, 3 * p * p
        weight, bias = _params(model.intro)
        order = torch.cat([_pixel_order(p, 3), torch.arange(image_channels, model.intro.in_channels)])
        self.intro = _conv(model.intro.in_channels, width, k, weight[:, order] / scale, bias)
        self.encoders = nn.ModuleList(_fused_blocks(e) for e in model.encoders)
        self.downs = model.downs
        self.middle = _fused_blocks(model.middle)
        self.ups = nn.ModuleList()
        for up in model.ups:
            conv = next(up.children())  # a Pointwise convolution, then the pixel shuffle
            assert isinstance(conv, Pointwise)
            weight, _ = _params(conv)
            self.ups.append(_conv(conv.in_channels, conv.out_channels, 1,
                                  weight[_pixel_order(2, conv.out_channels // 4)], None))
        self.decoders = nn.ModuleList(_fused_blocks(d) for d in model.decoders)
        weight, bias = _params(model.ending)
        out = _pixel_order(p, 3)
        # residual_into reads only the first 3 * pack**2 outputs of the padded convolution
        self.ending = padded_outputs(_conv(width, image_channels, k, weight[out] * scale, bias[out] * scale))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """The residual at packed resolution: channels-last (1, C, H/pack, W/pack), its first 3 * pack**2 channels
        in raster order (see :meth:`residual_into`), the rest zero."""
        return u_net_pass(self, inp, _add_shuffled)

    def pack_into(self, inp: torch.Tensor, image: torch.Tensor) -> None:
        """Copy an (H, W, 3) tile of pixels into ``inp``'s first channels ((1, H/pack, W/pack, C), channels-last
        memory)."""
        p = self.pack
        hp, wp = image.shape[0] // p, image.shape[1] // p
        inp[0, ..., : 3 * p * p].view(hp, wp, p, 3 * p).copy_(image.view(hp, p, wp, 3 * p).transpose(1, 2))

    def residual_into(self, out: torch.Tensor, tile: torch.Tensor) -> None:
        """Copy :meth:`forward`'s output as (H, W, 3) pixels into ``tile`` (float32, contiguous)."""
        p = self.pack
        hp, wp = out.shape[-2:]
        packed = out[0].permute(1, 2, 0)[..., : 3 * p * p].view(hp, wp, p, 3 * p)  # channels-last memory: a view
        tile.view(hp, p, wp, 3 * p).copy_(packed.transpose(1, 2))


def _add_shuffled(skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``skip + pixel_shuffle(up, 2)``, in place in ``skip``, with ``up``'s channels in raster order."""
    _, c, h, w = skip.shape
    target = skip.permute(0, 2, 3, 1).view(h // 2, 2, w // 2, 2 * c)
    target += up.permute(0, 2, 3, 1).view(h // 2, w // 2, 2, 2 * c).transpose(1, 2)
    return skip


def fuse(model: Denoiser, scale: float, dtype: torch.dtype, device: str) -> FusedDenoiser:
    """The rendering form of ``model`` for an image of ``scale`` (:func:`engine.models.denoiser.image_scale`), in
    ``dtype`` on ``device``, channels-last, for inference only (it adds in place)."""
    with torch.no_grad():  # a copy: the depthwise and down-sampling convolutions are taken over as they are
        fused = FusedDenoiser(copy.deepcopy(model).float().cpu(), scale)
    return fused.to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
