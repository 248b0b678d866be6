"""``hostplug info``: what the engine reads from a file, as aligned text or JSON.

Its own module, apart from ``render``: it uses none of the render's options, output formats or service client,
whose imports cost ``info`` 20-30 ms of its 0.45 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from engine.orientation import FROM_FILE, Orientation
from hostplug.commands.common import batch_inputs, for_each_input, json_option, json_text, printable_data


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option("Print JSON instead of text.")
def info(inputs: tuple[Path, ...], as_json: bool) -> None:
    """Print what the engine reads from each file: camera, exposure, sensor layout, levels, colour, and the
    orientation a render applies (a sidecar's, set in Lightroom or darktable, wins over the file's EXIF)."""
    inputs = batch_inputs(inputs)

    def describe(path: Path) -> None:
        import engine
        from engine.io.source_info import describe

        description = describe(engine.open(path), _sidecar_orientation(path))
        if as_json:  # "input": the argument as given, as every command's JSON names it ("file": the path read)
            click.echo(json_text({"input": str(path), **description}))
        else:
            click.echo(format_description(printable_data(description)))

    for_each_input(inputs, describe, as_json=as_json)


# ----- the text form of engine.io.source_info.describe ---------------------------------------------------------


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
        ("orientation", _orientation_line(info["orientation"])),
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
            ("bad pixels", sensor["bad_pixels"]),
            ("lens shading", sensor["lens_shading"]),
            ("lens warp", sensor["lens_warp"]),
            ("opcodes skipped", ", ".join(sensor["skipped_opcodes"]) or "none"),
            ("camera crop", _crop_line(sensor["camera_crop"])) if sensor["camera_crop"]
            else ("default crop", _crop_line(sensor["default_crop"])),
            ("as-shot WB", _white_balance_line(wb)),
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


def _white_balance_line(wb: dict[str, Any]) -> str:
    """The file's white balance, or, when it holds none, that the learned estimate stands in (and its value)."""
    values = (f"{wb['temperature']} K, tint {wb['tint']:+g}; multipliers "
              + " ".join(f"{v:.4f}" for v in wb["multipliers"]))
    if not wb.get("in_file", True):
        return f"none in the file; learned estimate: {values}"
    return f"{values} (from {wb['origin']})"


def _sidecar_orientation(path: Path) -> Orientation | None:
    """The orientation ``path``'s sidecars or a DNG's own XMP set; the XMP reader (lxml) loads only when there is
    a sidecar or a packet in the DNG."""
    from engine.xmp.embedded import embedded_packet
    from engine.xmp.sidecar_files import find_sidecars

    if not find_sidecars(path) and embedded_packet(path) is None:
        return None
    from engine.xmp.sidecar import sidecar_orientation

    return sidecar_orientation(path)


def _orientation_line(orientation: dict[str, Any]) -> str:
    """The orientation a render applies and where it came from; the file's own too, when a sidecar overrides it."""
    turned = orientation["applied"]
    line = f"{turned['value']} ({turned['meaning']}), from {turned['from']}"
    if turned["from"] != FROM_FILE:
        line += f"; the file's EXIF says {orientation['exif']} ({orientation['meaning']})"
    return line


def _crop_line(crop: dict | None) -> str:
    if not crop:
        return "none (the whole image)"
    return "{width} x {height} from ({left}, {top}), applied at render".format(**crop)
