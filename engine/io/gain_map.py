"""DNG GainMap opcodes: the lens-shading maps that phones and drones store in their DNGs, which LibRaw ignores.

A small lens darkens the corners, and differently in each colour (a phone's corners turn green or magenta).
Android's camera API (which measures it per shot), drones and Adobe's DNG Converter store it as GainMap opcodes
(DNG 1.3, opcode 9): a coarse grid of gains per colour plane, interpolated bilinearly over the picture.
Without them a phone DNG renders with dark, tinted corners. darktable and RawTherapee apply them; LibRaw, and so
rawpy, does not (rawpy issue 212).

Where a map applies follows the DNG SDK (``dng_gain_map``): grid positions are relative to the bounds of the
image at the map's stage (the active area, :attr:`engine.io.source.Source.sensor`, for OpcodeList2 on the raw
data and for OpcodeList3 on the demosaiced image alike), at pixel centres; a map multiplies the pixels of its area
(every ``row_pitch``-th row and ``col_pitch``-th column from its top-left, on a Bayer mosaic usually one CFA
position per map) in its planes, and the result is clipped at white, as the SDK clips it. Some phones write a
FixVignetteRadial opcode instead (:class:`RadialGain`): a polynomial in the distance from the optical centre,
applied the same way.
"""

from __future__ import annotations

import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

GAIN_MAX = 64.0  # six stops: far beyond any lens's shading, and a bound on what a damaged map can do
POINTS_MAX = 1024  # grid points a side: cameras write tens; a damaged count must stay cheap to interpolate
HEADER = struct.Struct(">10I4dI")  # area, planes, pitches, points; spacing, origin; map planes


class ShadingMap(ABC):
    """A gain over the picture that undoes lens shading: a :class:`GainMap` or a :class:`RadialGain`."""

    @abstractmethod
    def covers(self, plane: int) -> bool:
        """Whether the map applies to image plane ``plane``."""

    @abstractmethod
    def selects(self, row: int, col: int) -> bool:
        """Whether the map applies to pixel (``row``, ``col``) of its area's pattern (a Bayer site, for one of
        four per-site maps)."""

    @abstractmethod
    def multiply(self, gain: np.ndarray, rows: range, cols: range, size: tuple[int, int], plane: int = 0) -> None:
        """Multiply ``gain`` (len(rows), len(cols)), the pixels ``rows`` x ``cols`` (runs of whole rows and
        columns) of an image of ``size`` (H, W), in place by the map's gain where it applies on ``plane``."""

    @abstractmethod
    def interpolate(self, plane: int, rows: np.ndarray, cols: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The map's gains on ``plane`` at the positions ``rows`` x ``cols`` (pixel centres, as fractions of the
        height and width of an image of ``size``), wherever its area is: float32 (len(rows), len(cols))."""

    def field(self, rows: range, cols: range, size: tuple[int, int], plane: int = 0) -> np.ndarray:
        """The gain at the pixels ``rows`` x ``cols`` of an image of ``size`` on ``plane``: the map's where it
        applies, 1 elsewhere. float32 (len(rows), len(cols))."""
        gain = np.ones((len(rows), len(cols)), dtype=np.float32)
        self.multiply(gain, rows, cols, size, plane)
        return gain


@dataclass(frozen=True)
class GainMap(ShadingMap):
    """One GainMap opcode: an area, its planes and a (points_v, points_h, map_planes) grid of gains."""

    top: int
    left: int
    bottom: int
    right: int
    plane: int
    planes: int
    row_pitch: int
    col_pitch: int
    spacing: tuple[float, float]  # (vertical, horizontal), in units of the image's height and width
    origin: tuple[float, float]  # the first grid point, same units
    gains: np.ndarray  # float32 (points_v, points_h, map_planes)

    def covers(self, plane: int) -> bool:
        return self.plane <= plane < self.plane + self.planes

    def selects(self, row: int, col: int) -> bool:
        return (row - self.top) % self.row_pitch == 0 and (col - self.left) % self.col_pitch == 0

    def multiply(self, gain: np.ndarray, rows: range, cols: range, size: tuple[int, int], plane: int = 0) -> None:
        in_rows = self._selected(rows, self.top, self.bottom, self.row_pitch)
        in_cols = self._selected(cols, self.left, self.right, self.col_pitch)
        if not (self.covers(plane) and len(in_rows) and len(in_cols)):
            return
        at = (slice(in_rows.start - rows.start, in_rows.stop - rows.start, in_rows.step),
              slice(in_cols.start - cols.start, in_cols.stop - cols.start, in_cols.step))
        gain[at] *= self.interpolate(plane, (np.array(in_rows) + 0.5) / size[0],
                                     (np.array(in_cols) + 0.5) / size[1], size)

    def interpolate(self, plane: int, rows: np.ndarray, cols: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        # Bilinear, one axis after the other, by gathering the two grid points about each position: a matrix
        # product would call BLAS, whose threads then spin beside the denoiser's and slowed it by a third.
        grid = self.gains[..., min(plane - self.plane, self.gains.shape[2] - 1)]
        low, high, fraction = _bracket(cols, self.origin[1], self.spacing[1], grid.shape[1])
        across = grid[:, low] * (1 - fraction) + grid[:, high] * fraction  # (points_v, len(cols))
        low, high, fraction = _bracket(rows, self.origin[0], self.spacing[0], grid.shape[0])
        return (across[low] * (1 - fraction)[:, None] + across[high] * fraction[:, None]).astype(np.float32)

    @staticmethod
    def _selected(span: range, start: int, end: int, pitch: int) -> range:
        """The indices of ``span`` in ``start..end`` that are a whole number of ``pitch`` from ``start``."""
        first = max(span.start, start)
        first += -(first - start) % pitch
        return range(first, max(first, min(span.stop, end)), pitch)


@dataclass(frozen=True)
class RadialGain(ShadingMap):
    """One FixVignetteRadial opcode (DNG 1.3, opcode 3): on every pixel of every plane, the gain
    ``1 + k0 r^2 + k1 r^4 + k2 r^6 + k3 r^8 + k4 r^10``, ``r`` the distance from the optical centre (``cx``, ``cy``
    of the image's width and height) to the pixel's centre, divided by the centre's distance to the farthest
    corner (the SDK's ``dng_opcode_FixVignetteRadial``)."""

    coefficients: tuple[float, float, float, float, float]
    centre: tuple[float, float]  # (horizontal, vertical), as fractions of the image's width and height

    def covers(self, plane: int) -> bool:
        return True

    def selects(self, row: int, col: int) -> bool:
        return True

    def multiply(self, gain: np.ndarray, rows: range, cols: range, size: tuple[int, int], plane: int = 0) -> None:
        gain *= self.interpolate(plane, (np.array(rows) + 0.5) / size[0], (np.array(cols) + 0.5) / size[1], size)

    def interpolate(self, plane: int, rows: np.ndarray, cols: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        height, width = size
        cx, cy = self.centre[0] * width, self.centre[1] * height
        radius = math.hypot(max(cx, width - cx), max(cy, height - cy))
        dv, dh = (rows * height - cy)[:, None] / radius, (cols * width - cx)[None, :] / radius
        return self.gain(np.minimum(dv * dv + dh * dh, 1.0)).astype(np.float32)

    def gain(self, r2: np.ndarray) -> np.ndarray:
        """The gain at squared normalised radii ``r2``."""
        total = np.zeros_like(r2)
        for k in reversed(self.coefficients):
            total = r2 * (k + total)
        return 1.0 + total


def _bracket(position: np.ndarray, origin: float, spacing: float,
             points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid points below and above each position, and how far it lies between them (the SDK's
    ``dng_gain_map_interpolator``: positions before the first point or past the last take that point's gain)."""
    with np.errstate(all="ignore"):  # a damaged spacing (0, subnormal) gives inf or NaN: clipped or zeroed here
        position = np.clip(np.nan_to_num((position - origin) / spacing, nan=0.0), 0.0, points - 1)
    low = np.minimum(np.floor(position).astype(np.int64), points - 1)
    return low, np.minimum(low + 1, points - 1), (position - low).astype(np.float32)


def parse(params: bytes) -> GainMap:
    """A GainMap opcode's parameters (DNG 1.3, big-endian); ValueError says what is wrong with them."""
    if len(params) < HEADER.size:
        raise ValueError(f"a GainMap opcode of {len(params)} bytes, shorter than its {HEADER.size}-byte header")
    (top, left, bottom, right, plane, planes, row_pitch, col_pitch, points_v, points_h,
     spacing_v, spacing_h, origin_v, origin_h, map_planes) = HEADER.unpack_from(params)
    if not (top < bottom and left < right and row_pitch >= 1 and col_pitch >= 1):
        raise ValueError(f"a GainMap over rows {top}..{bottom}, columns {left}..{right} with pitches "
                         f"{row_pitch} x {col_pitch}")
    if plane > 3 or not 1 <= planes <= 4 or not 1 <= map_planes <= 4:
        raise ValueError(f"a GainMap on plane {plane} of {planes} with {map_planes} map planes (at most 4)")
    count = points_v * points_h * map_planes
    if not (1 <= points_v <= POINTS_MAX and 1 <= points_h <= POINTS_MAX):
        raise ValueError(f"a GainMap of {points_v} x {points_h} points (1 to {POINTS_MAX} a side)")
    if len(params) < HEADER.size + 4 * count:
        raise ValueError(f"a GainMap of {points_v} x {points_h} x {map_planes} points in {len(params)} bytes")
    # A single point needs no spacing; the SDK sets it to 1 rather than divide by a zero.
    spacing = (spacing_v if points_v > 1 else 1.0, spacing_h if points_h > 1 else 1.0)
    origin = (origin_v, origin_h)
    if not all(math.isfinite(v) and abs(v) <= 1e6 for v in (*spacing, *origin)) or min(spacing) <= 0:
        raise ValueError(f"a GainMap with spacing {spacing} and origin {origin} (finite, spacing above 0)")
    gains = np.frombuffer(params, dtype=">f4", count=count, offset=HEADER.size).astype(np.float32)
    if not (np.all(np.isfinite(gains)) and gains.min() >= 0 and gains.max() <= GAIN_MAX):
        raise ValueError(f"GainMap gains outside 0..{GAIN_MAX:g} (from {gains.min()} to {gains.max()})")
    return GainMap(top, left, bottom, right, plane, planes, row_pitch, col_pitch, spacing, origin,
                   gains.reshape(points_v, points_h, map_planes))


def parse_radial(params: bytes) -> RadialGain:
    """A FixVignetteRadial opcode's parameters (k0..k4, cx, cy: seven big-endian doubles); ValueError says what is
    wrong with them."""
    if len(params) != 56:
        raise ValueError(f"a FixVignetteRadial opcode of {len(params)} bytes (56: seven numbers)")
    values = struct.unpack(">7d", params)
    radial = RadialGain(values[:5], (values[5], values[6]))
    if not all(math.isfinite(v) for v in values) or not all(0 <= c <= 1 for c in radial.centre):
        raise ValueError(f"FixVignetteRadial values {values} (finite; the centre within the image)")
    gains = radial.gain(np.linspace(0.0, 1.0, 101))
    if not (gains.min() >= 1 / GAIN_MAX and gains.max() <= GAIN_MAX):
        raise ValueError(f"a FixVignetteRadial whose gain reaches {gains.min():.3g}..{gains.max():.3g} (a lens "
                         f"stays within 1/{GAIN_MAX:g}..{GAIN_MAX:g})")
    return radial


def encode_radial(radial: RadialGain) -> bytes:
    """The opcode parameters of ``radial`` (the inverse of :func:`parse_radial`)."""
    return struct.pack(">7d", *radial.coefficients, *radial.centre)


def encode(gain_map: GainMap) -> bytes:
    """The opcode parameters of ``gain_map`` (the inverse of :func:`parse`; tests and the synthetic DNG writer)."""
    g = gain_map
    points_v, points_h, map_planes = g.gains.shape
    header = HEADER.pack(g.top, g.left, g.bottom, g.right, g.plane, g.planes, g.row_pitch, g.col_pitch,
                         points_v, points_h, *g.spacing, *g.origin, map_planes)
    return header + g.gains.astype(">f4").tobytes()


def combined_gain(maps: Iterable[ShadingMap], rows: range, cols: range, size: tuple[int, int],
                  plane: int = 0) -> np.ndarray:
    """The product of ``maps``' gains at the pixels ``rows`` x ``cols`` of ``plane`` (a mosaic is plane 0)."""
    gain = np.ones((len(rows), len(cols)), dtype=np.float32)
    for gain_map in maps:
        gain_map.multiply(gain, rows, cols, size, plane)
    return gain


def apply_to_planes(maps: list[ShadingMap], image: np.ndarray, top: int, size: tuple[int, int]) -> None:
    """Multiply ``image`` (rows ``top``... of an H x W x C image of ``size``, normalised: 1 = white) in place by
    each map's gains on its planes, clipping at 1."""
    rows, cols = range(top, top + image.shape[0]), range(image.shape[1])
    for plane in range(image.shape[2]):
        channel = image[..., plane]
        channel *= combined_gain(maps, rows, cols, size, plane)
        np.minimum(channel, 1.0, out=channel)


@dataclass(frozen=True)
class Shading:
    """How much the applied maps raised each colour channel: the learned denoiser's noise model needs it, since the
    gains raised the noise with the signal (a corner lifted 1.5 stops is 1.5 stops noisier than the middle).

    ``mosaic_maps`` were applied to a Bayer mosaic of pattern ``cfa`` (2 x 2 channel indices), to the planes of a
    LinearRaw image (``cfa`` None, ``planes`` True) or to another mosaic (X-Trans, 4-colour: ``cfa`` None);
    ``rgb_maps`` to the demosaiced image. ``size`` is the image's (H, W) then, ``window`` the (top, left, height,
    width) of it that the render kept (DNG DefaultCrop).
    """

    mosaic_maps: tuple[ShadingMap, ...]
    rgb_maps: tuple[ShadingMap, ...]
    cfa: np.ndarray | None
    size: tuple[int, int]
    window: tuple[int, int, int, int] | None = None
    planes: bool = False

    def channel_gains(self, rows: range, cols: range, size: tuple[int, int]) -> np.ndarray:
        """The gain of each channel at the pixels ``rows`` x ``cols`` of the image as it is now, of ``size`` (the
        window, or a preview of it): float32 (len(rows), len(cols), 3)."""
        top, left, height, width = self.window or (0, 0, *self.size)
        at_rows = (top + (np.array(rows) + 0.5) * height / size[0]) / self.size[0]
        at_cols = (left + (np.array(cols) + 0.5) * width / size[1]) / self.size[1]
        gains = np.empty((len(rows), len(cols), 3), dtype=np.float32)
        for channel in range(3):
            gains[..., channel] = self._mosaic_gain(channel, at_rows, at_cols)
            for gain_map in self.rgb_maps:
                if gain_map.covers(channel):
                    gains[..., channel] *= gain_map.interpolate(channel, at_rows, at_cols, self.size)
        return gains

    def _mosaic_gain(self, channel: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if self.planes:
            return _product([m for m in self.mosaic_maps if m.covers(channel)], channel, rows, cols, self.size)
        maps = [m for m in self.mosaic_maps if m.covers(0)]  # a mosaic is one plane: the others were not applied
        if self.cfa is None:  # another mosaic: every map's mean, the colours' sites not told apart
            fields = [m.interpolate(0, rows, cols, self.size) for m in maps]
            return np.mean(fields, axis=0) if fields else np.ones((rows.size, cols.size), dtype=np.float32)
        # a Bayer channel: the mean of the gains of its sites in the 2 x 2 pattern (green has two)
        sites = np.argwhere(self.cfa == channel)
        return np.mean([_product([m for m in maps if m.selects(y, x)], 0, rows, cols, self.size)
                        for y, x in sites], axis=0)


def _product(maps: list[ShadingMap], plane: int, rows: np.ndarray, cols: np.ndarray,
             size: tuple[int, int]) -> np.ndarray:
    """The product of ``maps``' gains at every position ``rows`` x ``cols``, their areas disregarded."""
    gain = np.ones((rows.size, cols.size), dtype=np.float32)
    for gain_map in maps:
        gain *= gain_map.interpolate(plane, rows, cols, size)
    return gain
