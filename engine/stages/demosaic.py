"""Stage 1: sensor data to linear camera RGB.

Bayer mosaics are black-subtracted, normalised by (white - black) and demosaiced with Malvar-He-Cutler's
gradient-corrected interpolation, pre-scaled by the as-shot white balance so the colour planes line up (the
scaling is taken out again afterwards: white balance is the next stage's decision). X-Trans and 4-colour
sensors use LibRaw's own demosaic; LinearRaw DNGs need none; sRGB images are linearised. Median passes over the
colour differences then take out the demosaic's false colour (:mod:`engine.false_colour`). A DNG's lens-shading
maps (GainMap opcodes, :mod:`engine.io.gain_map`) are applied where the specification puts them: OpcodeList2's
on the normalised raw data, OpcodeList3's on the demosaiced image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
import rawpy

from engine import false_colour, kernels, tiling
from engine.camera_look import unprocess_image
from engine.colour import srgb_decode
from engine.errors import CorruptInputError
from engine.io import gain_map
from engine.io.bad_pixels import repaired
from engine.io.bounded import pinned
from engine.io.gain_map import Shading, ShadingMap
from engine.stages.base import Context, Pixels, Stage

FALSE_COLOUR_PASSES = 2  # docs/rendering.md, "False colour"


@dataclass(frozen=True)
class DemosaicParams:
    """Which algorithm interpolates the mosaic: "mhc" (ours, Bayer only) or LibRaw's "ahd", "dcb", "aahd"; how
    many median passes then take out its false colour (:mod:`engine.false_colour`; 0: none); and whether the
    corrections a DNG carries and LibRaw leaves out are made: its bad pixels (FixBadPixelsConstant and
    FixBadPixelsList), its lens shading (GainMap and FixVignetteRadial), its lens distortion (the warp opcodes)
    and its DefaultCrop, as Adobe's converters and the camera make them; and whether a raw that is no DNG is cropped
    to the picture area LibRaw names (``camera_crop``: the Sony a7R III's 8-pixel border, which its camera's JPEG
    leaves out and whose outer columns carry a green fringe); and how an image that is already a rendering (JPEG,
    PNG, TIFF) becomes linear: ``image_input`` "unprocessed" undoes a typical camera's rendering of it
    (:mod:`engine.camera_look`: its contrast, highlight roll-off, saturation and rendering gain), so that the
    styles, which learned from camera JPEGs made raws that way, give it back at its own exposure; "decoded" only
    decodes sRGB (versions 1 to 5: a style then lifted it as it lifts a raw, about 1.5 EV too bright)."""

    VERSION: ClassVar[int] = 6
    algorithm: Literal["mhc", "ahd", "dcb", "aahd", "vng"] = "mhc"
    false_colour_passes: int = field(default=FALSE_COLOUR_PASSES, metadata={"range": (0, 5)})
    bad_pixels: bool = True
    gain_map: bool = True
    lens_warp: bool = True
    default_crop: bool = True
    camera_crop: bool = True
    image_input: Literal["unprocessed", "decoded"] = "unprocessed"


UNPROCESSED = "unprocess sRGB (a typical camera's rendering undone)"  # its note, for the stages after it


def unprocessed_image(ctx: Context | None) -> bool:
    """Whether this render's first stage unprocessed an image input (demosaic params 6): its camera exposed it
    and clipped its white already. An image of an older recipe was only decoded, and renders as it did."""
    return ctx is not None and ctx.notes.get("demosaic") == UNPROCESSED


LIBRAW_TILE = 512  # the smallest side LibRaw's own X-Trans demosaic takes (measured: 510 px fails, 516 works)
_LIBRAW_ALGORITHMS = {
    "ahd": rawpy.DemosaicAlgorithm.AHD,
    "dcb": rawpy.DemosaicAlgorithm.DCB,
    "aahd": rawpy.DemosaicAlgorithm.AAHD,
    "vng": rawpy.DemosaicAlgorithm.VNG,
}


class Demosaic(Stage):
    """Decode and demosaic into linear camera RGB, 1.0 = sensor white, not yet white balanced."""

    name = "demosaic"
    implementation = "mhc"
    Params = DemosaicParams
    can_disable = False

    @classmethod
    def migrate(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 left a DNG's GainMaps, lens warps and DefaultCrop unapplied, versions 1 and 2 its bad pixels,
        versions 1 to 3 the demosaic's false colour, versions 1 to 4 the border of a raw that is no DNG, versions 1
        to 5 decoded an image input without unprocessing it: so old recipes render the same."""
        if version < 2:
            params = {"gain_map": False, "lens_warp": False, "default_crop": False, **params}
        if version < 3:
            params = {"bad_pixels": False, **params}
        if version < 4:
            params = {"false_colour_passes": 0, **params}
        if version < 5:
            params = {"camera_crop": False, **params}
        return {"image_input": "decoded", **params} if version < 6 else params

    def prepare(self, params: DemosaicParams, ctx: Context) -> dict[str, Any]:
        source = ctx.source
        method = ctx.notes["demosaic"] = _method(params, source)
        if method == "linearise sRGB" and params.image_input == "unprocessed":
            method = ctx.notes["demosaic"] = UNPROCESSED
        if source.gain_maps or source.rgb_gain_maps:  # only a DNG has them
            ctx.notes["gain_maps"] = _gain_map_note(source, applied=params.gain_map)
        if source.lens_warps:
            ctx.notes["lens_warp"] = (", ".join(w.name for w in source.lens_warps) + " in OpcodeList3: "
                                      + ("applied" if params.lens_warp else "not applied (lens_warp off)"))
        if source.bad_pixels:
            ctx.notes["bad_pixels"] = (f"{len(source.bad_pixels)} in OpcodeList1: "
                                       + ("repaired" if params.bad_pixels else "left (bad_pixels off)"))
        if source.skipped_opcodes:
            ctx.notes["skipped_opcodes"] = source.skipped_opcodes
        crop = (source.crop if params.default_crop else None) or (source.camera_crop if params.camera_crop else None)
        if crop:
            ctx.notes["default_crop"] = dict(zip(("top", "left", "height", "width"), crop, strict=True))
        rgb_opcodes = [op for op in source.rgb_opcodes
                       if (params.gain_map if isinstance(op, ShadingMap) else params.lens_warp)]
        demosaiced = method == "mhc" or method.startswith("libraw-")
        return {"method": method, "bad_pixels": source.bad_pixels if params.bad_pixels else [],
                "false_colour_passes": params.false_colour_passes if demosaiced else 0,
                "gain_maps": source.gain_maps if params.gain_map else [],
                "rgb_opcodes": rgb_opcodes, "crop": crop}

    def process(self, image: Pixels, data: dict[str, Any], ctx: Context) -> Pixels:
        source = ctx.source
        method, maps = data["method"], data["gain_maps"]
        if method == "linearise sRGB":
            return srgb_decode(source.sensor)
        if method == UNPROCESSED:
            return tiling.per_pixel(source.sensor.copy(), unprocess_image)  # a copy: the source stays as read
        if data["bad_pixels"]:  # on the data as stored, before anything else (a copy: the source stays as read)
            source = replace(source, sensor=repaired(source.sensor, data["bad_pixels"]))
        if method == "none (LinearRaw)":
            rgb = linear_raw_to_rgb(source, maps)
        elif method == "mhc":
            rgb = bayer_to_rgb(source, ctx.device, maps)
        else:
            rgb = libraw_demosaic(source, method.removeprefix("libraw-"), maps, from_sensor=bool(data["bad_pixels"]))
        if data["false_colour_passes"]:  # before the lens corrections resample the fringes
            rgb = _without_false_colour(rgb, _prescale(source), data["false_colour_passes"])
        rgb_maps = [op for op in data["rgb_opcodes"] if isinstance(op, ShadingMap)]
        for opcode in data["rgb_opcodes"]:  # in the file's order
            if isinstance(opcode, ShadingMap):
                rgb = _shade_planes(rgb, [opcode], source.size)
            else:  # a lens warp resamples on the host; the pipeline takes the result back to the device
                try:
                    rgb = opcode.apply(kernels.to_host(rgb))
                except CorruptInputError as e:  # a warp whose positions are not numbers: name the file
                    raise CorruptInputError(f"{source.path}: {e}") from e
        crop = data["crop"]
        if maps or rgb_maps:
            ctx.shading = Shading(tuple(maps), tuple(rgb_maps), source.cfa, source.size, crop,
                                  planes=method == "none (LinearRaw)")
        return _cropped(rgb, crop) if crop else rgb


def _method(params: DemosaicParams, source) -> str:
    """How the source becomes linear camera RGB: ``mhc`` (ours), ``libraw-ALGORITHM``, or no demosaic at all."""
    if source.kind == "rgb":
        return "linearise sRGB"
    if source.sensor.ndim == 3:
        return "none (LinearRaw)"
    if source.needs_libraw_demosaic or params.algorithm != "mhc" or source.cfa is None:
        # "mhc" is ours and Bayer-only: other sensors asked for it get LibRaw's AHD. Unknown algorithms never get
        # here (the params' Literal refuses them).
        algorithm = params.algorithm if params.algorithm in _LIBRAW_ALGORITHMS else "ahd"
        if source.cfa is None and min(source.size) < LIBRAW_TILE:
            algorithm = "vng"  # LibRaw's X-Trans demosaic works in 512 px tiles: a smaller picture fails
        return f"libraw-{algorithm}"
    return "mhc"


def _without_false_colour(rgb: Pixels, balance: np.ndarray, passes: int) -> Pixels:
    if isinstance(rgb, np.ndarray):
        return false_colour.suppress(rgb, balance, passes)
    return false_colour.suppress_torch(rgb, balance, passes)


def _cropped(rgb: Pixels, crop: tuple[int, int, int, int]) -> Pixels:
    """The picture's area (DNG DefaultCrop), as an image of its own (later stages work in place)."""
    top, left, height, width = crop
    window = rgb[top : top + height, left : left + width]
    return np.ascontiguousarray(window) if isinstance(window, np.ndarray) else window.contiguous()


def _gain_map_note(source, applied: bool) -> str:
    """What ``--stages`` and the output's notes say of the file's lens-shading maps."""
    lists = [f"{len(maps)} in OpcodeList{n}" for n, maps in ((2, source.gain_maps), (3, source.rgb_gain_maps))
             if maps]
    return f"{', '.join(lists)}: {'applied' if applied else 'not applied (gain_map off)'}"


def _shade_planes(rgb: Pixels, maps: list[ShadingMap], size: tuple[int, int]) -> Pixels:
    """Lens-shading maps on the planes of an RGB image (OpcodeList3's after demosaicing, a LinearRaw DNG's), band
    by band (on the torch path, on the host's copy of the gain and then on the device)."""
    if not isinstance(rgb, np.ndarray):
        import torch

        rows, cols = range(size[0]), range(size[1])
        gain = np.stack([gain_map.combined_gain(maps, rows, cols, size, plane) for plane in range(3)], axis=-1)
        return torch.minimum(rgb * torch.from_numpy(gain).to(rgb.device), torch.tensor(1.0, device=rgb.device))
    for start, end in tiling.bands(size[0]):
        gain_map.apply_to_planes(maps, rgb[start:end], start, size)
    return rgb


def _prescale(source) -> np.ndarray:
    """As-shot white-balance multipliers (green = 1): they make the colour planes comparable for demosaicing."""
    return (1.0 / source.as_shot_neutral).astype(np.float32)


def bayer_to_rgb(source, device: str = "cpu", maps: list[ShadingMap] | None = None) -> Pixels:
    """Malvar-He-Cutler demosaic of a Bayer source into normalised, un-white-balanced camera RGB, after the
    GainMaps ``maps`` (OpcodeList2's) on the normalised mosaic.

    On the CPU the mosaic is normalised a band of rows at a time (:func:`engine.tiling.bands`, with the 2 rows
    each side the 5 x 5 filters read), so only the RGB result is full-sized; on the torch path it is one pass on
    the device, whose result stays there (a tensor).
    """
    h, w = source.sensor.shape
    wb = _prescale(source)
    scale = (wb / (source.white - source.black)).astype(np.float32)
    cfa = source.cfa.astype(np.int64)
    black, gains = source.black.astype(np.float32), (1.0 / wb).astype(np.float32)
    if kernels.on_torch(device):
        shading = gain_map.combined_gain(maps, range(h), range(w), (h, w)) if maps else None
        return kernels.demosaic_mhc_torch(source.sensor, cfa, black, scale, gains, device, shading)
    rgb = np.empty((h, w, 3), dtype=np.float32)
    for start, end in tiling.bands(h):
        padded = np.empty((end - start + 4, w + 4), dtype=np.float32)
        kernels.normalize_mosaic(source.sensor, cfa, black, scale, padded, top=start)
        if maps:
            _shade_band(padded, maps, start, end, (h, w), wb[cfa])
        kernels.demosaic_mhc(padded, cfa, gains, rgb[start:end])
    return rgb


def _shade_band(padded: np.ndarray, maps: list[ShadingMap], start: int, end: int, size: tuple[int, int],
                white: np.ndarray) -> None:
    """Multiply a band of the normalised, white-balance-scaled mosaic (rows ``start..end`` and the 2-pixel border
    :func:`engine.kernels.normalize_mosaic` gives it, mirrored at the image's edges) by the GainMaps in place,
    clipping each pixel at its channel's white (``white``: the 2 x 2 CFA's, in the mosaic's scaling)."""
    h, w = size
    top, bottom = max(start - 2, 0), min(end + 2, h)
    gain = gain_map.combined_gain(maps, range(top, bottom), range(w), size)
    # the border mirrors the image without repeating its edge (numpy's "reflect"), as the mosaic's does
    padded *= np.pad(gain, ((top - (start - 2), end + 2 - bottom), (2, 2)), mode="reflect")
    rows, cols = padded.shape
    np.minimum(padded, np.tile(white, (-(-rows // 2), -(-cols // 2)))[:rows, :cols], out=padded)


def linear_raw_to_rgb(source, maps: list[ShadingMap] | None = None) -> np.ndarray:
    """Normalise LinearRaw data and apply its DNG MapPolynomial opcodes (lossy DNGs store a curve there), then
    its GainMaps ``maps``."""
    rgb = source.sensor.astype(np.float32)
    rgb -= source.black.astype(np.float32)  # in place: one full-size image, not three
    rgb /= (source.white - source.black).astype(np.float32)
    for pmap in source.polynomial_maps:
        for plane in range(pmap.plane, min(pmap.plane + pmap.planes, 3)):
            x = rgb[..., plane]
            rgb[..., plane] = sum(c * x**k for k, c in enumerate(pmap.coefficients))
    return _shade_planes(rgb, maps, source.size) if maps else rgb


def libraw_demosaic(source, algorithm: str, maps: list[ShadingMap] | None = None,
                    from_sensor: bool = False) -> np.ndarray:
    """LibRaw's demosaic (X-Trans, 4-colour or on request), with our levels, the GainMaps ``maps`` on the raw
    data, and no colour conversion; ``from_sensor``: LibRaw demosaics ``source.sensor`` (its bad pixels
    repaired) instead of the data it reads from the file."""
    wb = _prescale(source)
    # Multipliers of at most 1, and highlights left alone: with LibRaw's usual (the smallest multiplier 1, the
    # others above, clipped), a channel with a multiplier of 2.5 lost everything above 40 % of its range (the red
    # of the Sony a7R III sample), where our own demosaic keeps each channel up to the sensor's white.
    user_wb = (wb / wb.max()).tolist()
    try:
        rgb16 = _libraw_postprocess(source, algorithm, user_wb, maps or [], from_sensor)
    except rawpy.LibRawError as e:
        text = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise CorruptInputError(f"{source.path}: LibRaw cannot demosaic the raw data ({text}); the file is "
                                "probably damaged") from e
    if rgb16.ndim != 3 or rgb16.shape[2] < 3:  # a damaged header can make LibRaw see a one-colour sensor
        raise CorruptInputError(f"{source.path}: LibRaw's demosaic gave an image of shape {rgb16.shape}, not RGB; "
                                "the file is probably damaged")
    rgb = rgb16[..., :3].astype(np.float32) / 65535.0
    rgb /= (np.array(user_wb, dtype=np.float32))
    return rgb


def _libraw_postprocess(source, algorithm: str, user_wb: list[float], maps: list[ShadingMap],
                        from_sensor: bool) -> np.ndarray:
    black = int(round(float(source.black.mean())))
    # LibRaw reads user_sat as the saturation *after* black subtraction: passing the sensor's white itself
    # rendered 3 % (black 512 of 16383) to 16 % (the Canon 550D's 2056 of 15000) too dark.
    white = int(round(float(source.white.max()))) - black
    with pinned(source.path, "input") as file, rawpy.imread(str(file)) as raw:  # any bytes in the name
        if from_sensor:  # the array is a view of LibRaw's buffer, of the same visible area
            raw.raw_image_visible[...] = source.sensor
        if maps:  # LibRaw demosaics the data it holds: shade it there (the array is a view of LibRaw's buffer)
            _shade_raw_data(raw.raw_image_visible, maps, black, white)
        return raw.postprocess(
            demosaic_algorithm=_LIBRAW_ALGORITHMS[algorithm],
            use_camera_wb=False,
            use_auto_wb=False,
            user_wb=[user_wb[0], user_wb[1], user_wb[2], user_wb[1]],
            output_color=rawpy.ColorSpace.raw,
            gamma=(1, 1),
            no_auto_bright=True,
            no_auto_scale=False,
            output_bps=16,
            user_flip=0,
            user_black=black,
            user_sat=white,
            highlight_mode=rawpy.HighlightMode.Ignore,
        )


def _shade_raw_data(data: np.ndarray, maps: list[ShadingMap], black: int, white: int) -> None:
    """The GainMaps on raw integer data in place, band by band: black + (value - black) x gain, at most white."""
    size = data.shape
    for start, end in tiling.bands(size[0]):
        band = data[start:end].astype(np.float32) - black
        band *= gain_map.combined_gain(maps, range(start, end), range(size[1]), size)
        np.clip(band, None, white, out=band)
        data[start:end] = np.clip(np.rint(band + black), 0, 65535).astype(data.dtype)
