"""anatlearn: anatomy-informed contrastive foundation models for brain MRI.

Implements AnatCL (Barbano, Brunello, Dufumier, Grangetto, "Anatomical Foundation Models for Brain MRIs",
arXiv 2408.07079) and the contrastive baselines it builds on (SimCLR, y-Aware, ExpW, threshold, L1 age).
"""

__version__ = "0.1.0"

from anatlearn.errors import AnatlearnError

__all__ = ["AnatlearnError", "__version__"]
