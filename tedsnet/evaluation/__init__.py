"""Evaluation: segmentation, field and topology metrics, and the per-case table built from them.

- :mod:`tedsnet.evaluation.metrics`: Dice, Hausdorff distances, ASSD, Betti numbers, Jacobian determinants.
- :mod:`tedsnet.evaluation.topology`: Euler characteristic, Betti and Euler errors, Betti matching error, the kinds
  of a wrong topology.
- :mod:`tedsnet.evaluation.cases`: the per-case table.
"""
