"""Writing renders: pixels with their ICC profile (write), and the metadata that travels with them (export)."""
