"""TEDS-Net reproducibility suite.

A reimplementation of TEDS-Net (Wyburd, Dinsdale, Namburete, Jenkinson, MICCAI 2021): a segmentation network that
warps a ring-shaped prior with learnt diffeomorphic fields so the output keeps the prior's topology.

Packages, one per pipeline stage (import the modules directly; this package imports nothing eagerly):

- :mod:`tedsnet.network`: the method: the maths as pure functions, blocks, the model, the ring prior, losses.
- :mod:`tedsnet.data`: ACDC reader, phantom cohort, slice protocol, augmentation, splits, prepared datasets.
- :mod:`tedsnet.training`: the training engine and the checkpoint file.
- :mod:`tedsnet.inference`: predictions on prepared slices and on whole volumes.
- :mod:`tedsnet.evaluation`: metrics and the per-case evaluation.
- :mod:`tedsnet.reporting`: Table 1, paired tests, figures and the run report.
- :mod:`tedsnet.speed`: optional speed modes and the throughput benchmark, apart from the method.
- :mod:`tedsnet.experiments`: the registry from an experiment name to a model and its loss weights.
"""

__version__ = "0.1.0"
