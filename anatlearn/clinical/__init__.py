"""What neuroscientists do with frozen features: brain-age gap, site harmonisation, region maps.

- :class:`BrainAgeModel` (``anatlearn brain-age``): ridge brain age on a healthy reference, gap and its
  linear bias correction (de Lange & Cole 2020 / Beheshti et al. 2019), group comparison (Hedges' g, Welch t).
- :class:`ComBatHarmonizer` (``anatlearn harmonize``): ComBat across sites preserving covariates
  (Johnson et al. 2007; Fortin et al. 2018), fit on a reference, applied to subjects of known sites.
- :func:`explain_regions` (``anatlearn explain``): Integrated Gradients through encoder + probe, summed per
  atlas region (a label NIfTI, the synthetic cohort's regions, or a patch grid).
Fitted models are saved as plain arrays (``.npz``, no pickle). See docs/clinical.md.
"""

from anatlearn.clinical.atlas import Atlas, nifti_atlas, patch_grid, resolve_atlas, world_atlas
from anatlearn.clinical.brain_age import BrainAgeModel
from anatlearn.clinical.combat import ComBatHarmonizer
from anatlearn.clinical.explain import RegionExplanation, explain_regions
from anatlearn.clinical.group_stats import compare_groups, hedges_g

__all__ = ["Atlas", "BrainAgeModel", "ComBatHarmonizer", "RegionExplanation", "compare_groups", "explain_regions",
           "hedges_g", "nifti_atlas", "patch_grid", "resolve_atlas", "world_atlas"]
