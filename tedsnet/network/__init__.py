"""The method: TEDS-Net's maths as pure functions, its blocks, the model, the ring prior and the losses.

- :mod:`tedsnet.network.functional`: bounded velocity, composition layers, Gaussian smoothing, super upsample,
  warping (its docstring maps each paper term to its function).
- :mod:`tedsnet.network.blocks`: the convolutional encoder and decoder blocks.
- :mod:`tedsnet.network.model`: :class:`~tedsnet.network.model.TEDSNet`, the bulk and fine-tune branches.
- :mod:`tedsnet.network.priors`: the ring prior.
- :mod:`tedsnet.network.losses`: L_Dice and L_Grad (paper eq. 2).
- :mod:`tedsnet.network.outputs`: the result every model returns.
"""
