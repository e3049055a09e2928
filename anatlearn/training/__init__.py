"""Pretraining internals: configuration and run directory (distributed helpers: anatlearn.distributed). The loop is anatlearn.train."""
