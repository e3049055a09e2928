"""`anatlearn demo --quick` runs the whole product end to end (the full demo is `make demo`)."""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pandas as pd


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "anatlearn", "demo", "--quick", "--epochs", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "report:" in proc.stdout and "brain-age MAE ext" in proc.stdout
    assert max(map(len, proc.stdout.splitlines())) <= 100  # the console table fits a 100-column terminal
    table = pd.read_csv(out / "results.csv")
    methods = {"anatcl-global", "anatcl-local", "yaware", "simclr", "l1-age", "random-init", "reference: pooled voxels",
               "ceiling: true latents", "ceiling: measured descriptors"}
    assert methods <= set(table["method"])
    assert {"brain_age", "site", "AD-like-vs-CN", "SCZ-like-vs-CN", "MMSE-like", "test-retest", "anatomy recovery",
            "effective rank"} <= set(table["task"])
    # anatomy recovery of every model, the pooled voxels and the ceilings, for each target family
    anat = table[table["task"] == "anatomy recovery"]
    assert set(anat["metric"]) == {"r2_GMV", "r2_CT", "r2_SA", "r2_latents"}
    assert set(anat["method"]) == methods and anat["mean"].le(1).all()
    latents = anat[anat["metric"] == "r2_latents"].set_index("method")["mean"]
    assert latents["ceiling: true latents"] > 0.99  # the latents recover themselves: the probe works end to end
    mae = table[(table["task"] == "brain_age") & (table["metric"] == "mae_internal")]
    assert mae["mean"].between(0, 80).all()
    summary = json.loads((out / "demo.json").read_text())
    assert summary["quick"] is True and summary["provenance"]["versions"]["torch"]
    assert summary["settings"]["epochs"] == 2  # --epochs overrides the quick preset's single epoch
    assert set(summary["anatomy_recovery"]["random-init"]) >= {"r2_GMV", "r2_latents", "rankme", "rankme_centred"}
    md = (out / "summary.md").read_text()
    assert "Anatomy recovery (GMV R²" in md
    assert "| key metric | anatcl-global | anatcl-local | yaware | simclr | l1-age | random-init | reference: pooled " \
           "voxels | ceiling: true latents | ceiling: measured descriptors | source |" in md
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    # each row names its cohort: brain age from the healthy cohort's external site, tasks from the downstream one
    n_ext = int((pd.read_csv(out / "data" / "healthy" / "participants.tsv", sep="\t")["split"] == "external_test").sum())
    assert rows["brain-age MAE ext ↓"].endswith(f"| OpenBHB protocol, healthy cohort, external-site test split, "
                                                f"n = {n_ext} |")
    assert "| downstream tasks (synthetic), downstream cohort, 1 x 2-fold CV, n = " in rows["AD-like-vs-CN BAcc"]
    assert rows["GMV R²"].endswith("| anatomy recovery, 2-fold CV ridge, downstream cohort, n = 32 |")
    assert "| test-retest ICC, downstream cohort, median over " in rows["ICC"]
    assert all(line.count("**") >= 2 for name, line in rows.items() if name != "key metric" and "---" not in name)
    assert sorted(pd.read_csv(out / "runs" / "simclr" / "metrics.csv")["epoch"].unique()) == [1, 2]  # epochs from 1
    html = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) >= 4 and all(len(i) > 1000 for i in images)
    HTMLParser().feed(html)
    assert html.index("<h2>Verdict</h2>") < html.index("<h2>Headline</h2>") < html.index("<h2>Pretraining</h2>")
    assert "<h3>synthetic <small class=note>(downstream cohort, results in tasks)</small></h3>" in html
    assert "Brain-age MAE on the downstream cohort: <b>" in html or "brain-age" in json.loads(
        (out / "clinical" / "skipped.json").read_text())
    icc = json.loads((out / "results" / "icc" / "results.json").read_text())  # evaluate_icc's own accounting
    assert set(icc["extra"]["methods"]) == {"anatcl-global", "anatcl-local", "yaware", "simclr", "l1-age", "random-init"}
    for m in ("anatcl-global", "simclr", "l1-age"):
        assert (out / "runs" / m / "checkpoints" / "last.pt").exists()
