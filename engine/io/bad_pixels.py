"""DNG bad-pixel opcodes (OpcodeList1): the dead and hot pixels a DNG marks, which LibRaw leaves in.

Android's camera writes the sensor's hot-pixel map into its DNGs as a FixBadPixelsList opcode (DNG 1.3, opcode 5:
points and rectangles, such as a dead column); some converters mark bad pixels with a value no good pixel takes
(FixBadPixelsConstant, opcode 4, usually 0). LibRaw ignores both, and every bad pixel renders as a bright or dark
coloured dot (a column as a coloured line).

Both apply to the raw data as stored, before anything else (OpcodeList1). Their coordinates refer to the whole
stored image, of which the visible sensor is the active area, so :meth:`BadPixelsList.shifted` moves them there.
The repair (:func:`repaired`) follows the DNG SDK's for FixBadPixelsConstant's red and blue pixels: the mean of
the same-colour neighbours two pixels up, down, left and right that are not bad themselves, and it uses the same
for green pixels (the SDK's reads their four diagonal neighbours) and for the list (the SDK's estimates along the
smoother direction): it needs no Bayer phase and holds for every 2 x 2 pattern. A pixel with no good neighbour
waits for the next round, so runs and rectangles fill in from their edges.

A map of bad pixels marks a tiny share of a sensor. Fixes that mark more (:data:`MAX_SHARE`: a constant that a dark
frame's black reads as, a damaged list) are left out (:func:`repairable`): their pixels are the picture, and
repairing them would cost many rounds over most of the image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

POINTS_MAX = 1 << 20  # a sensor's map holds hundreds to thousands; a million is damage, and costly to repair
REPAIR_ROUNDS = 64  # a rectangle up to 256 px across fills in; what is left of a bigger one stays as it was
# The share of a sensor's pixels the fixes may mark, together. A sensor's map marks a few thousand of millions
# (well under 0.1 %, a dead column 0.03 %); more than 1 % is not a map of bad pixels. It also bounds the repair:
# at most 64 rounds over 1 % of the pixels.
MAX_SHARE = 0.01


@dataclass(frozen=True)
class BadPixelsConstant:
    """FixBadPixelsConstant: every pixel whose stored value is ``constant`` is bad."""

    name: ClassVar[str] = "FixBadPixelsConstant"  # the opcode's name in the DNG specification
    constant: int

    def mask(self, data: np.ndarray) -> np.ndarray:
        """The bad pixels of ``data`` (the visible sensor, as stored): bool, its shape."""
        return data == self.constant


@dataclass(frozen=True)
class BadPixelsList:
    """FixBadPixelsList: bad points (row, col) and rectangles (top, left, bottom, right; bottom and right
    exclusive), in the coordinates of the stored image (or of the visible sensor, once :meth:`shifted`)."""

    name: ClassVar[str] = "FixBadPixelsList"
    points: tuple[tuple[int, int], ...]
    rects: tuple[tuple[int, int, int, int], ...] = ()

    def shifted(self, top: int, left: int) -> BadPixelsList:
        """The same pixels in an image whose origin lies at (``top``, ``left``) of this one."""
        return BadPixelsList(tuple((r - top, c - left) for r, c in self.points),
                             tuple((t - top, lf - left, b - top, rt - left) for t, lf, b, rt in self.rects))

    def mask(self, data: np.ndarray) -> np.ndarray:
        """The bad pixels within ``data``'s bounds (those outside are no pixel of it): bool, its shape. Work in
        proportion to the points and the image, whatever the number and size of the rectangles."""
        height, width = data.shape
        mask = np.zeros((height, width), dtype=bool)
        if self.points:
            points = np.array(self.points, dtype=np.int64)
            inside = (points[:, 0] >= 0) & (points[:, 0] < height) & (points[:, 1] >= 0) & (points[:, 1] < width)
            mask[points[inside, 0], points[inside, 1]] = True
        if self.rects:
            rects = np.clip(np.array(self.rects, dtype=np.int64), 0, [height, width, height, width])
            rects = rects[(rects[:, 0] < rects[:, 2]) & (rects[:, 1] < rects[:, 3])]  # those with a pixel inside
            area = int(((rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])).sum())
            if len(rects) <= FEW_RECTS and area <= mask.size:  # what real lists hold: a slice each is quickest
                for top, left, bottom, right in rects.tolist():
                    mask[top:bottom, left:right] = True
            else:
                mask |= _rectangles(rects, height, width)
        return mask


# Rectangles masked a slice each while there are this few and they cover no more than the image (a whole-image
# slice takes 1 ms on 12 MP); more go in one pass, about 0.1 s on 12 MP whatever their number
FEW_RECTS = 256


def _rectangles(rects: np.ndarray, height: int, width: int) -> np.ndarray:
    """The pixels of any of ``rects`` (N x 4: top, left, bottom, right, exclusive, within a ``height`` x ``width``
    image) in one pass: +1 at each rectangle's top left and bottom right corner and -1 at the other two, summed
    down and across, counts the rectangles over each pixel."""
    top, left, bottom, right = rects.T
    corners = np.concatenate([top * (width + 1) + left, bottom * (width + 1) + right,
                              top * (width + 1) + right, bottom * (width + 1) + left])
    signs = np.repeat(np.array([1, 1, -1, -1], dtype=np.int32), len(rects))
    flat = np.zeros((height + 1) * (width + 1), dtype=np.int32)
    np.add.at(flat, corners, signs)
    counts = flat.reshape(height + 1, width + 1)
    np.cumsum(counts, axis=0, out=counts)
    np.cumsum(counts, axis=1, out=counts)
    return counts[:height, :width] > 0


BadPixels = BadPixelsConstant | BadPixelsList


def repairable(data: np.ndarray, fixes: list[BadPixels]) -> tuple[list[BadPixels], list[tuple[BadPixels, float]]]:
    """The fixes to repair on ``data`` (the visible sensor, as stored), in order, while together they mark at most
    :data:`MAX_SHARE` of its pixels; and the others, each with the share of pixels it marks (left as they are)."""
    bad = np.zeros(data.shape, dtype=bool)
    kept: list[BadPixels] = []
    left: list[tuple[BadPixels, float]] = []
    for fix in fixes:
        marked = fix.mask(data)
        union = bad | marked
        if np.count_nonzero(union) > MAX_SHARE * data.size:
            left.append((fix, np.count_nonzero(marked) / data.size))
        else:
            bad = union
            kept.append(fix)
    return kept, left


def repaired(data: np.ndarray, fixes: list[BadPixels]) -> np.ndarray:
    """``data`` (a mosaic as stored, H x W integers) with the bad pixels of ``fixes`` replaced by the mean of their
    good same-colour neighbours (see the module docstring): a new array, or ``data`` itself when none is bad, or
    when they mark more than :data:`MAX_SHARE` of it (:func:`repairable` says which to pass)."""
    bad = np.zeros(data.shape, dtype=bool)
    for fix in fixes:
        bad |= fix.mask(data)
    rows, cols = np.nonzero(bad)
    if not rows.size or rows.size > MAX_SHARE * data.size:
        return data
    out = data.copy()
    height, width = data.shape
    for _ in range(REPAIR_ROUNDS):
        total = np.zeros(rows.size, dtype=np.float64)
        count = np.zeros(rows.size, dtype=np.int64)
        for dr, dc in ((-2, 0), (2, 0), (0, -2), (0, 2)):
            r, c = rows + dr, cols + dc
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            good = np.zeros(rows.size, dtype=bool)
            good[inside] = ~bad[r[inside], c[inside]]
            total[good] += out[r[good], c[good]]
            count[good] += 1
        done = count > 0
        if not done.any():
            break
        out[rows[done], cols[done]] = np.rint(total[done] / count[done]).astype(out.dtype)
        bad[rows[done], cols[done]] = False  # good for the next round, not for this one's neighbours
        rows, cols = rows[~done], cols[~done]
        if not rows.size:
            break
    return out


def parse_constant(params: bytes) -> BadPixelsConstant:
    """A FixBadPixelsConstant opcode's parameters (constant, Bayer phase); ValueError says what is wrong."""
    if len(params) != 8:
        raise ValueError(f"a FixBadPixelsConstant of {len(params)} bytes (8: the constant and the Bayer phase)")
    constant, phase = struct.unpack(">II", params)
    if phase > 3 or constant > 0xFFFF:
        raise ValueError(f"a FixBadPixelsConstant with constant {constant} and Bayer phase {phase} (a 16-bit "
                         "value; a phase of 0 to 3)")
    return BadPixelsConstant(constant)


def parse_list(params: bytes) -> BadPixelsList:
    """A FixBadPixelsList opcode's parameters (Bayer phase, counts, points, rectangles)."""
    if len(params) < 12:
        raise ValueError(f"a FixBadPixelsList of {len(params)} bytes")
    phase, points, rects = struct.unpack_from(">III", params)
    if phase > 3 or points + rects > POINTS_MAX or len(params) != 12 + 8 * points + 16 * rects:
        raise ValueError(f"a FixBadPixelsList of {points} points and {rects} rectangles (Bayer phase {phase}) in "
                         f"{len(params)} bytes (12 and 8 a point, 16 a rectangle; at most {POINTS_MAX} in all)")
    values = struct.unpack_from(f">{2 * points + 4 * rects}i", params, 12)
    point_list = tuple((values[2 * i], values[2 * i + 1]) for i in range(points))
    rect_list = tuple(tuple(values[2 * points + 4 * i : 2 * points + 4 * i + 4]) for i in range(rects))
    for top, left, bottom, right in rect_list:
        if not (top < bottom and left < right):
            raise ValueError(f"a FixBadPixelsList rectangle ({top}, {left}, {bottom}, {right}) that holds no pixel "
                             "(top, left, bottom, right)")
    return BadPixelsList(point_list, rect_list)


PARSERS = {4: parse_constant, 5: parse_list}  # opcode id -> parser, for engine.io.dng


def encode_constant(fix: BadPixelsConstant, phase: int = 0) -> bytes:
    """The opcode parameters of ``fix`` (tests and the synthetic DNG writer)."""
    return struct.pack(">II", fix.constant, phase)


def encode_list(fix: BadPixelsList, phase: int = 0) -> bytes:
    """The opcode parameters of ``fix`` (tests and the synthetic DNG writer)."""
    values = [v for point in fix.points for v in point] + [v for rect in fix.rects for v in rect]
    return struct.pack(f">III{len(values)}i", phase, len(fix.points), len(fix.rects), *values)
