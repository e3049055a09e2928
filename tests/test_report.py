"""The HTML report: it parses, every figure is an embedded, decodable, non-empty PNG, tables are present."""

import base64
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main
from anatlearn.errors import DataError
from anatlearn.evaluate import Task, evaluate_openbhb, evaluate_tasks, make_feature_table, write_features
from anatlearn.report import build_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.headings, self.stack = [], 0, [], []

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
    good = make_feature_table(np.c_[p["age"] / 10 + rng.normal(0, 0.2, n), (dx == "AD") + rng.normal(0, 0.5, n),
                                    rng.normal(size=(n, 4))], ids)
    rand = make_feature_table(rng.normal(size=(n, 6)), ids)
    write_features(good, root / "good.parquet")
    write_features(rand, root / "rand.csv")
    evaluate_openbhb({"good": good, "rand": rand}, p, n_boot=50, cv=3).write(root / "openbhb")
    evaluate_tasks({"good": good, "rand": rand}, p, [Task("AD-vs-CN", "classification", "diagnosis", ("AD",), ("CN",)),
                                                     Task("MMSE", "regression", "mmse")],
                   n_splits=3, n_repeats=2).write(root / "tasks")
    run = root / "run-anatcl"
    run.mkdir()
    pd.DataFrame({"epoch": np.arange(1, 6), "loss": np.linspace(5, 3, 5), "loss_age": np.linspace(2.5, 1.4, 5),
                  "lr": 1e-4}).to_csv(run / "metrics.csv", index=False)
    return root


def test_report_parses_and_every_image_is_a_png(inputs, tmp_path):
    out = tmp_path / "report.html"
    code = main(["report", str(inputs / "run-anatcl"), str(inputs / "openbhb"), str(inputs / "tasks"),
                 "--features", f"good={inputs / 'good.parquet'}", "--features", str(inputs / "rand.csv"),
                 "--participants", str(inputs / "participants.tsv"), "--out", str(out), "--title", "Test <report>"])
    assert code == 0
    page = _parse(out)
    # 1 loss plot + 2 methods x (age scatter + site confusion) + 4 metric bar charts + 2 embedding maps
    assert len(page.images) == 1 + 4 + 4 + 2
    alts = [img["alt"] for img in page.images]
    assert "loss curves run-anatcl" in alts and "embedding map rand" in alts and "site confusion good" in alts
    assert page.tables >= 3  # OpenBHB table, task table, paired tests
    assert {"Pretraining", "OpenBHB protocol", "Downstream tasks", "Embedding maps"} <= set(page.headings)
    text = out.read_text()
    assert "Test &lt;report&gt;" in text and "AD-vs-CN" in text and "http" not in text.split("<body>")[1].split("<h2>Provenance")[0]


def test_report_of_a_single_run_and_bad_inputs(inputs, tmp_path):
    page = _parse(build_report([inputs / "run-anatcl"], tmp_path / "r.html"))
    assert len(page.images) == 1
    with pytest.raises(DataError, match="not a run directory"):
        build_report([tmp_path], tmp_path / "x.html")
    with pytest.raises(DataError, match="not found"):
        build_report([tmp_path / "missing"], tmp_path / "x.html")
    with pytest.raises(DataError, match="nothing to report"):
        build_report([], tmp_path / "x.html")
