"""Figures of the HTML report, each returned as PNG bytes (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless, deterministic rendering

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

_X_COLUMNS = ("step", "epoch", "iteration")
_SKIP = {"time", "wall_time", "elapsed", "elapsed_s", "lr", "learning_rate", "seconds"}
# metrics.csv's loss columns (anatlearn.pretrain.rundir.METRIC_FIELDS) in words
_TERM_WORDS = {"loss": "total loss", "age": "age term of the loss", "anat": "anatomy term of the loss",
               "contrastive": "contrastive term", "regression": "regression term", "val_mae": "validation MAE"}
# the metric drawn in the per-task bar chart: the paper's headline metric of each task kind
PRIMARY = ("balanced_accuracy", "mae", "roc_auc", "r2")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _integer_axis(ax, xs) -> None:
    """Integer ticks on the x axis; a single epoch gets one tick at its value (not a +-0.05 range of decimals)."""
    xs = np.asarray([x for x in xs if np.isfinite(x)], dtype=float)
    if xs.size and xs.min() == xs.max():
        ax.set_xlim(xs[0] - 0.5, xs[0] + 0.5)
        ax.set_xticks([xs[0]])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _is_throughput(col: str) -> bool:
    c = col.lower()
    return "per_s" in c or "throughput" in c or c.endswith("_s") and "samples" in c


def _per_epoch(metrics: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Mean of every numeric column per epoch (per-step values are noisy at a few steps per epoch)."""
    x_col = next((c for c in ("epoch", "step", "iteration") if c in metrics.columns), None)
    if x_col is None:
        return metrics.assign(row=np.arange(len(metrics))), "row"
    numeric = metrics.select_dtypes("number")
    numeric = numeric.drop(columns=[c for c in _X_COLUMNS if c != x_col and c in numeric.columns])
    return numeric.groupby(x_col, as_index=False).mean(), x_col


def loss_terms(metrics: pd.DataFrame) -> list[str]:
    """The loss terms (and validation scores) of a metrics.csv: numeric columns except the step/epoch
    counters, the learning rate, timings and throughput."""
    return [c for c in metrics.columns if c not in _X_COLUMNS and c.lower() not in _SKIP and not _is_throughput(c)
            and pd.api.types.is_numeric_dtype(metrics[c]) and metrics[c].notna().any()]


def training_curves(runs: dict[str, pd.DataFrame]) -> bytes:
    """One panel per loss term, each on its own y scale, every run a line, per-epoch means against epochs
    (terms differ by orders of magnitude and a shared axis flattens them)."""
    terms = list(dict.fromkeys(t for m in runs.values() for t in loss_terms(m)))
    n = max(1, len(terms))
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.9 * cols, 2.7 * rows), squeeze=False)
    colours = {name: f"C{i % 10}" for i, name in enumerate(runs)}
    for ax, term in zip(axes.flat, terms):
        xs = []
        for name, metrics in runs.items():
            if term not in metrics.columns:
                continue
            per_epoch, x_col = _per_epoch(metrics)
            ok = per_epoch[term].notna().to_numpy()
            xs += list(per_epoch[x_col].to_numpy(float)[ok])
            ax.plot(per_epoch[x_col].to_numpy()[ok], per_epoch[term].to_numpy()[ok], color=colours[name],
                    label=name, marker="." if ok.sum() < 40 else None)
        ax.set_title(_TERM_WORDS.get(term, term.replace("_", " ")), fontsize=9)
        _integer_axis(ax, xs)
        ax.set_xlabel(_per_epoch(next(iter(runs.values())))[1], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="upper center", ncol=min(6, len(labels)), frameon=False,
                   bbox_to_anchor=(0.5, 1.0 + 0.06 / rows))
    fig.tight_layout()
    return _png(fig)


def throughput(runs: dict[str, pd.DataFrame]) -> bytes | None:
    """A small chart of training throughput (samples/s, median per epoch) per run; None without such a column."""
    fig, ax = plt.subplots(figsize=(5.0, 2.2))
    drawn, xs = False, []
    for i, (name, metrics) in enumerate(runs.items()):
        col = next((c for c in metrics.columns if _is_throughput(c)), None)
        if col is None:
            continue
        x_col = "epoch" if "epoch" in metrics.columns else None
        per = metrics.groupby(x_col)[col].median() if x_col else metrics[col]
        ax.plot(per.index.to_numpy(), per.to_numpy(), color=f"C{i % 10}", label=name, lw=1,
                marker="o" if len(per) < 40 else None, ms=3)  # one epoch is one point: a line alone is invisible
        xs += list(np.asarray(per.index, dtype=float))
        ax.set_ylabel("samples per second" if "samples" in col else col.replace("_", " "), fontsize=8)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch", fontsize=8)
    _integer_axis(ax, xs)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=7)
    ax.set_title("throughput (median per epoch)", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    return _png(fig)


def anatomy_bars(table: pd.DataFrame, rank_max: dict[str, float] | None = None) -> bytes:
    """Anatomy recovery: R^2 per target family (grouped bars, one per method) and RankMe per method, with its
    maximum (``rank_max``: method -> min(subjects, features)) marked where known."""
    r2 = table[(table["task"] == "anatomy recovery")]
    rank = table[(table["task"] == "effective rank") & (table["metric"] == "rankme")]
    fams = list(dict.fromkeys(r2["metric"]))
    methods = list(dict.fromkeys(table["method"]))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        g = r2[r2["method"] == m].set_index("metric").reindex(fams)
        ax.bar(np.arange(len(fams)) + (j - (len(methods) - 1) / 2) * width, g["mean"].to_numpy(float), width,
               label=m, color=f"C{j % 10}")
    ax.set_xticks(np.arange(len(fams)), [f.removeprefix("r2_") for f in fams])
    ax.set_ylabel("cross-validated R² (mean over targets)")
    ax.set_title("anatomy recovery (higher: more anatomy in the features)", fontsize=9)
    ax.axhline(0, color="grey", lw=0.8)
    ax.grid(axis="y", alpha=0.3)
    g = rank.set_index("method").reindex(methods)
    ax2.barh(np.arange(len(methods)), g["mean"].to_numpy(float), height=0.5,
             color=[f"C{j % 10}" for j in range(len(methods))])
    maxima = [(j, (rank_max or {}).get(m)) for j, m in enumerate(methods) if (rank_max or {}).get(m)]
    if maxima:
        ax2.plot([v for _, v in maxima], [j for j, _ in maxima], "k|", ms=18, mew=2,
                 label="maximum: min(subjects, features)")
        ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
    ax2.set_yticks(np.arange(len(methods)), methods, fontsize=7)
    ax2.set_ylim(len(methods) - 0.4, -0.6)  # top to bottom, bars of one height whatever the number of methods
    ax2.set_xlabel("RankMe (effective rank)")
    ax2.set_title("effective rank of the features", fontsize=9)
    ax2.grid(axis="x", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="upper center", ncol=min(5, len(methods)),
               frameon=False, bbox_to_anchor=(0.5, 1.12))
    fig.tight_layout()
    return _png(fig)


def age_scatter(pred: pd.DataFrame, title: str) -> bytes:
    """Predicted vs true age per test split, with the identity line."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for split, marker in (("internal_test", "o"), ("external_test", "^")):
        g = pred[pred["split"] == split]
        if len(g):
            mae = float(np.mean(np.abs(g["age"] - g["age_pred"])))
            ax.scatter(g["age"], g["age_pred"], s=10, alpha=0.6, marker=marker, label=f"{split} (MAE {mae:.2f})")
    lo, hi = float(pred["age"].min()), float(pred["age"].max())
    ax.plot([lo, hi], [lo, hi], color="k", lw=1)
    ax.set_xlabel("true age (years)")
    ax.set_ylabel("predicted age (years)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _png(fig)


def site_confusion(labels: list[str], matrix, title: str) -> bytes:
    """Row-normalised confusion matrix of the site classifier on the internal test set."""
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = min(8.0, 2.5 + 0.3 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="viridis")
    ticks = np.arange(len(labels))
    fontsize = 7 if len(labels) <= 20 else 4
    ax.set_xticks(ticks, labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, labels, fontsize=fontsize)
    ax.set_xlabel("predicted site")
    ax.set_ylabel("true site")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true site")
    return _png(fig)


def embed_2d(X: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """A 2-D map of the rows of X: UMAP if the package is installed, else t-SNE (scikit-learn); both on
    standardised features."""
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    Z = StandardScaler().fit_transform(X)
    # one thread: on a shared, busy CPU OpenMP threads spin and make t-SNE ~10x slower (measured 3.5 s vs 0.34 s
    # for 120 subjects at load 5 on 2 cores); a few thousand points are fast on one core.
    with threadpool_limits(1):
        try:
            import umap  # optional dependency

            return umap.UMAP(random_state=seed).fit_transform(Z), "UMAP"
        except ImportError:
            from sklearn.manifold import TSNE

            perplexity = float(max(2.0, min(30.0, (len(Z) - 1) / 3)))
            return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(Z), "t-SNE"


def embedding_map(coords: np.ndarray, method_name: str, colours: dict[str, pd.Series], algo: str) -> bytes:
    """One panel per colouring variable: continuous ones (age) with a colour bar, categorical ones (site,
    diagnosis) with a legend."""
    panels = colours or {"": pd.Series(np.zeros(len(coords)))}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (name, values) in zip(axes[0], panels.items()):
        v = values.to_numpy()
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:
            sc = ax.scatter(coords[:, 0], coords[:, 1], c=v, s=8, cmap="viridis")
            fig.colorbar(sc, ax=ax, fraction=0.046, label=name)
        else:
            cats = pd.Series(v).astype(str)
            for cat in sorted(cats.unique())[:20]:
                sel = (cats == cat).to_numpy()
                ax.scatter(coords[sel, 0], coords[sel, 1], s=8, label=cat, alpha=0.8)
            ax.legend(fontsize=6, markerscale=1.5)
        ax.set_title(f"{method_name}: {name}" if name else method_name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{algo} of the features", fontsize=9)
    return _png(fig)


_METRIC_WORDS = {"balanced_accuracy": "balanced accuracy", "roc_auc": "ROC AUC", "mae": "mean absolute error",
                 "r2": "R²"}
_CHANCE = {"balanced_accuracy": (0.5, "chance (0.5)"), "roc_auc": (0.5, "chance (0.5)"),
           "r2": (0.0, "predicting the mean (0)")}


def _method_bars(ax, t: pd.DataFrame, tasks: list[str], methods: list[str]) -> None:
    """One bar per method at each task, 95 % intervals as error bars; a ceiling (method ``ceiling: ...``)
    hatched and grey, so it does not read as one more method."""
    width = 0.8 / max(1, len(methods))
    colour = 0
    for j, m in enumerate(methods):
        g = t[t["method"] == m].set_index("task").reindex(tasks)
        mean = g["mean"].to_numpy(float)
        err = np.vstack([mean - g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float) - mean])
        err = np.where(np.isfinite(err), err, 0.0)
        x = np.arange(len(tasks)) + (j - (len(methods) - 1) / 2) * width
        if str(m).startswith("ceiling:"):
            ax.bar(x, mean, width, label=m, color="#d9d9d9", hatch="//", edgecolor="#777")
        else:
            ax.bar(x, mean, width, label=m, color=f"C{colour % 10}")
            colour += 1
        # errorbar apart: bar(yerr=) on a single task trips a NumPy deprecation inside matplotlib
        ax.errorbar(x, mean, yerr=err, fmt="none", ecolor="k", elinewidth=0.8, capsize=2)
    ax.set_xticks(np.arange(len(tasks)), tasks, rotation=20 if len(tasks) > 1 else 0,
                  ha="right" if len(tasks) > 1 else "center", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def task_bars(table: pd.DataFrame, metric: str) -> bytes:
    """Grouped bars: tasks on the x axis, one bar per method, 95 % intervals as error bars, the chance level
    (or R² 0) as a line named in the legend. MAE, in each task's own units (an MMSE point against a PANSS
    point), gets one panel per task, each on its own scale."""
    t = table[table["metric"] == metric]
    tasks = list(dict.fromkeys(t["task"]))
    methods = list(dict.fromkeys(t["method"]))
    panels = [[k] for k in tasks] if metric == "mae" and len(tasks) > 1 else [tasks]
    per = max(2.6, 0.5 * len(methods) + 1.6)
    width = per * len(panels) + 1.5 if len(panels) > 1 else max(4.5, 0.6 * len(tasks) * max(1, len(methods)) + 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.6), squeeze=False)
    better = "lower is better" if metric == "mae" else "higher is better"
    for ax, group in zip(axes[0], panels):
        _method_bars(ax, t, group, methods)
        if metric in _CHANCE:
            level, words = _CHANCE[metric]
            ax.axhline(level, color="grey", lw=1, ls="--", label=words)
        if metric in ("balanced_accuracy", "roc_auc"):
            ax.set_ylim(0, 1)  # bounded metrics: intervals of a few folds can reach past [0, 1]
    axes[0][0].set_ylabel(f"{_METRIC_WORDS.get(metric, metric)} ({better})")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside the bars
    fig.tight_layout()
    return _png(fig)
