"""Save what every pipeline stage made: one PNG and one JSON (its params and what it decided) per stage.

    python examples/inspect_stages.py [RAW] [OUT_DIR]

Writes OUT_DIR/1_demosaic.png ... OUT_DIR/7_detail.png with a .json beside each. RAW defaults to the bundled
sample raw; OUT_DIR to a new temporary folder.
"""

import json
import sys
import tempfile
from pathlib import Path

import engine

SAMPLE = Path(engine.__file__).parent / "samples" / "hostplug_colorchecker.dng"

raw = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="hostplug-"))
out_dir.mkdir(parents=True, exist_ok=True)

# stages_dir makes the pipeline save each stage's output (linear stages shown sRGB-encoded) and params.
rendered = engine.render(engine.open(raw), stages_dir=out_dir)

for png in sorted(out_dir.glob("*.png")):
    info = json.loads(png.with_suffix(".json").read_text())
    # "auto" (the default denoiser) picks an implementation per file; the stage's notes say which one ran
    notes = rendered.notes.get(info["stage"])
    ran = notes.get("implementation", info["implementation"]) if isinstance(notes, dict) else info["implementation"]
    print(f"{png.name:<20} {ran:<10} {rendered.timings[info['stage']]:.3f} s")

# What the stages decided (white balance neutral, exposure, style parameters...) is also in rendered.notes.
print("stages that noted decisions:", ", ".join(rendered.notes))
