"""Print what the engine read from a file, then write it as JSON: what ``hostplug info --json`` shows.

    python examples/info.py [RAW] [OUT_DIR]

Writes OUT_DIR/NAME.json. RAW defaults to the bundled sample raw; OUT_DIR to a new temporary folder.
"""

import json
import sys
import tempfile
from pathlib import Path

import engine
from engine.io.source_info import describe

SAMPLE = Path(engine.__file__).parent / "samples" / "hostplug_colorchecker.dng"

raw = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="hostplug-"))
out_dir.mkdir(parents=True, exist_ok=True)

source = engine.open(raw)
print(f"{source.path.name}: {source.kind}, {source.format}, {source.size[1]} x {source.size[0]}")
print(f"camera: {source.camera.make} {source.camera.model}")
print(f"as-shot neutral: {source.as_shot_neutral.round(4).tolist()} ({source.neutral_origin})")

target = out_dir / (raw.stem + ".json")
target.write_text(json.dumps(describe(source), indent=2))
print(target)
