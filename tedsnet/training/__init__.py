"""Training: the engine that fits any registered experiment, and the checkpoint file it writes."""
