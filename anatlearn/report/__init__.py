"""The HTML report (``anatlearn report``): :mod:`anatlearn.report.page` assembles one self-contained page
from runs, results and feature tables; :mod:`anatlearn.report.summary` computes its verdict, headline table
and key comparisons; :mod:`anatlearn.report.figures` draws the figures; :mod:`anatlearn.report.clinical`
is the section of the clinical tools."""

from anatlearn.report.page import build_report

__all__ = ["build_report"]
