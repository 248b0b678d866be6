"""XMP: hostplug's recipe properties, sidecars beside raws, other programs' hints, provenance and presets."""
