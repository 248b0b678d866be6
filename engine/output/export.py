"""Writing a render to a file with everything a photographer expects to travel with it.

The pixels go through :func:`engine.output.write.write_image` (ICC profile, atomic write); this module adds the
metadata: the source's EXIF and GPS, and XMP that records how the file was made (its recipe, the source it
was derived from and that source's content hash, the engine version), so it can be re-rendered later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.filehash import file_sha256
from engine.output.metadata import XMP_PREFIX
from engine.output.write import OutputOptions, write_image
from engine.pipeline import Rendered


def provenance_xmp(rendered: Rendered) -> dict[str, str]:
    """XMP properties that say how an output was made (``models`` is {} while every stage is classical)."""
    from engine import __version__
    from engine.models import model_hashes

    source = rendered.source.path.resolve()
    return {
        "Xmp.xmpMM.DerivedFrom": source.name,
        f"Xmp.{XMP_PREFIX}.sourcePath": str(source),
        f"Xmp.{XMP_PREFIX}.sourceSHA256": file_sha256(source),
        f"Xmp.{XMP_PREFIX}.engineVersion": __version__,
        f"Xmp.{XMP_PREFIX}.models": json.dumps(model_hashes(), sort_keys=True, separators=(",", ":")),
        f"Xmp.{XMP_PREFIX}.recipe": rendered.recipe.to_json(),
        f"Xmp.{XMP_PREFIX}.decided": json.dumps(rendered.notes, sort_keys=True, separators=(",", ":")),
    }


def output_xmp(options: OutputOptions) -> dict[str, str]:
    """The output options that a re-render needs to match this file (colour space, size, JPEG quality)."""
    recorded = {"space": options.space, "long_edge": options.long_edge, "quality": options.quality}
    return {f"Xmp.{XMP_PREFIX}.output": json.dumps(recorded, sort_keys=True, separators=(",", ":"))}


def save(rendered: Rendered, path: str | Path, options: OutputOptions | None = None,
         extra_xmp: dict[str, Any] | None = None) -> Path:
    """Write ``rendered`` to ``path`` with its ICC profile, the source's EXIF/GPS and its provenance XMP.

    ``extra_xmp`` adds pyexiv2 XMP keys, such as the rating, labels and keywords of the source's sidecar
    (:func:`engine.sidecar.catalogue_xmp`).
    """
    options = options or OutputOptions()
    xmp = provenance_xmp(rendered) | output_xmp(options) | (extra_xmp or {})
    return write_image(rendered.pixels, path, options, exif=rendered.source.exif, xmp=xmp)
