"""The synthetic cohort with known ground truth (``anatlearn synth``; docs/synthetic.md).

Imports run one way: ``world`` (what every version shares) <- ``world_v1`` <- ``world_v2`` <- ``cohort``
(subjects, images, tables, truth files); ``nifti`` writes a cohort a second time as users' data and ``stats``
checks a written cohort's realism from its files.
"""

from anatlearn.synthetic.cohort import (WORLD_VERSIONS, WORLDS, generate_cohort, make_world, sample_subjects,
                                        true_anatomy)
from anatlearn.synthetic.world import DISEASES, World, WorldModel, grid_affine

__all__ = ["DISEASES", "WORLDS", "WORLD_VERSIONS", "World", "WorldModel", "generate_cohort", "grid_affine",
           "make_world", "sample_subjects", "true_anatomy"]
