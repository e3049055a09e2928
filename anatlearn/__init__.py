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


def lazy_exports(package: str, public: dict[str, str]):
    """A package's PEP 562 ``__getattr__`` and ``__dir__`` for names imported on first use: ``public`` maps
    each name to the submodule of ``package`` that defines it (``__getattr__, __dir__ = lazy_exports(__name__,
    PUBLIC)``), so that importing the package (e.g. for the command line's help) does not import torch."""
    import importlib
    import sys

    def __getattr__(name: str):
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{public[name]}"), name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return __getattr__, __dir__


def __getattr__(name: str):
    if name in ESTIMATORS:
        import anatlearn.estimators

        return getattr(anatlearn.estimators, name)
    raise AttributeError(f"module 'anatlearn' has no attribute {name!r}")


__all__ = ["DEFAULT_WORKERS", "PRECISIONS", "AnatlearnError", "__version__", *ESTIMATORS]
