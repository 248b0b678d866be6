"""A plain description of what the engine read from a file (for ``hostplug info`` and scripts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.calibration import neutral_to_xy, srgb_calibration
from engine.colour import xy_to_temperature_tint
from engine.io.bad_pixels import BadPixelsList
from engine.io.dng import ILLUMINANT_TEMPERATURE
from engine.io.gain_map import GainMap, ShadingMap
from engine.io.source import Source
from engine.orientation import ORIENTATION_NAMES, Orientation, applied


def _rounded(values: np.ndarray, digits: int = 4) -> list:
    return np.round(np.asarray(values, dtype=float), digits).tolist()


def camera_name(make: str, model: str) -> str:
    """Make and model as one name, the maker once: "NIKON CORPORATION" + "NIKON D800" is "NIKON D800" (a model
    that repeats the whole make as a word, "Canon" + "Canon EOS 550D", lost it when the file was read)."""
    first = model.split()[0].lower() if model.split() else ""
    if first and any(first.startswith(word) for word in make.lower().split()):
        return model  # "EASTMAN KODAK COMPANY" + "KODAK DX4330", "HTC" + "HTC_TyTN_II"
    return " ".join(p for p in (make, model) if p) or "unknown"


def _significant(value: float) -> float | None:
    """A shooting value to the 6 significant digits it has (LibRaw's are single precision: 1/125 s read as
    0.00800000037997961); None for 0, which means unknown."""
    return float(f"{value:.6g}") if value else None


def describe(source: Source, sidecar_orientation: Orientation | None = None) -> dict[str, Any]:
    """Camera, exposure, sensor layout, levels, white balance and colour calibration, with their origins; and the
    orientation a render applies: ``sidecar_orientation`` (what the file's sidecar sets,
    :func:`engine.xmp.sidecar.sidecar_orientation`) when given, else the file's EXIF one."""
    cam = source.camera
    height, width = source.size
    info: dict[str, Any] = {
        "file": str(source.path),
        "format": source.format,
        "kind": source.kind,
        "camera": camera_name(cam.make, cam.model),
        "lens": cam.lens or "unknown",
        "exposure": {
            "iso": _significant(cam.iso),
            "exposure_time": _significant(cam.exposure_time),
            "f_number": _significant(cam.f_number),
            "focal_length": _significant(cam.focal_length),
            "taken": cam.timestamp.isoformat() if cam.timestamp else None,
        },
        "size": {"width": width, "height": height},
        "orientation": {"exif": source.orientation, "meaning": ORIENTATION_NAMES.get(source.orientation, "?"),
                        "applied": applied(source.orientation, sidecar_orientation).note()},
    }
    if source.kind != "raw":
        return info
    info["sensor"] = {
        "layout": _layout(source),
        "black_level": _rounded(source.black, 2),
        "white_level": _rounded(source.white, 2),
        "baseline_exposure": source.baseline_exposure,
        "noise_profile": [float(f"{v:.6g}") for v in np.ravel(source.noise_profile)]
        if source.noise_profile is not None else None,  # 6 significant digits: a scale can be 1.7e-08
        "bad_pixels": _bad_pixels(source),
        "lens_shading": _lens_shading(source),
        "lens_warp": (", ".join(f"{w.name} ({len(w.coefficients)} plane(s))" for w in source.lens_warps)
                      + " in OpcodeList3, applied at render" if source.lens_warps else "none in the file"),
        "skipped_opcodes": source.skipped_opcodes,
        "default_crop": dict(zip(("top", "left", "height", "width"), source.crop, strict=True))
        if source.crop else None,
        "camera_crop": dict(zip(("top", "left", "height", "width"), source.camera_crop, strict=True))
        if source.camera_crop else None,
    }
    cal = source.calibration
    neutral = _as_shot_or_estimate(source)
    xy = neutral_to_xy(cal or srgb_calibration(), neutral)
    temperature, tint = xy_to_temperature_tint(xy)
    info["white_balance"] = {
        "as_shot_neutral": _rounded(neutral),
        "multipliers": _rounded(1.0 / neutral),
        "temperature": round(temperature),
        "tint": round(tint, 1),
        "origin": source.neutral_origin,
        "in_file": not source.as_shot_missing,
    }
    info["colour"] = {
        "origin": cal.origin if cal else "none: camera RGB is used as it is",
        "matrices": [
            {"illuminant": code, "temperature": ILLUMINANT_TEMPERATURE.get(code),
             "color_matrix": _rounded(cm),
             "forward_matrix": _rounded(cal.forward_matrices[i]) if cal.forward_matrices else None}
            for i, (code, cm) in enumerate(zip(cal.illuminants, cal.color_matrices, strict=False))
        ] if cal else [],
    }
    return info


def _as_shot_or_estimate(source: Source) -> np.ndarray:
    """The neutral a default (as-shot) render balances to: the file's own, or, when the file holds none, the
    learned estimate (the same one the white balance stage uses)."""
    if not source.as_shot_missing:
        return source.as_shot_neutral
    from engine.models.illuminant import source_camera_rgb, source_neutral

    if source_camera_rgb(source) is None:  # X-Trans / 4-colour: estimated from the demosaiced image at render
        return source.as_shot_neutral
    return source_neutral(source)


def _bad_pixels(source: Source) -> str:
    """What OpcodeList1 marks bad, for ``info``."""
    if not source.bad_pixels:
        left = any("OpcodeList1" in entry for entry in source.skipped_opcodes)
        return "marked, but left as they are (see opcodes skipped)" if left else "none marked in the file"
    fixes = [fix.name + (f" ({len(fix.points)} point(s), {len(fix.rects)} rectangle(s))"
                         if isinstance(fix, BadPixelsList) else f" (value {fix.constant})")
             for fix in source.bad_pixels]
    return ", ".join(fixes) + " in OpcodeList1, repaired at render"


def _lens_shading(source: Source) -> str:
    """The file's lens-shading maps (DNG GainMap and FixVignetteRadial opcodes), which the demosaic stage applies."""
    lists = [f"{_maps(maps)} in OpcodeList{n}" for n, maps in ((2, source.gain_maps), (3, source.rgb_gain_maps))
             if maps]
    return "; ".join(lists) + ", applied at render" if lists else "none in the file"


def _maps(maps: list[ShadingMap]) -> str:
    grids = [m for m in maps if isinstance(m, GainMap)]
    parts = [f"{len(grids)} GainMap(s) of {' / '.join(sorted({_points(m) for m in grids}))} points"] if grids else []
    if len(grids) < len(maps):
        parts.append(f"{len(maps) - len(grids)} FixVignetteRadial")
    return " and ".join(parts)


def _points(gain_map: GainMap) -> str:
    return " x ".join(str(n) for n in gain_map.gains.shape[:2])


def _layout(source: Source) -> str:
    if source.sensor.ndim == 3:
        return "LinearRaw (already demosaiced, 3 channels)"
    if source.cfa is None:
        return "non-Bayer mosaic (X-Trans or 4-colour; LibRaw demosaics it)"
    names = "".join("RGB"[c] for c in source.cfa.ravel())
    return f"Bayer {names}"
