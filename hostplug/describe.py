"""Text form of :func:`engine.source_info.describe` for ``hostplug info``."""

from __future__ import annotations

from typing import Any

from engine.io.source_info import describe

__all__ = ["describe", "format_description"]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_description(info: dict[str, Any]) -> str:
    """Readable, aligned lines; nested sections are indented."""
    lines = [info["file"]]
    exposure = info["exposure"]
    shutter = exposure["exposure_time"]
    shutter_text = f"1/{round(1 / shutter)} s" if shutter and shutter < 1 else _fmt(shutter) + " s"
    rows = [
        ("format", f"{info['format']} ({info['kind']})"),
        ("camera", info["camera"]),
        ("lens", info["lens"]),
        ("exposure", f"ISO {_fmt(exposure['iso'])}, {shutter_text}, f/{_fmt(exposure['f_number'])}, "
                     f"{_fmt(exposure['focal_length'])} mm"),
        ("taken", _fmt(exposure["taken"])),
        ("size", f"{info['size']['width']} x {info['size']['height']}"),
        ("orientation", f"{info['orientation']['exif']} ({info['orientation']['meaning']})"),
    ]
    if "sensor" in info:
        sensor, wb, colour = info["sensor"], info["white_balance"], info["colour"]
        rows += [
            ("layout", sensor["layout"]),
            ("black level", " ".join(_fmt(v) for v in sensor["black_level"])),
            ("white level", " ".join(_fmt(v) for v in sensor["white_level"])),
            ("baseline exp.", f"{sensor['baseline_exposure']:+g} EV"),
            ("noise profile", " ".join(f"{v:.3g}" for v in sensor["noise_profile"])
             if sensor["noise_profile"] else "-"),
            ("as-shot WB", f"{wb['temperature']} K, tint {wb['tint']:+g}; multipliers "
                           + " ".join(f"{v:.4f}" for v in wb["multipliers"]) + f" (from {wb['origin']})"),
            ("colour", colour["origin"]),
        ]
        for m in colour["matrices"]:
            rows.append((f"  matrix @{_fmt(m['temperature'])} K",
                         "  ".join(" ".join(f"{v:+.4f}" for v in row) for row in m["color_matrix"])))
            if m["forward_matrix"]:
                rows.append(("  forward",
                             "  ".join(" ".join(f"{v:+.4f}" for v in row) for row in m["forward_matrix"])))
    width = max(len(name) for name, _ in rows)
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)
