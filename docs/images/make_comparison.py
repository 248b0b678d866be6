"""Make docs/images/comparison.jpg: hostplug's default render next to LibRaw's, of the bundled sample raw.

    python docs/images/make_comparison.py [RAW] [-o OUTPUT.jpg]

Left: ``engine.render`` with the default recipe. Right: rawpy (LibRaw) ``postprocess(use_camera_wb=True)``.
Both are shrunk to the same width and labelled; the JPEG stays small enough for the README.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image, ImageDraw

import engine

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "engine" / "samples" / "hostplug_colorchecker.dng"
HALF_WIDTH = 600  # pixels per side
LABEL_HEIGHT = 28
GAP = 8


def hostplug_render(path: Path) -> Image.Image:
    """The default render, 8-bit sRGB."""
    rendered = engine.render(engine.open(path))
    return Image.fromarray((np.clip(rendered.pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def libraw_render(path: Path) -> Image.Image:
    """LibRaw's render with the camera's white balance, 8-bit sRGB."""
    with rawpy.imread(str(path)) as raw:
        return Image.fromarray(raw.postprocess(use_camera_wb=True))


def side_by_side(left: Image.Image, right: Image.Image, labels: tuple[str, str]) -> Image.Image:
    """Both images at HALF_WIDTH wide, a gap between them, each with its label above it."""
    sized = [im.resize((HALF_WIDTH, round(im.height * HALF_WIDTH / im.width)), Image.LANCZOS)
             for im in (left, right)]
    height = max(im.height for im in sized)
    sheet = Image.new("RGB", (2 * HALF_WIDTH + GAP, height + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (image, label) in enumerate(zip(sized, labels, strict=True)):
        x = index * (HALF_WIDTH + GAP)
        sheet.paste(image, (x, LABEL_HEIGHT))
        draw.text((x + 6, 7), label, fill="black")
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", nargs="?", type=Path, default=SAMPLE, help="raw file (default: the bundled sample)")
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("comparison.jpg"))
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    args = parser.parse_args()
    sheet = side_by_side(hostplug_render(args.raw), libraw_render(args.raw),
                         ("hostplug (default recipe)", "LibRaw / rawpy postprocess(use_camera_wb=True)"))
    sheet.save(args.output, "JPEG", quality=args.quality, optimize=True)
    print(f"{args.output} ({args.output.stat().st_size // 1024} KB, {sheet.width} x {sheet.height})")


if __name__ == "__main__":
    main()
