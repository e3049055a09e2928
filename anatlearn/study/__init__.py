"""``anatlearn study``: a resumable grid of pretraining runs evaluated along their budgets (docs/study.md).

- :mod:`anatlearn.study.grid`: settings, cells, ablation variants (the pre-registered protocol);
- :mod:`anatlearn.study.cells`: one cell trained along its budgets and evaluated at each;
- :mod:`anatlearn.study.evaluation`: the cohorts and the metrics of one checkpoint;
- :mod:`anatlearn.study.runner`: the whole grid, resumable, in parallel processes, with progress;
- :mod:`anatlearn.study.record`, :mod:`anatlearn.study.time_left`: study.json's invocations, the time left;
- :mod:`anatlearn.study.units`: the evaluated units, shared metric constants and the one paired rule;
- :mod:`anatlearn.study.selection`: the selection rule and the positive-control criterion;
- :mod:`anatlearn.study.aggregate`, :mod:`anatlearn.study.summary`: tables, tests, figures, summary.md.
"""

from anatlearn.study.grid import GRIDS, StudySettings, build_cells
from anatlearn.study.runner import run_study

__all__ = ["GRIDS", "StudySettings", "build_cells", "run_study"]
