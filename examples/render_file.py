"""Render a file to a file in one call, then re-render that output with a change, as ``hostplug rerender`` does.

    python examples/render_file.py [RAW] [OUT_DIR]

Writes OUT_DIR/NAME.jpg (the raw's sidecar recipe, if it has one, plus +0.3 EV and the "warm" preset) and
OUT_DIR/NAME_rerender.jpg (the same, found again from the JPEG's provenance, with more contrast). RAW defaults to
the bundled sample raw; OUT_DIR to a new temporary folder.
"""

import sys
import tempfile
from pathlib import Path

import engine

SAMPLE = Path(engine.__file__).parent / "samples" / "hostplug_colorchecker.dng"

raw = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="hostplug-"))
out_dir.mkdir(parents=True, exist_ok=True)

# Changes apply on top of the raw's sidecar recipe: presets first, then settings (see engine/edits.py).
first = engine.render_file(raw, out_dir / f"{raw.stem}.jpg", changes={"presets": ["warm"], "exposure": 0.3},
                           options=engine.OutputOptions(quality=90, overwrite=True))
print(f"{first.output} in {first.seconds:.1f} s")

# The JPEG records its recipe and its raw (path and SHA-256): a re-render needs nothing else.
second = engine.rerender_file(first.output, {"contrast": 20})
print(f"{second.output} from {second.source}")
if second.notice:
    print(second.notice)
