"""The study's research analyses (docs/study.md): tables, predictions, replication, views, diagnostics,
reproduction, and the snapshot/restore shell scripts. Run from the repository root, e.g.
``python -m studies.predictions docs/study-run2/results/units.tsv``; each imports :mod:`anatlearn.study`
and its siblings as ``studies.<name>``."""
