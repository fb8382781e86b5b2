"""The method: TEDS-Net's maths as pure functions, its blocks, the model, the ring prior and the losses."""
