"""DNG lens warps: the lens-distortion (and lateral colour) corrections that phones, drones, action cameras and
Adobe's DNG Converter store in OpcodeList3, which LibRaw ignores.

A phone's wide lens bends straight lines; its DNG carries, per colour plane, a radial model and (for rectilinear
lenses) two tangential terms that say where each corrected pixel's light fell on the sensor. Three opcodes:

- **WarpRectilinear** (DNG 1.3, opcode 1; :class:`RectilinearWarp`): ``ratio = kr0 + kr1 r^2 + kr2 r^4 + kr3 r^6``;
- **WarpRectilinear2** (DNG 1.6, opcode 14; :class:`Rectilinear2Warp`): a polynomial of up to 15 terms in ``r``
  (odd powers too), ``r`` held within a valid range, optionally its reciprocal;
- **WarpFisheye** (DNG 1.3, opcode 2; :class:`FisheyeWarp`): ``ratio = t (k0 + k1 t^2 + k2 t^4 + k3 t^6) / r``
  with ``t = atan(r)``, no tangential terms: it straightens a fisheye into a rectilinear picture.

The mapping follows the DNG SDK (``dng_filter_warp::GetSrcPixelPosition``): pixel ``(row, col)`` at integer
coordinates, the optical centre at ``cx``, ``cy`` of the image's bounds, distances normalised by the centre's
distance to the farthest corner, ``r^2`` capped at 1::

    tangential (normalised): dv' = kt0 (r^2 + 2 dv^2) + 2 kt1 dh dv,  dh' = kt1 (r^2 + 2 dh^2) + 2 kt0 dh dv
    source = centre + R (d ratio + d')

and the image is resampled there (bicubic, clamped at the edges). Unlike the SDK, the result is not pinned to
0..1: the denoiser comes after, and clipping the noise about black would lift it.
"""

from __future__ import annotations

import math
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from engine.errors import CorruptInputError

RATIO_RANGE = (0.2, 5.0)  # the DNG SDK's safe radial ratios: a warp outside them is damage, not a lens
# The largest shift tangential (decentring) terms may make, as a fraction of the distance from the centre to the
# farthest corner. A real lens's are of the order of 1e-3 (OpenCV's p1, p2, which phones write on much the same
# scale) and move the corners by a fraction of a per cent; a tenth is damage, whose pixels all read far off.
TANGENTIAL_MAX = 0.1


class LensWarp(ABC):
    """Where the light of each corrected pixel fell, by a radial model per colour plane (see the module
    docstring), and the resampling that puts it back. A subclass is one opcode's model."""

    name: ClassVar[str]  # the opcode's name in the DNG specification
    opcode: ClassVar[int]  # its id in an opcode list
    coefficients: tuple[tuple[float, ...], ...]  # one tuple per plane, as the opcode stores it (1: every plane)
    centre: tuple[float, float]  # (horizontal, vertical), as fractions of the image's width and height

    def plane(self, plane: int) -> tuple[float, ...]:
        """The coefficients that apply to image plane ``plane``."""
        return self.coefficients[min(plane, len(self.coefficients) - 1)]

    @abstractmethod
    def ratio(self, r2: np.ndarray, plane: int, outside: bool = False) -> np.ndarray:
        """The radial ratio at squared normalised radii ``r2`` on ``plane`` (within 0..1, or beyond it with
        ``outside``: positions past the image that only steer an interpolation)."""

    def tangential(self, plane: int) -> tuple[float, float]:
        """The tangential terms (kt0, kt1) of ``plane``."""
        return 0.0, 0.0

    @property
    def smooth(self) -> bool:
        """Whether the mapping has no kinks, so positions between a few worked out exactly can be interpolated."""
        return True

    def source_positions(self, rows: range, size: tuple[int, int], plane: int) -> tuple[np.ndarray, np.ndarray]:
        """Where the light of each pixel of ``rows`` (every column) of an image of ``size`` (H, W) fell: the
        (x, y) source coordinates, float32 (len(rows), W) each; see :meth:`coarse_shifts` for how."""
        return self._positions(rows, size, plane, self.coarse_shifts(size, plane))

    def coarse_shifts(self, size: tuple[int, int], plane: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The shifts (source - pixel; x and y) the formula makes every :data:`POSITION_STEP` pixels over an image
        of ``size`` (one more row and column each way than it covers), when linear interpolation between them
        holds for ``plane``; ``None`` when each pixel's position must be worked out instead.

        Interpolation holds when the mapping has no kinks (:attr:`smooth`), the shifts are finite (past the
        image, where the cap on ``r`` is lifted, a steep polynomial can overflow) and, at each cell's centre (or
        its last pixel within the image), the interpolated shift is within :data:`POSITION_TOLERANCE` of the
        formula's. For a phone's lens on 1000 x 1500 it is within 0.003 px at every pixel, 0.02 px for a
        strong one; a 12 MP picture's positions for three planes took 0.32 s, 0.92 s worked out at each pixel
        (same run). A lens whose ratio bends fast (1 + 20 (r^14 - r^13), within 0.46..1 in the image) was 9.4 px
        off at a corner of 256 x 256 before this check.
        """
        if not self.smooth:
            return None
        height, width = size
        step = POSITION_STEP
        y = step * np.arange(-(-height // step) + 1, dtype=np.float64)
        x = step * np.arange(-(-width // step) + 1, dtype=np.float64)
        ys = np.minimum(y[:-1] + step // 2, height - 1).astype(np.int64)  # the cells' centres within the image
        xs = np.minimum(x[:-1] + step // 2, width - 1).astype(np.int64)
        with np.errstate(all="ignore"):  # overflow past the image is checked for below
            source_x, source_y = self.source_of(x[None, :], y[:, None], size, plane, outside=True)
            shifts = (source_x - x[None, :], source_y - y[:, None])
            if not (np.isfinite(shifts[0]).all() and np.isfinite(shifts[1]).all()):
                return None
            exact_x, exact_y = self.source_of(xs[None, :].astype(np.float64), ys[:, None].astype(np.float64),
                                              size, plane)
            error = max(np.abs(_interpolated(shifts[0], ys, xs) - (exact_x - xs[None, :])).max(),
                        np.abs(_interpolated(shifts[1], ys, xs) - (exact_y - ys[:, None])).max())
        return shifts if error <= POSITION_TOLERANCE else None  # a NaN error fails too

    def _positions(self, rows: range, size: tuple[int, int], plane: int,
                   coarse: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """The source positions of ``rows``, interpolated from ``coarse`` (:meth:`coarse_shifts`) or, when it is
        ``None``, worked out at each pixel. Positions that are not finite numbers raise CorruptInputError."""
        down = np.arange(rows.start, rows.stop)
        along = np.arange(size[1])
        if coarse is None:
            with np.errstate(all="ignore"):  # a pole between the parser's samples: checked below
                x, y = self.source_of(along[None, :].astype(np.float64), down[:, None].astype(np.float64), size,
                                      plane)
        else:
            x, y = _interpolated(coarse[0], down, along), _interpolated(coarse[1], down, along)
            x += along.astype(np.float32)[None, :]
            y += down.astype(np.float32)[:, None]
        if not np.isfinite([x.min(), x.max(), y.min(), y.max()]).all():  # NaN and inf show there
            raise CorruptInputError(f"damaged DNG: its {self.name} opcode puts some pixels' light at no position "
                                    "(not a finite number); the file was damaged or written by a faulty tool")
        return x.astype(np.float32, copy=False), y.astype(np.float32, copy=False)

    def source_of(self, x: np.ndarray, y: np.ndarray, size: tuple[int, int], plane: int,
                  outside: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The source coordinates (x, y) of corrected positions ``x``, ``y`` (arrays that broadcast) on
        ``plane``, in their precision. The SDK caps ``r^2`` at 1, which no pixel of the image passes;
        ``outside`` lifts the cap, for positions beyond the image that only steer an interpolation."""
        height, width = size
        kt0, kt1 = self.tangential(plane)
        cx, cy = self.centre[0] * width, self.centre[1] * height
        radius = math.hypot(max(cx, width - cx), max(cy, height - cy))  # to the farthest corner
        dh, dv = (x - cx) / radius, (y - cy) / radius
        r2 = dv * dv + dh * dh if outside else np.minimum(dv * dv + dh * dh, 1.0)
        ratio = self.ratio(r2, plane, outside)
        source_x = cx + radius * (dh * ratio + kt1 * (r2 + 2 * dh * dh) + 2 * kt0 * dh * dv)
        source_y = cy + radius * (dv * ratio + kt0 * (r2 + 2 * dv * dv) + 2 * kt1 * dh * dv)
        return source_x, source_y

    def apply(self, image: np.ndarray, band_rows: int = 256) -> np.ndarray:
        """The corrected image (a new H x W x C float32 array), resampled a band of rows at a time."""
        import cv2  # here: opening a file (``hostplug info``) needs no OpenCV

        height, width = image.shape[:2]
        out = np.empty_like(image)
        # planes with the same coefficients (all of them, for a one-plane warp) share their positions
        groups: dict[tuple[float, ...], list[int]] = {}
        for plane in range(image.shape[2]):
            groups.setdefault(self.plane(plane), []).append(plane)
        coarse = [self.coarse_shifts((height, width), planes[0]) for planes in groups.values()]  # once an image
        # One loop, not a function a band: a band's arrays live until the next band's replace them. Freed at once
        # on a function's return, the C library gave their memory back to the system and each band faulted in
        # fresh pages (12 MP with a set of coefficients per plane, OpenCV on one thread: 1.4 s instead of 0.85 s).
        for start in range(0, height, band_rows):
            rows = range(start, min(start + band_rows, height))
            for planes, shifts in zip(groups.values(), coarse, strict=True):
                x, y = self._positions(rows, (height, width), planes[0], shifts)
                # bicubic reads 2 pixels each side of a position, the border replicated: from 4 px out, each
                # reads the edge alone, so held there the result is the same and the row indices stay small
                np.clip(x, -4, width + 3, out=x)
                np.clip(y, -4, height + 3, out=y)
                top = max(int(np.floor(y.min())) - 2, 0)  # the source rows this band reads, with bicubic's reach
                bottom = max(min(int(np.ceil(y.max())) + 3, height), top + 1)
                # planes next to each other as a slice: a view of the image (no copy for all of them)
                consecutive = planes[-1] - planes[0] == len(planes) - 1
                channels = slice(planes[0], planes[-1] + 1) if consecutive else planes
                source = np.ascontiguousarray(image[top:bottom][..., channels])
                resampled = cv2.remap(source, np.ascontiguousarray(x), y - np.float32(top), cv2.INTER_CUBIC,
                                      borderMode=cv2.BORDER_REPLICATE)
                out[rows.start : rows.stop][..., channels] = resampled.reshape(len(rows), width, len(planes))
        return out


POSITION_STEP = 8  # pixels between the positions a warp works out exactly (LensWarp.coarse_shifts)
# how far (px) interpolated positions may stray from the formula's: the 1/32 px steps in which OpenCV places its
# bicubic kernel anyway, and ten times what a phone's lens needs
POSITION_TOLERANCE = 1 / 32


def _interpolated(coarse: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Values at every :data:`POSITION_STEP`-th row and column (from 0) linearly interpolated at ``rows`` x
    ``cols`` (ascending pixel indices): float32 (len(rows), len(cols))."""
    step = POSITION_STEP
    first, last = int(rows[0]) // step, int(rows[-1]) // step + 1  # the coarse rows these rows lie between
    coarse = coarse[first : last + 1].astype(np.float32)
    along = ((cols % step) / step).astype(np.float32)
    across = coarse[:, cols // step] * (1 - along) + coarse[:, cols // step + 1] * along  # (coarse rows, cols)
    if len(rows) == rows[-1] - rows[0] + 1:  # every row of a band: whole cells at once, then the band's rows
        down = (np.arange(step, dtype=np.float32) / step)[None, :, None]
        cells = np.diff(across, axis=0)[:, None, :] * down  # (cells, step, cols); in place from here: large
        cells += across[:-1, None, :]
        return cells.reshape(-1, len(cols))[rows[0] - first * step : rows[-1] + 1 - first * step]
    index = rows // step - first
    fraction = ((rows % step) / step).astype(np.float32)[:, None]
    return across[index] + fraction * np.diff(across, axis=0)[index]


@dataclass(frozen=True)
class RectilinearWarp(LensWarp):
    """WarpRectilinear (DNG 1.3): per plane (kr0, kr1, kr2, kr3, kt0, kt1), a polynomial in ``r^2``."""

    name: ClassVar[str] = "WarpRectilinear"
    opcode: ClassVar[int] = 1
    coefficients: tuple[tuple[float, ...], ...]
    centre: tuple[float, float]

    def ratio(self, r2: np.ndarray, plane: int, outside: bool = False) -> np.ndarray:
        kr0, kr1, kr2, kr3 = self.plane(plane)[:4]
        return kr0 + r2 * (kr1 + r2 * (kr2 + r2 * kr3))

    def tangential(self, plane: int) -> tuple[float, float]:
        return self.plane(plane)[4], self.plane(plane)[5]


RADIAL_TERMS = 15  # WarpRectilinear2's radial polynomial: kr0..kr14, of r^0..r^14


@dataclass(frozen=True)
class Rectilinear2Warp(LensWarp):
    """WarpRectilinear2 (DNG 1.6): per plane ``RADIAL_TERMS`` radial terms of a polynomial in ``r``, then kt0,
    kt1 and the valid radii (min, max) within which ``r`` is held; ``reciprocal``: the ratio is 1 / polynomial."""

    name: ClassVar[str] = "WarpRectilinear2"
    opcode: ClassVar[int] = 14
    coefficients: tuple[tuple[float, ...], ...]
    centre: tuple[float, float]
    reciprocal: bool = False

    def ratio(self, r2: np.ndarray, plane: int, outside: bool = False) -> np.ndarray:
        terms = self.plane(plane)
        low, high = terms[RADIAL_TERMS + 2], terms[RADIAL_TERMS + 3]
        # the SDK pins r^2 to the valid range; past the image, a range open to 1 stays open
        r = np.sqrt(np.clip(r2, low * low, high * high if high < 1.0 or not outside else np.inf))
        radial = terms[:RADIAL_TERMS]
        degree = max((i for i, k in enumerate(radial) if k != 0.0), default=0)  # files use a few of the 15 terms
        poly = np.zeros_like(r) + radial[degree]
        for k in radial[degree - 1 :: -1] if degree else ():
            poly = poly * r + k
        return 1.0 / poly if self.reciprocal else poly

    @property
    def smooth(self) -> bool:
        """A valid range narrower than 0..1 holds the ratio constant past it: a kink in the mapping."""
        return all(terms[RADIAL_TERMS + 2] == 0.0 and terms[RADIAL_TERMS + 3] == 1.0 for terms in self.coefficients)

    def tangential(self, plane: int) -> tuple[float, float]:
        return self.plane(plane)[RADIAL_TERMS], self.plane(plane)[RADIAL_TERMS + 1]


@dataclass(frozen=True)
class FisheyeWarp(LensWarp):
    """WarpFisheye (DNG 1.3): per plane (k0, k1, k2, k3) of a polynomial in the angle ``t = atan(r)``; it maps a
    fisheye picture to a rectilinear one, and has no tangential terms."""

    name: ClassVar[str] = "WarpFisheye"
    opcode: ClassVar[int] = 2
    coefficients: tuple[tuple[float, ...], ...]
    centre: tuple[float, float]

    def ratio(self, r2: np.ndarray, plane: int, outside: bool = False) -> np.ndarray:
        k0, k1, k2, k3 = self.plane(plane)
        r = np.sqrt(np.maximum(r2, 1e-12))
        t = np.arctan(r)
        t2 = t * t
        # as the SDK: exactly 1 at the centre
        return np.where(r2 < 1e-12, 1.0, t * (k0 + t2 * (k1 + t2 * (k2 + t2 * k3))) / r)


_LAYOUTS: dict[type[LensWarp], tuple[int, bool]] = {  # values per plane, and whether a reciprocal flag ends it
    RectilinearWarp: (6, False), Rectilinear2Warp: (RADIAL_TERMS + 4, True), FisheyeWarp: (4, False)}


def _parse(kind: type[LensWarp], params: bytes) -> LensWarp:
    """A warp opcode's parameters (big-endian), checked; ValueError says what is wrong with them."""
    per_plane, flagged = _LAYOUTS[kind]
    if len(params) < 4:
        raise ValueError(f"a {kind.name} opcode of {len(params)} bytes")
    (planes,) = struct.unpack_from(">I", params)
    more = 20 + 4 * flagged  # the plane count and the centre, and the reciprocal flag
    if not 1 <= planes <= 4 or len(params) != 8 * per_plane * planes + more:
        raise ValueError(f"a {kind.name} of {planes} planes in {len(params)} bytes (1 to 4 planes, "
                         f"{8 * per_plane} bytes each and {more} more)")
    values = struct.unpack_from(f">{per_plane * planes + 2}d", params, 4)
    coefficients = tuple(tuple(values[per_plane * p : per_plane * (p + 1)]) for p in range(planes))
    centre = (values[-2], values[-1])
    if not all(math.isfinite(v) and abs(v) <= 1e3 for v in values) or not all(0 <= c <= 1 for c in centre):
        raise ValueError(f"{kind.name} coefficients {_show(values)} (finite; the centre within the image)")
    reciprocal = (bool(struct.unpack_from(">I", params, len(params) - 4)[0]),) if flagged else ()
    warp = kind(coefficients, centre, *reciprocal)  # type: ignore[call-arg]  # each subclass's dataclass fields
    if flagged and not all(0.0 <= terms[-2] < terms[-1] <= 1.0 for terms in coefficients):
        raise ValueError(f"a {kind.name} whose valid radii are {_show(tuple(t[-2] for t in coefficients))} to "
                         f"{_show(tuple(t[-1] for t in coefficients))} (within 0..1, the first below the second)")
    r2 = np.linspace(0.0, 1.0, 1001)
    for plane in range(planes):
        shift = _tangential_shift(*warp.tangential(plane))
        if shift > TANGENTIAL_MAX:
            raise ValueError(f"a {kind.name} whose tangential terms {_show(warp.tangential(plane))} shift the "
                             f"corners by {shift:.3g} of the radius (a lens's by at most {TANGENTIAL_MAX:g})")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = warp.ratio(r2, plane)
        if not (np.all(np.isfinite(ratio)) and RATIO_RANGE[0] <= ratio.min() and ratio.max() <= RATIO_RANGE[1]):
            raise ValueError(f"a {kind.name} whose radial ratio reaches {np.nanmin(ratio):.3g}.."
                             f"{np.nanmax(ratio):.3g} (a lens stays within {RATIO_RANGE[0]:g}..{RATIO_RANGE[1]:g})")
    return warp


def _tangential_shift(kt0: float, kt1: float) -> float:
    """The largest shift tangential terms make within the image, as a fraction of the radius: at ``r = 1``, as the
    shift grows with ``r^2`` (the module docstring's formula, around the circle)."""
    angle = np.linspace(0.0, 2 * np.pi, 721)
    dh, dv = np.cos(angle), np.sin(angle)
    shift_v = kt0 * (1 + 2 * dv * dv) + 2 * kt1 * dh * dv
    shift_h = kt1 * (1 + 2 * dh * dh) + 2 * kt0 * dh * dv
    return float(np.hypot(shift_h, shift_v).max())


def parse(params: bytes) -> LensWarp:
    """A WarpRectilinear opcode's parameters (DNG 1.3, opcode 1); ValueError says what is wrong with them."""
    return _parse(RectilinearWarp, params)


def parse_rectilinear2(params: bytes) -> LensWarp:
    """A WarpRectilinear2 opcode's parameters (DNG 1.6, opcode 14)."""
    return _parse(Rectilinear2Warp, params)


def parse_fisheye(params: bytes) -> LensWarp:
    """A WarpFisheye opcode's parameters (DNG 1.3, opcode 2)."""
    return _parse(FisheyeWarp, params)


PARSERS = {RectilinearWarp.opcode: parse, Rectilinear2Warp.opcode: parse_rectilinear2,
           FisheyeWarp.opcode: parse_fisheye}  # opcode id -> parser, for engine.io.dng


def encode(warp: LensWarp) -> bytes:
    """The opcode parameters of ``warp`` (the inverse of its parser; tests and the synthetic DNG writer)."""
    values = [v for plane in warp.coefficients for v in plane] + list(warp.centre)
    flag = struct.pack(">I", warp.reciprocal) if isinstance(warp, Rectilinear2Warp) else b""
    return struct.pack(f">I{len(values)}d", len(warp.coefficients), *values) + flag


def _show(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values[:8]) + (", ...)" if len(values) > 8 else ")")
