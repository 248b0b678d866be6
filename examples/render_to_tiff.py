"""Render a raw with the default recipe and save it as a 16-bit TIFF.

    python examples/render_to_tiff.py [RAW] [OUT_DIR]

RAW defaults to the sample raw that ships with hostplug; OUT_DIR to a new temporary folder.
"""

import sys
import tempfile
from pathlib import Path

import engine

SAMPLE = Path(engine.__file__).parent / "samples" / "hostplug_colorchecker.dng"

raw = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="hostplug-"))
out_dir.mkdir(parents=True, exist_ok=True)

source = engine.open(raw)  # a camera raw (anything LibRaw reads) or a JPEG/PNG/TIFF
rendered = engine.render(source)  # the default recipe: as-shot white balance, the "natural" style

# rendered.pixels is float32 H x W x 3, sRGB-encoded, in [0, 1], already rotated for viewing. write_image adds
# the ICC profile, the raw's EXIF and the provenance (recipe, source, its hash) that a re-render needs.
target = out_dir / (raw.stem + ".tif")
engine.write_image(rendered, target, engine.OutputOptions(bits=16, overwrite=True))

print(f"{target}: {rendered.pixels.shape[1]} x {rendered.pixels.shape[0]}")
for stage, seconds in rendered.timings.items():
    print(f"  {stage:<14} {seconds:.3f} s")
