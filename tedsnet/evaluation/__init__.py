"""Evaluation: segmentation, field and topology metrics, and the per-case table built from them."""
