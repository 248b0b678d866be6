"""Render with a recipe: a picture style, an exposure change, the learned white balance, a stage switched off.

    python examples/with_recipe.py [RAW] [OUT_DIR]

Writes NAME_vivid.jpg (8-bit sRGB, long edge 800 px) and prints the recipe as the JSON that sidecars and outputs
store. RAW defaults to the bundled sample raw; OUT_DIR to a new temporary folder.
"""

import sys
import tempfile
from pathlib import Path

import engine

SAMPLE = Path(engine.__file__).parent / "samples" / "hostplug_colorchecker.dng"

raw = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE
out_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="hostplug-"))
out_dir.mkdir(parents=True, exist_ok=True)

recipe = engine.Recipe(
    style="vivid",  # natural, vivid, warm, moody, cinematic, monochrome, or a blend: "warm:0.7,moody:0.3"
    style_strength=0.8,  # 0: natural, 1: the style, 2: twice its departure from natural
    exposure=0.3,  # EV on top of the raw's own exposure (auto_exposure=True meters the picture instead)
    wb="auto",  # the learned white balance ("as-shot" is the default; wb="custom", temperature=5200 for Kelvin)
    contrast=10,  # Lightroom-style -100..100 adjustments
    stages={"detail": engine.StageSettings(enabled=False)},  # any stage off, or another implementation
)
rendered = engine.render(engine.open(raw), recipe)

target = out_dir / f"{raw.stem}_vivid.jpg"
engine.write_image(rendered, target, engine.OutputOptions(quality=90, long_edge=800, overwrite=True))
print(target)
print(recipe.to_json())
