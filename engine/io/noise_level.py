"""The noise level of a raw: the per-pixel standard deviation the learned denoiser is conditioned on.

Raw noise is Poisson-Gaussian: on a signal ``s`` (a fraction of white - black) the variance is ``S * s + O``
(the DNG NoiseProfile model, one (S, O) pair per colour plane or one for all). Where it comes from, in the order
"auto" tries them:

1. **profile**: the file's DNG NoiseProfile tag (2 values for all planes, or 2 per plane);
2. **iso**: the per-ISO model of :func:`engine.synthetic.noise_profile`: ``S = ISO / 100 / 25000`` (a full well of
   25 000 electrons at ISO 100) and ``O = (3 S)^2 + (2 / 15871)^2`` (3 electrons of read noise before the ISO
   gain and 2 DN after it, at 14 bits). Real sensors differ by up to about a stop;
3. **estimate**: :func:`estimate` measures it from the image itself (the native green samples of a Bayer image,
   where the demosaic left the raw values as they were). Fine texture reads as noise, so on a clean, detailed
   image at low ISO it overestimates; it is the fallback for files with neither a profile nor an ISO.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.channels import scale_channels
from engine.io.gain_map import Shading
from engine.training import synthetic

# The 10th percentile of the sample variance of 64 unit-variance Gaussian samples (0.779, measured over 10^5
# trials): dividing by it turns the percentile of block variances into an estimate of the noise variance.
_PERCENTILE = 10
_P10_OF_64 = 0.779
NOISE_SOURCES = ("auto", "profile", "iso", "estimate")
GAIN_STEP = 4  # pixels between the lens-shading gains the noise map reads (NoiseModel.sigma)


@dataclass(frozen=True)
class NoiseModel:
    """Variance ``shot * s + read`` per colour channel R, G, B; ``origin`` says where it came from.

    ``shading``: the lens-shading maps the demosaic stage applied, which raised signal and noise alike by a gain
    ``g``: there the variance is ``g * shot * s + g^2 * read``.
    """

    shot: tuple[float, float, float]
    read: tuple[float, float, float]
    origin: str
    shading: Shading | None = None

    def binned(self, factor: float) -> NoiseModel:
        """The noise of the image scaled down ``factor`` times (area averaging) after demosaicing: each pixel
        then averages ``factor^2 / 4`` red or blue samples of the mosaic and ``factor^2 / 2`` green ones, so the
        variance falls by as much (never rises: below a factor of 2 it is left as it is)."""
        if factor <= 1.0:
            return self
        red_blue, green = 1.0 / max(1.0, factor * factor / 4.0), 1.0 / max(1.0, factor * factor / 2.0)

        def kept(values: tuple[float, float, float]) -> tuple[float, float, float]:
            return values[0] * red_blue, values[1] * green, values[2] * red_blue

        return replace(self, shot=kept(self.shot), read=kept(self.read),
                       origin=f"{self.origin}, averaged over {factor:.3g} x {factor:.3g} sensor pixels")

    def sigma(self, rgb: np.ndarray, window: tuple[range, range, tuple[int, int]] | None = None) -> np.ndarray:
        """Per-pixel, per-channel noise standard deviation of linear camera RGB (H, W, 3), float32. ``window``
        says where ``rgb`` lies in the image (rows, columns, the image's size), for the shading's gains."""
        out = np.maximum(rgb, np.float32(0.0), dtype=np.float32)  # one buffer, worked in place (18 MP: 216 MB)
        if self.shading is None or window is None:
            return np.sqrt(scale_channels(out, self.shot, self.read), out=out)
        # g S x + g^2 O as g (S x + g O), in place (no division: a GainMap may hold gains of 0)
        gain = self.shading_gain(*window)
        scale_channels(out, self.shot)
        out += gain * np.asarray(self.read, dtype=np.float32)
        out *= gain
        return np.sqrt(out, out=out)

    def shading_gain(self, rows: range, cols: range, size: tuple[int, int]) -> np.ndarray:
        """The shading's gain at the pixels ``rows`` x ``cols`` of an image of ``size``, per channel (float32,
        (len(rows), len(cols), 3)), evaluated every :data:`GAIN_STEP` pixels: a lens's shading changes by well
        under 1 % over them (0.3 % at most on the tests' maps), and evaluating every pixel took twice as long as
        the noise map itself."""
        assert self.shading is not None
        coarse = self.shading.channel_gains(range(rows.start, rows.stop, GAIN_STEP),
                                            range(cols.start, cols.stop, GAIN_STEP), size)
        return np.repeat(np.repeat(coarse, GAIN_STEP, axis=0), GAIN_STEP, axis=1)[: len(rows), : len(cols)]


def from_profile(profile: np.ndarray | None) -> NoiseModel | None:
    """The model of a DNG NoiseProfile (2 or 2 x 3 values); None when there is none or it is unusable."""
    if profile is None:
        return None
    values = np.asarray(profile, dtype=np.float64).ravel()
    if values.size < 2 or values.size % 2 or not np.all(np.isfinite(values)) or np.any(values < 0):
        return None
    pairs = values.reshape(-1, 2)
    if len(pairs) != 3:
        pairs = np.repeat(pairs[:1], 3, axis=0)
    if not np.any(pairs[:, 0] > 0):
        return None
    (s0, o0), (s1, o1), (s2, o2) = pairs.tolist()
    return NoiseModel((s0, s1, s2), (o0, o1, o2), "DNG NoiseProfile")


def from_iso(iso: float) -> NoiseModel:
    """The documented per-ISO model (module docstring); ISO 100 when the file does not say."""
    shot, read = synthetic.noise_profile(iso if iso > 0 else 100.0)
    return NoiseModel((shot,) * 3, (read,) * 3, f"ISO {iso:g} model" if iso > 0 else "ISO 100 model (no ISO)")


def _native_green(rgb: np.ndarray, cfa: np.ndarray | None) -> np.ndarray:
    """The green samples the sensor measured (one of the two green sites of a Bayer mosaic), else all green."""
    if cfa is not None and np.asarray(cfa).shape == (2, 2):
        sites = np.argwhere(np.asarray(cfa) == 1)
        if len(sites):
            y, x = sites[0]
            return rgb[y::2, x::2, 1]
    return rgb[..., 1]


def estimate(rgb: np.ndarray, cfa: np.ndarray | None = None) -> NoiseModel:
    """Measure (S, O) from the image: block variances of a high-pass, binned by level, fitted by a line.

    On the native green samples, ``(4 p - sum of the 4 neighbours) / sqrt(20)`` has the noise variance in flat
    areas. In 8 x 8 blocks, the variance of this residual is paired with the block's mean level; per level bin
    the 10th percentile (the flattest blocks, corrected for the percentile's bias) is kept, and a line with
    non-negative slope and offset is fitted through them.
    """
    plane = _native_green(np.asarray(rgb, dtype=np.float32), cfa).astype(np.float64)
    if min(plane.shape) < 24:
        raise ValueError("the image is too small to estimate its noise")
    residual = (4.0 * plane[1:-1, 1:-1] - plane[:-2, 1:-1] - plane[2:, 1:-1] - plane[1:-1, :-2]
                - plane[1:-1, 2:]) / np.sqrt(20.0)
    level = plane[1:-1, 1:-1]
    h, w = (residual.shape[0] // 8) * 8, (residual.shape[1] // 8) * 8
    blocks = residual[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    means = level[:h, :w].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3)).ravel()
    variances = blocks.var(axis=1, ddof=1)
    keep = (means > 0.002) & (means < 0.9)
    if keep.sum() < 16:
        keep = np.ones_like(means, dtype=bool)
    means, variances = means[keep], variances[keep]
    edges = np.unique(np.quantile(means, np.linspace(0.0, 1.0, 13)))
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (means >= lo) & (means <= hi)
        if inside.sum() >= 8:
            xs.append(float(np.median(means[inside])))
            ys.append(float(np.percentile(variances[inside], _PERCENTILE)) / _P10_OF_64)
    shot, read = _fit_line(np.array(xs), np.array(ys))
    return NoiseModel((shot,) * 3, (read,) * 3, "estimated from the image")


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = S x + O`` with S, O >= 0 (relative errors weigh alike: weights 1 / y)."""
    if len(x) == 0:
        return 0.0, 0.0
    if len(x) == 1:
        return float(y[0] / max(x[0], 1e-6)), 0.0
    weight = 1.0 / np.maximum(y, 1e-12)
    a = np.stack([x, np.ones_like(x)], axis=1) * weight[:, None]
    (shot, read), *_ = np.linalg.lstsq(a, y * weight, rcond=None)
    if read < 0:
        shot, read = float(np.sum(x * y * weight**2) / np.sum(x * x * weight**2)), 0.0
    if shot < 0:
        shot, read = 0.0, float(np.sum(y * weight**2) / np.sum(weight**2))
    return float(shot), float(read)


def noise_model(source_iso: float, profile: np.ndarray | None, rgb: np.ndarray | None = None,
                cfa: np.ndarray | None = None, how: str = "auto") -> NoiseModel:
    """The noise model a source's noise level comes from (``how`` is one of :data:`NOISE_SOURCES`)."""
    if how not in NOISE_SOURCES:
        raise ValueError(f"unknown noise source {how!r} (known: {', '.join(NOISE_SOURCES)})")
    if how in ("auto", "profile"):
        model = from_profile(profile)
        if model is not None:
            return model
    if how == "estimate" or (how == "auto" and source_iso <= 0 and rgb is not None):
        if rgb is None:
            raise ValueError("estimating the noise level needs the image")
        return estimate(rgb, cfa)
    return from_iso(source_iso)
