"""Inference: predictions on prepared slices (the workflow) and on whole short-axis volumes (the CLI)."""
