"""The HTML report: it parses, every figure is an embedded, decodable, non-empty PNG, tables are present."""

import base64
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main
from anatlearn.errors import DataError
from anatlearn.evaluate import Task, evaluate_openbhb, evaluate_tasks, make_feature_table, read_participants, write_features
from anatlearn.evaluate.anatomy_recovery import evaluate_anatomy
from anatlearn.report import build_report
from anatlearn.report.figures import loss_terms

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.headings, self.stack, self.h2 = [], 0, [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "table":
            self.tables += 1

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] in ("h2", "h3"):
            self.headings.append(data)
        if self.stack and self.stack[-1] == "h2":
            self.h2.append(data)


def _parse(path):
    page = _Page()
    page.feed(path.read_text())
    page.close()
    assert page.stack == [], f"unclosed tags {page.stack}"
    for img in page.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        data = base64.b64decode(img["src"][len(prefix):], validate=True)
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    return page


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    n = 120
    ids = pd.Index([f"s{i:03d}" for i in range(n)], name="participant_id")
    site = np.array(["a", "b", "c", "d"])[np.arange(n) % 4]
    split = np.where(site == "d", "external_test", np.where(np.arange(n) % 5 == 0, "internal_test", "train"))
    dx = np.where(np.arange(n) % 2 == 0, "AD", "CN")
    p = pd.DataFrame({"age": rng.uniform(20, 80, n), "site": site, "split": split, "diagnosis": dx,
                      "mmse": 28 - 5 * (dx == "AD") + rng.normal(0, 1, n)}, index=ids)
    p.reset_index().to_csv(root / "participants.tsv", sep="\t", index=False)
    p = read_participants(root / "participants.tsv")  # as the CLI reads it: the evaluations record its source
    good = make_feature_table(np.c_[p["age"] / 10 + rng.normal(0, 0.2, n), (dx == "AD") + rng.normal(0, 0.5, n),
                                    rng.normal(size=(n, 4))], ids)
    rand = make_feature_table(rng.normal(size=(n, 6)), ids)
    write_features(good, root / "good.parquet")
    write_features(rand, root / "rand.csv")
    evaluate_openbhb({"good": good, "rand": rand}, p, n_boot=50, cv=3).write(root / "openbhb")
    evaluate_tasks({"good": good, "rand": rand}, p, [Task("AD-vs-CN", "classification", "diagnosis", ("AD",), ("CN",)),
                                                     Task("MMSE", "regression", "mmse")],
                   n_splits=3, n_repeats=2).write(root / "tasks")
    gmv = pd.DataFrame(good.to_numpy()[:, :2] @ rng.normal(size=(2, 5)) + rng.normal(0, 0.1, (n, 5)), index=ids)
    evaluate_anatomy({"good": good, "rand": rand}, {"GMV": gmv}, n_splits=3).write(root / "anatomy")
    run = root / "run-anatcl"
    run.mkdir()
    pd.DataFrame({"step": np.arange(10), "epoch": np.arange(10) // 2, "loss": np.linspace(5, 3, 10),
                  "loss_age": np.linspace(2.5, 1.4, 10), "lr": 1e-4, "samples_per_s": np.linspace(90, 130, 10)}
                 ).to_csv(run / "metrics.csv", index=False)
    return root


def test_report_parses_and_every_image_is_a_png(inputs, tmp_path):
    out = tmp_path / "report.html"
    code = main(["report", str(inputs / "run-anatcl"), str(inputs / "openbhb"), str(inputs / "tasks"), str(inputs / "anatomy"),
                 "--features", f"good={inputs / 'good.parquet'}", "--features", str(inputs / "rand.csv"),
                 "--participants", str(inputs / "participants.tsv"), "--out", str(out), "--title", "Test <report>",
                 "--note", "Two seeds & one budget."])
    assert code == 0
    page = _parse(out)
    # loss terms + throughput + 2 methods x (age scatter + site confusion) + 4 metric bar charts + anatomy
    # recovery + 2 embedding maps
    assert len(page.images) == 2 + 4 + 4 + 1 + 2
    alts = [img["alt"] for img in page.images]
    assert {"loss curves run-anatcl", "throughput run-anatcl", "embedding map rand", "site confusion good",
            "anatomy recovery"} <= set(alts)
    assert page.tables >= 5  # headline, anatomy, OpenBHB, tasks, paired tests
    # the verdict and the headline come first, diagnostics (pretraining curves) after the results
    assert page.h2[:2] == ["Verdict", "Headline"]
    assert page.h2.index("Anatomy recovery") < page.h2.index("Downstream tasks") < page.h2.index("Pretraining")
    assert {"OpenBHB protocol", "Embedding maps"} <= set(page.h2)
    # speed is not a result: the throughput chart sits in Run details, after every result, before provenance
    assert page.h2[-2:] == ["Run details", "Provenance"]
    text = out.read_text()
    run_details = text[text.index("<h2>Run details</h2>"):text.index("<h2>Provenance</h2>")]
    assert 'alt="throughput run-anatcl"' in run_details and text.count('alt="throughput') == 1
    assert "<li>Two seeds &amp; one budget.</li>" in out.read_text().split("<h2>Headline")[0]
    text = out.read_text()
    assert "Test &lt;report&gt;" in text and "AD-vs-CN" in text and "http" not in text.split("<body>")[1].split("<h2>Provenance")[0]


def test_report_of_a_single_run_and_bad_inputs(inputs, tmp_path):
    page = _parse(build_report([inputs / "run-anatcl"], tmp_path / "r.html"))
    assert len(page.images) == 2  # loss terms, throughput
    assert page.h2 == ["Pretraining", "Run details", "Provenance"]
    with pytest.raises(DataError, match="not a run directory"):
        build_report([tmp_path], tmp_path / "x.html")
    with pytest.raises(DataError, match="not found"):
        build_report([tmp_path / "missing"], tmp_path / "x.html")
    with pytest.raises(DataError, match="nothing to report"):
        build_report([], tmp_path / "x.html")


def test_full_paired_table_is_folded_away(inputs, tmp_path):
    text = build_report([inputs / "tasks"], tmp_path / "r.html").read_text()
    details = text[text.index("<details><summary>all "):]
    assert "p_corrected_t" in details.split("</details>")[0]  # the paired table lives inside <details>
    assert "p_corrected_t" not in text[:text.index("<details><summary>all ")]


def test_loss_terms_leave_out_counters_rate_and_throughput():
    m = pd.DataFrame({"step": [1], "epoch": [0], "loss": [5.0], "age": [2.0], "anat": [3.0], "lr": [1e-3],
                      "samples_per_s": [100.0], "val_mae": [4.0]})
    assert loss_terms(m) == ["loss", "age", "anat", "val_mae"]


CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def _chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("ANATLEARN_REQUIRE_CHROMIUM"),
                    reason="chromium not installed (apt-get install -y chromium); CI sets ANATLEARN_REQUIRE_CHROMIUM")
def test_report_in_a_headless_browser(inputs, tmp_path):
    """What a reader sees: the browser's DOM starts with the verdict, and the first screen of the page (1280 x
    900 pixels) holds the verdict box and the headline table, not a blank page or a chart."""
    from PIL import Image

    assert CHROMIUM is not None, "ANATLEARN_REQUIRE_CHROMIUM is set but no chromium is installed"
    out = build_report([inputs / "anatomy", inputs / "tasks", inputs / "openbhb", inputs / "run-anatcl"],
                       tmp_path / "report.html", note="A note for the reader.")
    dom = _chromium(tmp_path, "--dump-dom", out.as_uri()).stdout
    h2 = re.findall(r"<h2>(.*?)</h2>", dom)
    assert h2[:2] == ["Verdict", "Headline"], h2
    assert "A note for the reader." in dom.split("<h2>Headline</h2>")[0]
    png = tmp_path / "top.png"
    _chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,900", out.as_uri())
    top = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert top.shape[:2] == (900, 1280)
    ink = (top < 200).any(axis=2)  # text, rules and table borders
    assert ink.mean() > 0.01, "the first screen is blank"
    border = (np.abs(top - np.array([0x3B, 0x6E, 0xA5])).sum(axis=2) < 30)  # the verdict box's left rule
    assert border[:450].sum() > 100, "no verdict box near the top of the first screen"
    header = (np.abs(top - np.array([0xF4, 0xF4, 0xF4])).sum(axis=2) < 6)  # table header cells
    assert header.sum() > 2000, "no headline table on the first screen"


def _headline_rows(text: str) -> dict[str, list[str]]:
    """The headline table's rows: {row label: [cell texts]} (tags stripped)."""
    table = text[text.index("<table class=headline>"):]
    table = table[:table.index("</table>")]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        rows[cells[0]] = cells[1:]
    return rows


def test_headline_names_evaluation_cohort_and_n_of_every_row(inputs, tmp_path):
    """The rows come from different evaluations: each names its own, with the cohort (the participants table's
    folder, here the fixture's) and the n actually scored, and the best cell of each row is bold."""
    text = build_report([inputs / "anatomy", inputs / "tasks", inputs / "openbhb"], tmp_path / "r.html").read_text()
    rows = _headline_rows(text)
    cohort = inputs.name
    n_external = int((pd.read_csv(inputs / "participants.tsv", sep="\t")["split"] == "external_test").sum())
    assert rows["key metric"] == ["good", "rand", "chance or trivial level", "source (evaluation, cohort, n)"]
    assert rows["brain-age MAE ext ↓"][-1] == f"OpenBHB protocol, {cohort} cohort, external-site test split, n = {n_external}"
    assert rows["AD-vs-CN BAcc"][-1] == f"downstream tasks, {cohort} cohort, 2 x 3-fold CV, n = 120"
    assert rows["site BAcc ↓"][-1].startswith(f"OpenBHB protocol, {cohort} cohort, internal test split (training sites)")
    # no cohort recorded for a hand-built anatomy target table: said so, not guessed
    assert rows["GMV R²"][-1] == "anatomy recovery, 3-fold CV ridge, cohort not recorded, n = 120"
    tasks = pd.read_csv(inputs / "tasks" / "results.csv").set_index(["method", "metric", "task"])["mean"]
    best = "good" if tasks[("good", "balanced_accuracy", "AD-vs-CN")] > tasks[("rand", "balanced_accuracy", "AD-vs-CN")] else "rand"
    row = text[text.index("<th class=m>AD-vs-CN BAcc"):]
    row = row[:row.index("</tr>")]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[["good", "rand"].index(best)].startswith("<b>") and not cells[1 - ["good", "rand"].index(best)].startswith("<b>")
    assert "<b>bold</b>: the best value of a row where two or more methods compare" in text


def test_tasks_section_is_titled_by_the_task_set(inputs, tmp_path):
    from anatlearn.evaluate import Results, load_tasks

    (tmp_path / "dementia.toml").write_text('[tasks.AD-vs-CN]\nkind = "classification"\ncolumn = "diagnosis"\n'
                                            'positive = ["AD"]\nnegative = ["CN"]\n')
    tasks = load_tasks(tmp_path / "dementia.toml")
    assert [t.task_set for t in tasks] == ["dementia"]
    p = read_participants(inputs / "participants.tsv")
    res = evaluate_tasks({"good": pd.read_parquet(inputs / "good.parquet")}, p, tasks, n_splits=2, n_repeats=1)
    assert res.provenance["config"]["task_set"] == "dementia"
    res.write(tmp_path / "results-folder")
    text = build_report([tmp_path / "results-folder"], tmp_path / "r.html").read_text()
    assert re.search(r"<h3>dementia <small class=note>\([^)]*cohort, results in results-folder\)</small></h3>", text)
    # results written before the task set was recorded: the folder's name, as before
    old = Results.read(tmp_path / "results-folder")
    del old.provenance["config"]["task_set"]
    old.write(tmp_path / "old-results")
    assert "<h3>old-results <small" in build_report([tmp_path / "old-results"], tmp_path / "o.html").read_text()


def test_balanced_accuracy_below_chance_is_marked_with_a_note(tmp_path):
    """0.20 [0.10, 0.30] and 0.30 without interval at n = 100 (margin 0.1) are below chance 0.5; 0.45 [0.30,
    0.60] and 0.45 without interval are not. The mark and the note appear in the task table and the headline."""
    from anatlearn.evaluate import Results

    nan = float("nan")
    rows = [("a", "T1", 0.20, 0.10, 0.30), ("b", "T1", 0.45, 0.30, 0.60), ("a", "T2", 0.30, nan, nan),
            ("b", "T2", 0.45, nan, nan)]
    table = pd.DataFrame([{"method": m, "task": t, "metric": "balanced_accuracy", "mean": v, "ci_low": lo,
                           "ci_high": hi, "n": 100, "lower_is_better": False, "ci_note": ""}
                          for m, t, v, lo, hi in rows])
    Results(kind="tasks", table=table, provenance={"config": {"task_set": "toy"}}).write(tmp_path / "res")
    text = build_report([tmp_path / "res"], tmp_path / "r.html").read_text()
    head = _headline_rows(text)
    assert head["T1 BAcc"][:2] == ["0.200†", "0.450"] and head["T2 BAcc"][:2] == ["0.300†", "0.450"]
    section = text[text.index("<h2>Downstream tasks</h2>"):]
    assert section.count("†") == 3  # two marked cells and the note
    assert "0.200 [0.100, 0.300] †" in section and "0.450 [0.300, 0.600] †" not in section
    assert "below chance: the probe anticorrelates with the labels" in section
    assert "a, T1 balanced_accuracy (chance 0.500); a, T2 balanced_accuracy (chance 0.500)" in section
