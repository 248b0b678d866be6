"""The learned white balance: a camera-agnostic illuminant estimator on log-chroma histograms (C5-like).

Camera independence (what lets it work on cameras it never saw)
    Camera RGB is first mapped into one shared space with the camera's *own* calibration: the inverse of its
    XYZ-to-camera matrix for D65 (:func:`engine.calibration.xyz_to_camera` at 6504 K, i.e. the DNG ColorMatrix
    for D65), then XYZ to linear sRGB primaries without chromatic adaptation (:func:`working_matrix`). In that
    space a D65 white is (1, 1, 1) for every camera, and any other light lands where its colour really is, up
    to the camera's metameric error. The estimate is made there and mapped back through the same matrix, so a
    prediction becomes a camera neutral exactly.

Features (:func:`histograms`, as in FFCC / C5)
    Over a thumbnail (long side at most 256 px) without clipped or black pixels: log-chroma ``u = log(G/R)``,
    ``v = log(G/B)`` of the pixels, and of an edge image (absolute difference to a 3 x 3 box blur per channel),
    each as a 64 x 64 histogram with bins of 1/16 (u from -2.4, v from -1.6), weighted by the pixel's
    brightness (sum of channels), normalised to sum 1 and square-rooted. Networks built with ``inputs=3`` also
    read a third histogram, of the brightest 3 % of the usable pixels (the "bright pixels" cue: highlights and
    white surfaces carry the light's colour). Networks built with ``inputs=4`` read a fourth, of the pixels
    weighted by how central they are too (a Gaussian of :data:`CENTRE_SIGMA` of each side about the middle):
    the subject of a picture is mostly in the middle, and where it is lit differently from its surroundings (a
    lamp-lit table before a blue window) only this one says which light is the subject's. A change of light is
    (nearly) a shift of every histogram.

Network (:class:`IlluminantNet`)
    Fully convolutional over the histogram plane (so it is shift-equivariant, as the physics is), two stride-2
    stages and two dilated convolutions for a receptive field of about half the plane, back to 64 x 64 by
    transposed convolutions with skips, giving a logit map; a learned 64 x 64 bias map (the prior over lights,
    C5's "B") is added, a softmax turns it into a distribution over (u, v), and its mean is the estimate.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.calibration import xyz_to_camera
from engine.colour import SRGB

BINS = 64
BIN_WIDTH = 1.0 / 16.0
U_START, V_START = -2.4, -1.6
THUMBNAIL = 256
CLIPPED = 0.98  # raw level above which a channel counts as clipped
REFERENCE_TEMPERATURE = 6504.0
BRIGHTEST = 0.03  # the third histogram's share of the usable pixels, the brightest
CENTRE_SIGMA = 0.25  # the fourth histogram's centre weighting: a Gaussian of this fraction of each side


def working_matrix(calibration) -> np.ndarray:
    """Camera RGB -> the shared working space (camera's D65 matrix inverted, XYZ -> linear sRGB, no adaptation)."""
    camera_to_xyz = np.linalg.inv(xyz_to_camera(calibration, REFERENCE_TEMPERATURE))
    return np.linalg.inv(SRGB.rgb_to_xyz) @ camera_to_xyz


def thumbnail(camera_rgb: np.ndarray, long_side: int = THUMBNAIL) -> np.ndarray:
    """Area-averaged copy whose long side is at most ``long_side``."""
    h, w = camera_rgb.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1.0:
        return np.asarray(camera_rgb, dtype=np.float32)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.asarray(camera_rgb, dtype=np.float32), size, interpolation=cv2.INTER_AREA)


def _log_chroma_histogram(rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """64 x 64 histogram of (log G/R, log G/B) weighted by ``weight``; only positive, in-range pixels count."""
    ok = np.all(rgb > 1e-6, axis=-1) & (weight > 0)
    rgb, weight = rgb[ok], weight[ok]
    if len(rgb) == 0:
        return np.zeros((BINS, BINS), dtype=np.float32)
    u = np.log(rgb[:, 1] / rgb[:, 0])
    v = np.log(rgb[:, 1] / rgb[:, 2])
    iu = np.floor((u - U_START) / BIN_WIDTH).astype(np.int64)
    iv = np.floor((v - V_START) / BIN_WIDTH).astype(np.int64)
    inside = (iu >= 0) & (iu < BINS) & (iv >= 0) & (iv < BINS)
    flat = iu[inside] * BINS + iv[inside]
    hist = np.bincount(flat, weights=weight[inside], minlength=BINS * BINS).reshape(BINS, BINS)
    total = hist.sum()
    return np.sqrt(hist / total).astype(np.float32) if total > 0 else hist.astype(np.float32)


def histograms(camera_rgb: np.ndarray, to_working: np.ndarray, channels: int = 2) -> np.ndarray:
    """The (channels, 64, 64) input of the network for a camera RGB image (module docstring): pixels, edges,
    with ``channels=3`` the brightest pixels and with ``channels=4`` the pixels weighted towards the middle."""
    small = thumbnail(camera_rgb)
    usable = (small.max(axis=-1) < CLIPPED) & (small.sum(axis=-1) > 1e-4)
    working = (small @ to_working.T).astype(np.float32)
    edges = np.abs(working - cv2.blur(working, (3, 3), borderType=cv2.BORDER_REFLECT_101))
    # an edge next to a clipped pixel is not trustworthy either
    near_clipped = cv2.erode(usable.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    brightness = working.sum(axis=-1)
    planes = [
        _log_chroma_histogram(working[usable], brightness[usable]),
        _log_chroma_histogram(edges[near_clipped], edges[near_clipped].sum(axis=-1)),
    ]
    if channels >= 3:
        raw_brightness = small.sum(axis=-1)[usable]  # in camera RGB: the same pixels whatever the working matrix
        top = raw_brightness >= np.quantile(raw_brightness, 1.0 - BRIGHTEST) if len(raw_brightness) else []
        planes.append(_log_chroma_histogram(working[usable][top], brightness[usable][top]))
    if channels >= 4:
        centre = centre_weight(*small.shape[:2])
        planes.append(_log_chroma_histogram(working[usable], (brightness * centre)[usable]))
    return np.stack(planes)


def centre_weight(h: int, w: int) -> np.ndarray:
    """(h, w) Gaussian weights, 1 in the middle, of :data:`CENTRE_SIGMA` of the height and of the width."""
    y = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
    x = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2) / CENTRE_SIGMA**2)


def bin_centres() -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) at the centre of every bin, each (64, 64)."""
    u = U_START + (torch.arange(BINS, dtype=torch.float32) + 0.5) * BIN_WIDTH
    v = V_START + (torch.arange(BINS, dtype=torch.float32) + 0.5) * BIN_WIDTH
    u_grid, v_grid = torch.meshgrid(u, v, indexing="ij")
    return u_grid, v_grid


class IlluminantNet(nn.Module):
    """Histograms (N, 2, 64, 64) -> illuminant log-chroma (N, 2) in the working space (module docstring)."""

    u_centres: torch.Tensor  # buffers, (64, 64): the bins' centres
    v_centres: torch.Tensor

    def __init__(self, width: int = 16, inputs: int = 2) -> None:
        super().__init__()
        c = width
        self.enc1 = nn.Sequential(nn.Conv2d(inputs, c, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.ReLU())
        self.enc3 = nn.Sequential(nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(4 * c, 4 * c, 3, padding=2, dilation=2), nn.ReLU(),
                                  nn.Conv2d(4 * c, 4 * c, 3, padding=4, dilation=4), nn.ReLU())
        self.up3 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.dec2 = nn.Sequential(nn.Conv2d(4 * c, 2 * c, 3, padding=1), nn.ReLU())
        self.up2 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.dec1 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 1, 3, padding=1))
        self.bias_map = nn.Parameter(torch.zeros(1, BINS, BINS))
        u, v = bin_centres()
        self.register_buffer("u_centres", u, persistent=False)
        self.register_buffer("v_centres", v, persistent=False)

    def logits(self, hist: torch.Tensor) -> torch.Tensor:
        """(N, 64, 64) unnormalised log-probabilities of the light's (u, v) bin."""
        e1 = self.enc1(hist)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([self.up3(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up2(d2), e1], dim=1))
        return d1[:, 0] + self.bias_map

    def forward(self, hist: torch.Tensor) -> torch.Tensor:
        p = F.softmax(self.logits(hist).flatten(1), dim=1).view(-1, BINS, BINS)
        return torch.stack([(p * self.u_centres).sum((1, 2)), (p * self.v_centres).sum((1, 2))], dim=1)


def uv_to_rgb(uv: torch.Tensor) -> torch.Tensor:
    """Working-space RGB (green = 1) of log-chroma (N, 2)."""
    return torch.stack([torch.exp(-uv[:, 0]), torch.ones_like(uv[:, 0]), torch.exp(-uv[:, 1])], dim=1)


def angular_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between RGB vectors (N, 3), differentiable (clamped away from 0)."""
    cos = F.cosine_similarity(a, b, dim=1).clamp(-0.999999, 0.999999)
    return torch.rad2deg(torch.acos(cos))


def to_camera_neutral(uv: torch.Tensor, to_working: torch.Tensor) -> torch.Tensor:
    """Camera neutrals (N, 3), green = 1, of predicted log-chroma with per-sample working matrices (N, 3, 3)."""
    camera = torch.linalg.solve(to_working, uv_to_rgb(uv).unsqueeze(-1)).squeeze(-1)
    return camera / camera[:, 1:2]


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def inputs_of(model: IlluminantNet) -> int:
    """How many histograms the network reads (2: pixels and edges; 3: and the brightest pixels; 4: and the pixels
    weighted towards the middle)."""
    first = model.enc1[0]
    assert isinstance(first, nn.Conv2d)
    return first.in_channels


def load(name: str = "wb-c5") -> IlluminantNet:
    """The shipped estimator, verified against the manifest (ModelError naming the file when it is not)."""
    from engine.models import build_network

    return build_network(name, IlluminantNet)


def estimate_neutral(camera_rgb: np.ndarray, calibration, model: IlluminantNet | None = None) -> np.ndarray:
    """The camera neutral (green = 1) of the scene light in linear camera RGB (H, W, 3)."""
    model = model or load()
    to_working = working_matrix(calibration)
    hist = torch.from_numpy(histograms(camera_rgb, to_working, inputs_of(model)))[None]
    with torch.inference_mode():
        uv = model(hist)
        neutral = to_camera_neutral(uv.double(), torch.from_numpy(to_working)[None])
    return np.maximum(neutral[0].numpy(), 1e-6)


def source_camera_rgb(source) -> np.ndarray | None:
    """Small linear camera RGB of a raw straight from its sensor data, in [0, 1] of black..white: each 2 x 2
    Bayer cell becomes one pixel (greens averaged), LinearRaw is used as it is, both area-averaged to a long
    side of at most 1024 px. None for what this cannot read (sRGB images, X-Trans and 4-colour mosaics).

    It depends on the file alone (not on the recipe's denoising), so the estimate made from it is the same in
    every render of the file and in ``hostplug info``.
    """
    if source.kind != "raw":
        return None
    sensor = source.sensor
    black = np.asarray(source.black, dtype=np.float32)
    scale = 1.0 / np.maximum(np.asarray(source.white, dtype=np.float32) - black, 1e-6)
    if sensor.ndim == 3:
        return thumbnail((sensor[..., :3].astype(np.float32) - black) * scale, 1024)
    if source.cfa is None:
        return None
    h, w = (sensor.shape[0] // 2) * 2, (sensor.shape[1] // 2) * 2
    planes = np.zeros((h // 2, w // 2, 3), dtype=np.float32)
    counts = np.zeros(3, dtype=np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            c = int(source.cfa[dy, dx])
            planes[..., c] += (sensor[dy:h:2, dx:w:2].astype(np.float32) - black[c]) * scale[c]
            counts[c] += 1.0
    return thumbnail(planes / counts, 1024)


def source_neutral(source, fallback_image: np.ndarray | None = None) -> np.ndarray:
    """The learned estimate of a raw's scene light as a camera neutral (green = 1): what the engine balances to
    when the file holds no as-shot white balance. Estimated from :func:`source_camera_rgb` (or, for mosaics it
    cannot read, from ``fallback_image``, the demosaiced camera RGB), once per opened source."""
    cached = getattr(source, "_learned_neutral", None)
    if cached is not None:
        return cached.copy()
    from engine.calibration import srgb_calibration

    rgb = source_camera_rgb(source)
    if rgb is None:
        if fallback_image is None:
            raise ValueError(f"{source.path}: no camera RGB to estimate the white balance from")
        rgb = fallback_image
    neutral = estimate_neutral(rgb, source.calibration if source.calibration is not None else srgb_calibration())
    source._learned_neutral = neutral
    return neutral.copy()
