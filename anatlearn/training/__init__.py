"""Pretraining internals: configuration, run directory, distributed helpers. The loop is anatlearn.train."""
