"""anatlearn: anatomy-informed contrastive foundation models for brain MRI.

Implements AnatCL (Barbano, Brunello, Dufumier, Grangetto, "Anatomical Foundation Models for Brain MRIs",
arXiv 2408.07079) and the contrastive baselines it builds on (SimCLR, y-Aware, ExpW, threshold, L1 age).
"""

__version__ = "0.1.0"

from anatlearn.errors import AnatlearnError

# One vocabulary across commands: every command that loads data or runs a model takes these.
DEFAULT_WORKERS = 2  # DataLoader worker processes (--workers)
PRECISIONS = ("fp32", "bf16", "fp16")  # numeric precision of a forward pass (--precision)

# scikit-learn-style estimators (anatlearn.estimators), imported on first use: `import anatlearn` stays light
ESTIMATORS = ("BrainAge", "ComBat", "Encoder", "LinearProbe", "Pretrainer")


def __getattr__(name: str):
    if name in ESTIMATORS:
        import anatlearn.estimators

        return getattr(anatlearn.estimators, name)
    raise AttributeError(f"module 'anatlearn' has no attribute {name!r}")


__all__ = ["DEFAULT_WORKERS", "PRECISIONS", "AnatlearnError", "__version__", *ESTIMATORS]
