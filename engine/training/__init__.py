"""Training data and training loops of the learned stages (never imported when rendering)."""
