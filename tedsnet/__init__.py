"""TEDS-Net reproducibility suite.

A reimplementation of TEDS-Net (Wyburd, Dinsdale, Namburete, Jenkinson, MICCAI 2021): a segmentation network that
warps a ring-shaped prior with learnt diffeomorphic fields so the output keeps the prior's topology.

Modules (the functional core never imports :mod:`baselines`):

- :mod:`tedsnet.functional`: the maths (bounded velocity, integration, warping, resizing), pure functions.
- :mod:`tedsnet.priors`: the ring prior.
- :mod:`tedsnet.blocks`: the convolutional blocks shared by TEDS-Net and the paper's U-Net.
- :mod:`tedsnet.model`: :class:`~tedsnet.model.TEDSNet`.
- :mod:`tedsnet.losses`, :mod:`tedsnet.metrics`: training losses and evaluation metrics.
- :mod:`tedsnet.data`: ACDC reader, phantom cohort, slices, augmentation, splits, prepared datasets.
- :mod:`tedsnet.experiments`: the one registry from an experiment name to a model and its loss weights.
"""

__version__ = "0.1.0"
