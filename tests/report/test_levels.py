"""What a newcomer reads first: chance levels computed from the data, a verdict that says when every task is
at chance and whether a baseline was given, the ceiling of a synthetic cohort, input-check flags, and a page
(not a traceback) when inputs share method names."""

import re

import numpy as np
import pandas as pd
import pytest

from anatlearn.cli import main
from anatlearn.evaluate import (Results, Task, evaluate_openbhb, evaluate_tasks, load_tasks, make_feature_table,
                                read_features, read_participants, write_features)
from anatlearn.evaluate.anatomy_recovery import evaluate_anatomy
from anatlearn.evaluate.downstream import CEILING, truth_features
from anatlearn.report import build_report
from anatlearn.report.names import feature_names
from anatlearn.report.summary import verdict


def _headline(text: str) -> dict[str, list[str]]:
    table = text[text.index("<table class=headline>"):]
    table = table[:table.index("</table>")]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Five sites, one of them external: site chance is 1/4 from the data, not 1/3 or 1/5."""
    root = tmp_path_factory.mktemp("levels")
    rng = np.random.default_rng(1)
    n = 100
    ids = pd.Index([f"s{i:03d}" for i in range(n)], name="participant_id")
    site = np.array(list("abcde"))[np.arange(n) % 5]
    split = np.where(site == "e", "external_test", np.where(np.arange(n) % 4 == 0, "internal_test", "train"))
    dx = np.where(np.arange(n) % 2 == 0, "AD", "CN")
    p = pd.DataFrame({"age": rng.uniform(20, 80, n), "site": site, "split": split, "diagnosis": dx}, index=ids)
    p.reset_index().to_csv(root / "participants.tsv", sep="\t", index=False)
    p = read_participants(root / "participants.tsv")
    feats = make_feature_table(np.c_[p["age"] / 10 + rng.normal(0, 0.3, n), rng.normal(size=(n, 6))], ids)
    for run in ("runA", "runB"):  # two runs whose features are both called healthy.parquet
        (root / run).mkdir()
        table = feats + rng.normal(0, 0.1, feats.shape) if run == "runB" else feats
        write_features(table, root / run / "healthy.parquet",
                       {"input_check": {"n_subjects": n, "n_flagged": 2, "flagged": ["s003", "s007"],
                                        "reference": "healthy cohort"}} if run == "runA" else None)
        table = read_features(root / run / "healthy.parquet")  # as the CLI reads it, with its metadata
        evaluate_openbhb({"healthy": table}, p, n_boot=20, cv=3).write(root / run / "openbhb")
    evaluate_tasks({"healthy": feats}, p, [Task("AD-vs-CN", "classification", "diagnosis", ("AD",), ("CN",))],
                   n_splits=3, n_repeats=1).write(root / "tasks")
    gmv = pd.DataFrame(feats.to_numpy()[:, :2] @ rng.normal(size=(2, 3)), index=ids)
    evaluate_anatomy({"healthy": feats}, {"GMV": gmv}, n_splits=3).write(root / "anatomy")
    return root


def test_chance_levels_come_from_the_data(world, tmp_path):
    text = build_report([world / "runA" / "openbhb", world / "anatomy", world / "tasks"], tmp_path / "r.html").read_text()
    rows = _headline(text)
    p = pd.read_csv(world / "participants.tsv", sep="\t")
    n_sites = p.loc[p["split"] == "train", "site"].nunique()
    assert n_sites == 4
    assert rows["site BAcc ↓"][1] == f"{1 / n_sites:.3f} (chance: 1 / {n_sites} sites)"
    trivial = np.mean(np.abs(p.loc[p.split == "external_test", "age"] - p.loc[p.split == "train", "age"].mean()))
    assert rows["brain-age MAE ext ↓"][1] == f"{trivial:.1f} (predicting the training mean age)"
    internal = np.mean(np.abs(p.loc[p.split == "internal_test", "age"] - p.loc[p.split == "train", "age"].mean()))
    openbhb = text[text.index("<h2>OpenBHB protocol"):]
    assert f"<td>{internal:.1f} (predicting the training mean age)</td>" in openbhb  # every row has its level
    assert "<td>lower is better</td>" in openbhb  # the challenge score's direction
    assert rows["RankMe"][1] == f"max {min(len(p), 7)} (min of subjects, features)"  # 100 subjects, 7 features
    assert rows["AD-vs-CN BAcc"][1] == "0.5 (chance, 2 classes)" and rows["GMV R²"][1] == "0 (predicting the mean)"
    assert "<b>" not in text[text.index("<table class=headline>"):text.index("</table>")]  # one method: no best
    assert "No baseline was given" in text.split("<h2>Headline")[0]
    assert ("Input check of healthy (reference: healthy cohort): 2 of 100 subjects flagged as unlike the training "
            "data (s003, s007).") in text


def test_report_of_the_same_results_twice_is_a_page(world, tmp_path):
    res = world / "runA" / "openbhb"
    assert main(["report", str(res), str(res / "results.json"), "--out", str(tmp_path / "r.html")]) == 0
    text = (tmp_path / "r.html").read_text()
    assert "was given more than once; it is shown once" in text
    assert _headline(text)["key metric"][0] == "healthy"


def test_two_runs_with_the_same_feature_file_name_are_told_apart(world, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(world / "runA" / "openbhb"), str(world / "runB" / "openbhb"), "--out", str(out),
                 "--features", str(world / "runA" / "healthy.parquet"),
                 "--features", str(world / "runB" / "healthy.parquet")]) == 0
    rows = _headline(out.read_text())
    assert rows["key metric"][:2] == ["healthy (runA/openbhb)", "healthy (runB/openbhb)"]
    for i, run in enumerate(("runA", "runB")):  # each column holds its own run's number
        t = pd.read_csv(world / run / "openbhb" / "results.csv").set_index(["task", "metric"])["mean"]
        assert rows["brain-age MAE ext ↓"][i] == f"{t[('brain_age', 'mae_external')]:.3f}"
    assert 'alt="embedding map healthy (runA)"' in out.read_text()
    assert [n for n, _ in feature_names(["x/f.parquet", "y/f.parquet", "g=z.csv"])] == ["f (x)", "f (y)", "g"]


def test_verdict_says_first_when_every_task_is_at_chance_and_names_the_baseline():
    def rows(method, bacc, low, r2, r2_low):
        return [{"method": method, "task": "T", "metric": "balanced_accuracy", "mean": bacc, "ci_low": low,
                 "ci_high": bacc + 0.1, "n": 60, "lower_is_better": False},
                {"method": method, "task": "S", "metric": "r2", "mean": r2, "ci_low": r2_low, "ci_high": r2 + 0.2,
                 "n": 60, "lower_is_better": False}]
    table = pd.DataFrame(rows("anatcl", 0.52, 0.40, -0.2, -0.6) + rows(CEILING, 0.81, 0.70, 0.38, 0.21))
    lines = verdict(table)
    assert lines[0].startswith("Every downstream task is at chance: on all 2 (T, S)")
    assert "reaches T BAcc 0.810, S R² 0.380" in lines[0] and "ceiling is at chance too" not in lines[0]
    flat = pd.DataFrame(rows("anatcl", 0.52, 0.40, -0.2, -0.6) + rows(CEILING, 0.81, 0.70, 0.10, -0.05))
    assert verdict(flat)[0].endswith("reaches T BAcc 0.810: the information is in the anatomy, the features do not "
                                     "carry it. The ceiling is at chance too on S: not learnable by a linear probe "
                                     "from the anatomy at this n.")
    assert lines[-1].startswith("No baseline was given")
    table = pd.DataFrame(rows("anatcl", 0.70, 0.60, -0.2, -0.6) + rows("random-init", 0.5, 0.4, 0.0, -0.3))
    lines = verdict(table)
    assert lines[0] == ("At chance for every method (the 95 % interval reaches 0.5 balanced accuracy or R² 0): S.")
    assert not any("No baseline" in line for line in lines)


def test_synthetic_cohort_gets_a_ceiling_row_computed_on_its_true_anatomy(tiny_downstream, tmp_path):
    ids = read_participants(tiny_downstream).index
    rng = np.random.default_rng(0)
    write_features(make_feature_table(rng.normal(size=(len(ids), 5)), ids), tmp_path / "f.parquet")
    assert main(["evaluate", "tasks", "--features", f"enc={tmp_path / 'f.parquet'}", "--participants",
                 str(tiny_downstream), "--tasks", "synthetic", "--task", "AD-like-vs-CN", "--folds", "3",
                 "--repeats", "1", "--out", str(tmp_path / "tasks")]) == 0
    got = Results.read(tmp_path / "tasks").table.set_index(["method", "metric"])["mean"]
    # the same probe, by hand, on the truth the cohort stores: log GMV, CT, SA of every region
    p = read_participants(tiny_downstream)
    truth = truth_features(p)
    assert truth.shape == (len(ids), 3 * 68)
    mine = evaluate_tasks({"truth": truth}, p, load_tasks("synthetic", select=["AD-like-vs-CN"]), n_splits=3,
                          n_repeats=1).table.set_index(["method", "metric"])["mean"]
    assert got[(CEILING, "balanced_accuracy")] == pytest.approx(mine[("truth", "balanced_accuracy")], abs=1e-12)
    text = build_report([tmp_path / "tasks"], tmp_path / "r.html").read_text()
    assert _headline(text)["AD-like-vs-CN BAcc"][1] == f"{got[(CEILING, 'balanced_accuracy')]:.3f}"
    assert main(["evaluate", "tasks", "--features", f"enc={tmp_path / 'f.parquet'}", "--participants",
                 str(tiny_downstream), "--tasks", "synthetic", "--task", "AD-like-vs-CN", "--folds", "3",
                 "--repeats", "1", "--no-ceiling", "--out", str(tmp_path / "plain")]) == 0
    assert set(Results.read(tmp_path / "plain").table["method"]) == {"enc"}
    plain = pd.DataFrame({"participant_id": ids, "diagnosis": "CN"}).set_index("participant_id")
    assert truth_features(plain) is None  # a table not read from a synthetic cohort has no ceiling


def test_brain_age_section_words_and_an_uninformative_model(world, tmp_path):
    import html
    import json

    feats = world / "runA" / "healthy.parquet"
    out = tmp_path / "brain-age"
    assert main(["brain-age", "--reference", str(feats), "--reference-participants", str(world / "participants.tsv"),
                 "--features", str(feats), "--participants", str(world / "participants.tsv"), "--group-column",
                 "diagnosis", "--control", "CN", "--out", str(out)]) == 0
    text = build_report([out], tmp_path / "r.html").read_text()
    assert "<h3>Brain age: brain-age</h3>" in text and "<th>Hedges' g</th>" in text and "hedges_g" not in text
    assert "Uninformative model" not in text
    assert "uninformative" not in json.loads((out / "brain_age.json").read_text())
    # features that know little of age (r about 0.65): the tool marks its model uninformative (R^2 < 0.5)
    age = pd.read_csv(world / "participants.tsv", sep="\t")["age"].to_numpy()
    rng = np.random.default_rng(3)
    weak = np.c_[age / 10 + rng.normal(0, 2, len(age)), rng.normal(size=len(age))]
    write_features(make_feature_table(weak, read_features(feats).index), tmp_path / "noise.csv")
    noise = tmp_path / "noise-age"
    assert main(["brain-age", "--reference", str(tmp_path / "noise.csv"), "--reference-participants",
                 str(world / "participants.tsv"), "--features", str(tmp_path / "noise.csv"), "--participants",
                 str(world / "participants.tsv"), "--out", str(noise)]) == 0
    why = json.loads((noise / "brain_age.json").read_text())["uninformative"]
    text = build_report([noise], tmp_path / "r2.html").read_text()
    assert f"<li>Brain age (noise-age): {html.escape(why)}.</li>" in text.split("<h2>Brain age")[0]
    assert "<b>Uninformative model:</b>" in text


def test_a_headline_row_from_two_cohorts_says_which_number_comes_from_which(world, tmp_path):
    feats = read_features(world / "runA" / "healthy.parquet")
    task = [Task("AD-vs-CN", "classification", "diagnosis", ("AD",), ("CN",))]
    for cohort in ("adni", "oasis"):
        (tmp_path / cohort).mkdir()
        (tmp_path / cohort / "participants.tsv").write_bytes((world / "participants.tsv").read_bytes())
        evaluate_tasks({"healthy": feats}, read_participants(tmp_path / cohort), task, n_splits=3, n_repeats=1,
                       seed=0 if cohort == "adni" else 1).write(tmp_path / cohort / "tasks")
    text = build_report([tmp_path / "adni" / "tasks", tmp_path / "oasis" / "tasks"], tmp_path / "r.html").read_text()
    row = _headline(text)["AD-vs-CN BAcc"]
    assert row[-1] == ("healthy (adni/tasks): downstream tasks, adni cohort, 1 x 3-fold CV, n = 100; "
                       "healthy (oasis/tasks): downstream tasks, oasis cohort, 1 x 3-fold CV, n = 100")
    for i, cohort in enumerate(("adni", "oasis")):
        t = pd.read_csv(tmp_path / cohort / "tasks" / "results.csv")
        assert row[i] == f"{t.loc[t.metric == 'balanced_accuracy', 'mean'].iloc[0]:.3f}"
    assert "The method name healthy occurs in several tasks results" in text


def test_input_checks_of_two_tables_under_one_name_and_clean_ones():
    from anatlearn.report.levels import input_checks

    def res(check):
        return Results(kind="tasks", table=pd.DataFrame(columns=["method", "task", "metric"]),
                       provenance={"config": {"feature_metadata": {"anatcl": {"input_check": check}}}})
    healthy = {"n_subjects": 160, "n_flagged": 0, "flagged": [], "reference": "last.pt", "skipped": None}
    down = {"n_subjects": 120, "n_flagged": 1, "flagged": ["sub-9"], "reference": "last.pt", "skipped": None}
    lines = input_checks([("openbhb", res(healthy)), ("tasks", res(down)), ("again", res(healthy))])
    assert lines == ["Input check of anatcl as used in tasks (reference: last.pt): 1 of 120 subjects flagged as "
                     "unlike the training data (sub-9).",
                     "Input check: no subject flagged as unlike the training data (anatcl as used in openbhb, 160 "
                     "subjects (reference: last.pt))."]
    skipped = {"n_subjects": None, "n_flagged": None, "flagged": [], "reference": "x", "skipped": "no fingerprint"}
    assert input_checks([("t", res(skipped))]) == ["Input check of anatcl: not run (no fingerprint)."]
    assert input_checks([("t", res(None))]) == []


def test_two_runs_with_the_same_folder_name_are_both_drawn(tmp_path):
    for parent, start in (("a", 5.0), ("b", 9.0)):
        run = tmp_path / parent / "anatcl"
        run.mkdir(parents=True)
        pd.DataFrame({"step": [1, 2], "epoch": [0, 1], "loss": [start, start - 1]}).to_csv(run / "metrics.csv",
                                                                                          index=False)
    text = build_report([tmp_path / "a" / "anatcl", tmp_path / "b" / "anatcl", tmp_path / "a" / "anatcl"],
                        tmp_path / "r.html").read_text()
    assert 'alt="loss curves a/anatcl, b/anatcl"' in text and "was given more than once; it is shown once" in text
