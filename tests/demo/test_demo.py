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
    assert "report:" in proc.stdout and "brain_age" in proc.stdout
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
    assert "Anatomy recovery (GMV R²" in md and "| method | GMV R² | CT R² | SA R² | latents R² | RankMe |" in md
    assert "| reference: pooled voxels |" in md and "| random-init |" in md
    assert sorted(pd.read_csv(out / "runs" / "simclr" / "metrics.csv")["epoch"].unique()) == [0, 1]
    html = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) >= 4 and all(len(i) > 1000 for i in images)
    HTMLParser().feed(html)
    assert html.index("<h2>Verdict</h2>") < html.index("<h2>Headline</h2>") < html.index("<h2>Pretraining</h2>")
    for m in ("anatcl-global", "simclr", "l1-age"):
        assert (out / "runs" / m / "checkpoints" / "last.pt").exists()
