"""Evaluation on frozen features: the OpenBHB protocol, downstream tasks with linear probes, statistics.

Everything here works on feature tables (:mod:`anatlearn.features`: DataFrame indexed by ``participant_id``,
columns ``f0000...``) and a participants table (:func:`read_participants`, re-exported from
:mod:`anatlearn.data.tables`), so it is independent of the model that produced the features.

>>> from anatlearn.evaluate import evaluate_tasks, load_tasks
>>> sorted(load_tasks("synthetic"), key=lambda t: t.name)[0].name
'AD-like-vs-CN'
"""

from anatlearn.evaluate.anatomy_recovery import (anatomy_recovery, effective_rank, read_targets,
                                                 truth_targets)
from anatlearn.data.tables import read_participants
from anatlearn.evaluate.downstream import evaluate_tasks, paired_tests
from anatlearn.evaluate.icc import icc, icc_summary
from anatlearn.evaluate.openbhb import challenge_score, evaluate_openbhb
from anatlearn.evaluate.probes import GRID, METRICS, Split, cross_validate, make_splits, score_predictions
from anatlearn.evaluate.results import Results, format_table
from anatlearn.evaluate.stats import corrected_interval, corrected_paired_ttest
from anatlearn.evaluate.tasks import Task, available_presets, load_preset, load_tasks
from anatlearn.features import (feature_columns, make_feature_table, match_ids, read_features, validate_features,
                                write_features)

__all__ = ["GRID", "METRICS", "Results", "Split", "Task", "anatomy_recovery", "available_presets", "challenge_score", "corrected_interval", "corrected_paired_ttest", "cross_validate", "effective_rank",
           "evaluate_openbhb", "evaluate_tasks", "feature_columns", "format_table", "icc", "icc_summary", "load_preset", "load_tasks",
           "make_splits",
           "make_feature_table", "match_ids", "paired_tests", "read_features", "read_participants", "read_targets",
           "score_predictions", "truth_targets", "validate_features", "write_features"]
