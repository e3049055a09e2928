"""``anatlearn evaluate openbhb|tasks|icc|anatomy``: linear evaluation of feature tables."""

from __future__ import annotations

from pathlib import Path

import typer

from anatlearn.cli import app
from anatlearn.errors import ConfigError
from anatlearn.progress import progress

evaluate_app = typer.Typer(help="Evaluate frozen features: OpenBHB protocol, downstream tasks, test-retest ICC, "
                           "anatomy recovery.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")

FEATURES_HELP = "Feature table, as NAME=PATH or PATH (name = file stem); repeat to compare methods."


def named_tables(specs: list[str], read, duplicate: str, tables: dict | None = None) -> dict:
    """``NAME=PATH`` or ``PATH`` strings (name: the file's stem) -> {name: read(path)}, added to ``tables``;
    a name given twice is an error (``duplicate``, formatted with the name)."""
    tables = {} if tables is None else tables
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).stem, spec
        if name in tables:
            raise ConfigError(duplicate.format(name))
        tables[name] = read(path)
    return tables


def parse_feature_args(specs: list[str]) -> dict:
    """``NAME=PATH`` or ``PATH`` strings -> {name: feature table}; duplicate names are an error."""
    from anatlearn.features import read_features

    tables = named_tables(specs, read_features, "--features: method name {!r} given twice; use NAME=PATH to tell "
                                                "them apart")
    if not tables:
        raise ConfigError("give at least one --features table")
    return tables


OVERWRITE_HELP = "Replace an existing --out whole (default: an existing output is refused)."


def check_out(out: Path | None, kind: str = "dir", overwrite: bool = False) -> None:
    """Fail before any work if ``--out`` cannot be written or already holds results and ``overwrite`` is off
    (anatlearn.io.refuse_existing)."""
    from anatlearn.io import refuse_existing

    if out is not None:
        refuse_existing(out, kind, overwrite, "--out")


def _finish(results, out: Path | None, overwrite: bool = False, also=None) -> None:
    """Print the table; write the results (and ``also(folder)``) into a fresh --out that replaces any old one whole."""
    from anatlearn.io import new_output

    typer.echo(results.format_table())
    if out is not None:
        with new_output(out, "dir", overwrite, "--out") as folder:
            results.write(folder)
            if also is not None:
                also(folder)
        typer.echo(f"wrote {out}/results.csv and results.json")


@evaluate_app.command("openbhb")
def openbhb_command(
    features: list[str] = typer.Option(..., "--features", help=FEATURES_HELP),
    participants: Path = typer.Option(..., "--participants", help="participants.tsv (or its dataset directory) with split, age, site."),
    out: Path = typer.Option(None, "--out", help="Results directory (results.csv, results.json, predictions.csv)."),
    seed: int = typer.Option(0, help="Seed of the CV folds and bootstrap."),
    folds: int = typer.Option(5, "--folds", help="Folds of the inner CV choosing alpha / C on train."),
    site_column: str = typer.Option("site", "--site-column", help="Site column (OpenBHB also has siteXacq)."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples for the 95 % intervals."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Brain age (Ridge: MAE internal/external), site (logistic: balanced accuracy), challenge score."""
    from anatlearn.evaluate import evaluate_openbhb, read_participants

    check_out(out, overwrite=overwrite)
    results = evaluate_openbhb(parse_feature_args(features), read_participants(participants), seed=seed, cv=folds,
                               site_column=site_column, n_boot=n_boot)
    _finish(results, out, overwrite)


@evaluate_app.command("tasks")
def tasks_command(
    features: list[str] = typer.Option(..., "--features", help=FEATURES_HELP),
    participants: Path = typer.Option(..., "--participants", help="Labels table (.tsv/.csv/.parquet) with participant_id."),
    tasks: str = typer.Option(..., "--tasks", help="A preset (adni, oasis3, schizconnect, abide, synthetic) or a TOML task file."),
    task: list[str] = typer.Option(None, "--task", help="Only these tasks (repeatable)."),
    column: list[str] = typer.Option(None, "--column", help="Map a preset's canonical column: CANONICAL=YOURS (repeatable)."),
    folds: int = typer.Option(5, help="Outer stratified folds."),
    repeats: int = typer.Option(5, help="Repeats of the outer K-fold."),
    seed: int = typer.Option(0, help="Seed of the splits."),
    stratify_site: str = typer.Option(None, "--stratify-site", help="Also stratify folds by this site column."),
    interval: str = typer.Option("corrected", help="95 % interval: corrected (Nadeau-Bengio) or repeats."),
    out: Path = typer.Option(None, "--out", help="Results directory (results.csv, folds.csv, paired.csv, results.json)."),
    save_probes: bool = typer.Option(False, "--save-probes", help="Also refit each probe on every subject of its "
                                     "task: OUT/probes/METHOD/TASK.json, for `anatlearn predict --features`."),
    ceiling: bool = typer.Option(True, "--ceiling/--no-ceiling", help="On a synthetic cohort (from `anatlearn "
                                 "synth`), also probe its true anatomy on the same folds: the row 'ceiling: true "
                                 "anatomy'."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Linear probes of every feature table on every task, with intervals and paired tests."""
    from anatlearn.evaluate import evaluate_tasks, load_tasks, read_participants
    from anatlearn.evaluate.downstream import truth_features

    if save_probes and out is None:
        raise ConfigError("--save-probes needs --out (the probes go to OUT/probes/)")
    check_out(out, overwrite=overwrite)
    mapping = {}
    for item in column or []:
        canonical, sep, actual = item.partition("=")
        if not sep or not canonical or not actual:
            raise ConfigError(f"--column {item!r}: expected CANONICAL=YOURS")
        mapping[canonical] = actual
    task_list = load_tasks(tasks, columns=mapping or None, select=task or None)
    tables = parse_feature_args(features)
    labels = read_participants(participants)
    truth = truth_features(labels) if ceiling else None
    # a bar on a terminal (one step per task and feature table), nothing in a log
    with progress("probing", total=len(task_list) * (len(tables) + (truth is not None))) as bar:
        results = evaluate_tasks(tables, labels, task_list, n_splits=folds,
                                 n_repeats=repeats, seed=seed, site_column=stratify_site, interval=interval,
                                 progress=lambda msg: bar.advance(1, description=f"probing {msg}"), ceiling=truth)
    saved = []
    if save_probes:
        from anatlearn.evaluate.saved_probes import save_probes as save

        def also(folder):
            saved.extend(save(tables, labels, task_list, folder / "probes", seed=seed))
    _finish(results, out, overwrite, also if save_probes else None)
    if save_probes:
        typer.echo(f"wrote {len(saved)} probe(s) fitted on every subject of their task to {out / 'probes'}")
    if results.paired is not None and len(results.paired):
        typer.echo("\npaired tests (corrected resampled t-test, Nadeau & Bengio 2003):")
        typer.echo(results.paired.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


@evaluate_app.command("icc")
def icc_command(
    features: list[str] = typer.Option(..., "--features", help="Feature table of the first session, [NAME=]PATH; "
                                       "repeat to compare methods."),
    retest: list[str] = typer.Option(..., "--retest", help="Feature table of the second session (same subjects), "
                                     "[NAME=]PATH with the same names as --features."),
    kind: str = typer.Option("agreement", help="ICC(2,1) 'agreement' or ICC(3,1) 'consistency'."),
    out: Path = typer.Option(None, "--out", help="Results directory (results.csv, results.json with every feature's ICC)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Test-retest intraclass correlation of every feature: median and quartiles per method."""
    from anatlearn.evaluate import read_features
    from anatlearn.evaluate.icc import evaluate_icc

    check_out(out, overwrite=overwrite)
    test_tables = parse_feature_args(features)
    retest_tables = named_tables(retest, read_features, "--retest: method name {!r} given twice")
    results = evaluate_icc(test_tables, retest_tables, kind)
    for name, info in results.extra["methods"].items():
        if info["unscored"]:
            shown = ", ".join(info["unscored"][:5]) + (", ..." if len(info["unscored"]) > 5 else "")
            typer.echo(f"{name}: {len(info['unscored'])} of {info['n_features']} features are constant in both "
                       f"sessions and have no ICC ({shown}; all listed in results.json)", err=True)
    _finish(results, out, overwrite)


@evaluate_app.command("anatomy")
def anatomy_command(
    features: list[str] = typer.Option(..., "--features", help=FEATURES_HELP),
    truth: Path = typer.Option(None, "--truth", help="A synthetic cohort (from `anatlearn synth`): targets are its true "
                               "log regional GMV, CT, SA and latent factors (truth/)."),
    targets: list[str] = typer.Option(None, "--targets", help="A table of anatomical targets (participant_id + numeric "
                                      "columns, e.g. FreeSurfer regional volumes), NAME=PATH or PATH (repeatable)."),
    folds: int = typer.Option(5, help="Folds of the cross-validation over subjects."),
    seed: int = typer.Option(0, help="Seed of the folds."),
    out: Path = typer.Option(None, "--out", help="Results directory (results.csv, results.json)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Anatomy recovery: cross-validated ridge R^2 from the features to regional anatomy; RankMe effective rank."""
    from anatlearn.evaluate import read_targets, truth_targets
    from anatlearn.evaluate.anatomy_recovery import evaluate_anatomy

    check_out(out, overwrite=overwrite)
    if truth is None and not targets:
        raise ConfigError("give --truth COHORT (a synthetic cohort with truth/) or --targets TABLE")
    families = dict(truth_targets(truth)) if truth is not None else {}
    families = named_tables(targets or [], read_targets, "--targets: name {!r} given twice; use NAME=PATH", families)
    _finish(evaluate_anatomy(parse_feature_args(features), families, n_splits=folds, seed=seed), out, overwrite)
