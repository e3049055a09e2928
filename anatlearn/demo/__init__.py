"""``anatlearn demo``: the synthetic benchmark of what anatomy-informed pretraining buys.

:mod:`anatlearn.demo.run` generates the cohorts, pretrains, embeds, evaluates and writes the report;
:mod:`anatlearn.demo.summary` turns the results into the claims and the Markdown summary.
"""

from anatlearn.demo.run import FULL, METHODS, QUICK, VOXELS, DemoSettings, run_demo
from anatlearn.demo.summary import REFERENCE, claims, demo_summary_markdown

__all__ = ["DemoSettings", "FULL", "METHODS", "QUICK", "REFERENCE", "VOXELS", "claims", "demo_summary_markdown",
           "run_demo"]
