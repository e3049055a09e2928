"""The study's grid: settings, methods, seeds, budgets and ablation variants (the protocol of docs/study.md).

A *cell* is one pretraining run (method, variant, seed) evaluated at several *budgets* (epochs along the
same run); a *unit* is one (cell, budget) evaluation. ``random-init`` cells are evaluated once, at budget 0.
The full grid is the pre-registered one; ``quick`` is the same path at toy size for tests and smoke runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from anatlearn.errors import ConfigError

RANDOM_INIT = "random-init"
CONTROL = "gmv-regression"
MAIN_METHODS = ("anatcl-global", "anatcl-local", "yaware", "simclr", "l1-age")
ANATCL_METHODS = ("anatcl-global", "anatcl-local")
# The objectives that learn the descriptors directly (issue 28; run 3, docs/study.md Part 6).
REGRESSION_OBJECTIVES = ("descriptor-regression", "anatcl-regression")
# Methods whose TrainConfig takes the grid's lambda_reg.
LAMBDA_REG_METHODS = ("anatcl-regression",)
# The pre-registered lambda_reg grid of run 3's selection (docs/study.md Part 6), fixed before it ran.
LAMBDA_REG_GRID = (0.1, 0.3, 1.0, 3.0)
# Methods trained without augmentation in the main grid (regression baselines, as in the demo).
UNAUGMENTED = ("l1-age", CONTROL)

# Ablation variants: TrainConfig overrides applied to the base configuration, one factor at a time.
VARIANTS: dict[str, dict] = {
    "no-aug": {"augment": []},
    "clamp": {"weight_map": "clamp"},
    "kernel": {"weight_map": "kernel"},
    "lambda-0.5": {"lambda_anat": 0.5},
    "lambda-2": {"lambda_anat": 2.0},
    "minmax": {"normalise": "minmax"},
    # the follow-up grid "views" (docs/study.md, Part 4): which part of the augmentation costs anatomy
    "crop-only": {"augment": ["crop"]},
    "noise-only": {"augment": ["noise"]},
    # run 3's lambda_reg selection (docs/study.md Part 6)
    **{f"lambda-reg-{v:g}": {"lambda_reg": v} for v in LAMBDA_REG_GRID},
}
PREREGISTERED_VARIANTS = ("no-aug", "clamp", "kernel", "lambda-0.5", "lambda-2", "minmax")
ABLATIONS: dict[str, tuple[str, ...]] = {
    "anatcl-global": PREREGISTERED_VARIANTS,
    "anatcl-local": PREREGISTERED_VARIANTS,
    "yaware": ("no-aug",),
}
BASE = "base"


@dataclass(frozen=True)
class StudySettings:
    """Everything that fixes what the study computes (written to ``study.json``; a resumed study must
    match it)."""
    n_pretrain: int = 400
    n_validation: int = 120
    n_downstream: int = 240
    shape: tuple = (48, 56, 48)
    n_sites: int = 5
    world_seed: int = 0
    width: float = 0.25
    batch_size: int = 16
    lr: float = 5e-4
    augment: tuple = ("crop", "noise")
    seeds: tuple = (0, 1, 2)
    budgets: tuple = (10, 30, 100)
    ablation_budgets: tuple = (10, 30)
    selection_budget: int = 30
    methods: tuple = MAIN_METHODS
    ablations: tuple = tuple((m, v) for m, vs in ABLATIONS.items() for v in vs)
    control: bool = True
    n_splits: int = 5
    n_repeats: int = 5
    n_boot: int = 200
    control_margin: float = 0.05
    lambda_reg: float = 1.0  # of anatcl-regression; run 3's is set by its pre-registered selection

    def to_dict(self) -> dict:
        return json_ready(dataclasses.asdict(self))


def json_ready(obj):
    """Tuples as lists, recursively (what a JSON round trip gives), so settings compare equal after reading."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj


FULL = StudySettings()
MAIN = dataclasses.replace(FULL, ablations=())
QUICK = StudySettings(n_pretrain=40, n_validation=20, n_downstream=32, shape=(32, 40, 32), n_sites=4, width=0.125,
                      batch_size=8, seeds=(0, 1), budgets=(1, 2), ablation_budgets=(1,), selection_budget=1,
                      methods=("anatcl-global",), ablations=(("anatcl-global", "kernel"),), control=True,
                      n_splits=2, n_repeats=1, n_boot=20)
# The views follow-up (docs/study.md, Part 4): the augmented views split into their two parts for AnatCL-global
# and y-Aware, at the ablations' budgets; paired with the full grid's base (crop + noise) and no-aug cells of
# the same seeds on the same (regenerated, identical) cohorts.
VIEWS = dataclasses.replace(FULL, methods=(), control=False, budgets=(10, 30),
                            ablations=tuple((m, v) for m in ("anatcl-global", "yaware")
                                            for v in ("crop-only", "noise-only")))
# The replication (docs/study.md, Part 5) of the full grid's one called difference between AnatCL and y-Aware:
# the selected configurations (the released recipe's two identical views, as each method's
# base here) on three new pretraining seeds, at the selection budget and at 100 epochs.
REPLICATION = dataclasses.replace(FULL, methods=("anatcl-global", "anatcl-local", "yaware"), augment=(),
                                  control=False, ablations=(), seeds=(3, 4, 5), budgets=(30, 100))
# Run 3 (docs/study.md Part 6): the released views for every method, AnatCL and y-Aware against the two
# objectives that learn the descriptors, on new seeds; its lambda_reg comes from RUN3_SELECT (seed 9, 30
# epochs, the healthy validation cohort's GMV recovery), written into RUN3 by the documented procedure.
RUN3 = dataclasses.replace(FULL, methods=("anatcl-global", "anatcl-local", "yaware", *REGRESSION_OBJECTIVES),
                           augment=(), control=False, ablations=(), seeds=(6, 7, 8), budgets=(30, 100),
                           lambda_reg=0.1)  # = losses.anatcl_regression.LAMBDA_REG (tests/study/test_grid.py)
# Its own lambda_reg stays the default fixed in advance (each variant sets its value), so writing the
# choice into RUN3 leaves the selection study's settings as they were.
RUN3_SELECT = dataclasses.replace(RUN3, methods=(), seeds=(9,), budgets=(30,), ablation_budgets=(30,), lambda_reg=1.0,
                                  ablations=tuple(("anatcl-regression", f"lambda-reg-{v:g}") for v in LAMBDA_REG_GRID))
GRIDS = {"full": FULL, "main": MAIN, "views": VIEWS, "replication": REPLICATION, "run3": RUN3,
         "run3-select": RUN3_SELECT, "quick": QUICK}


@dataclass(frozen=True)
class Cell:
    """One pretraining run of the grid: ``method`` with ablation ``variant`` at pretraining ``seed``."""
    method: str
    variant: str
    seed: int
    budgets: tuple
    group: str  # "main", "control", "ablation" or "reference"
    overrides: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        """The configuration's name: the method, plus ``+variant`` for an ablation."""
        return self.method if self.variant == BASE else f"{self.method}+{self.variant}"

    @property
    def id(self) -> str:
        return f"{self.name}/seed-{self.seed}"

    def with_budgets(self, budgets) -> "Cell":
        return dataclasses.replace(self, budgets=tuple(sorted(set(budgets))), overrides=dict(self.overrides))


def grid_settings(grid: str) -> StudySettings:
    if grid not in GRIDS:
        raise ConfigError(f"unknown --grid {grid!r}; choose one of {', '.join(GRIDS)}")
    return GRIDS[grid]


def base_overrides(method: str, s: StudySettings) -> dict:
    """TrainConfig values of a method's base configuration in the study."""
    values = {"augment": [] if method in UNAUGMENTED else list(s.augment)}
    if method in LAMBDA_REG_METHODS:
        values["lambda_reg"] = s.lambda_reg
    return values


def build_cells(s: StudySettings) -> list[Cell]:
    """Every cell of the grid, random init first (it is also the timing probe of the evaluation), then the
    main methods, the positive control and the ablations; seeds vary fastest within a configuration."""
    cells = [Cell(RANDOM_INIT, BASE, seed, (0,), "reference") for seed in s.seeds]
    methods = [(m, "main") for m in s.methods] + ([(CONTROL, "control")] if s.control else [])
    for method, group in methods:
        cells += [Cell(method, BASE, seed, tuple(s.budgets), group, base_overrides(method, s)) for seed in s.seeds]
    for method, variant in s.ablations:
        if variant not in VARIANTS:
            raise ConfigError(f"unknown ablation variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        over = {**base_overrides(method, s), **VARIANTS[variant]}
        cells += [Cell(method, variant, seed, tuple(s.ablation_budgets), "ablation", over) for seed in s.seeds]
    return cells


def stages(cells, selection_budget: int = 30) -> list[list[Cell]]:
    """The order in which the runner trains ``cells``, as stages; a stage takes each of its cells only up
    to the stage's budget (a later budget resumes the cell's own run in a later stage). The positive
    control and the main methods go first, budget by budget up to the selection budget, then the
    ablations, then the budgets beyond it (the runner puts the selected variants' extension before those).
    Within a stage the control comes first (it gates every comparison), then the main methods seed by seed
    (after each seed round every method has one more paired seed).

    Only the order changes, never a number: each cell is seeded by its own seed, and a later budget is
    always an exact resume of the cell's own run (tests/study/test_resume.py), staged or not. What it
    buys on a slow machine is that the decisive comparison (control and main grid at the selection
    budget) is on disk hours before the ablations and the longest budget are."""
    rank = {"control": 0, "main": 1, "ablation": 2}
    trained = [c for c in cells if c.method != RANDOM_INIT]
    keys = sorted({(cap > selection_budget, c.group == "ablation", cap) for c in trained for cap in c.budgets})
    out = []
    for _, ablation, cap in keys:
        stage = [c.with_budgets(b for b in c.budgets if b <= cap) for c in trained
                 if cap in c.budgets and (c.group == "ablation") == ablation]
        stage.sort(key=lambda c: (rank.get(c.group, 3), c.seed if c.group == "main" else 0))
        out.append(stage)
    return out


def n_units(cells) -> int:
    return sum(len(c.budgets) for c in cells)


def training_epochs(cells) -> int:
    """Epochs to train over all cells (each cell runs to its largest budget once)."""
    return sum(max(c.budgets) for c in cells if c.method != RANDOM_INIT)


def settings_from_dict(values: dict) -> StudySettings:
    """The settings written to study.json, read back (lists become the tuples of the dataclass)."""
    known = {f.name for f in dataclasses.fields(StudySettings)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"study.json: unknown settings {sorted(unknown)}")

    def tup(v):
        return tuple(tup(x) for x in v) if isinstance(v, list) else v
    return StudySettings(**{k: tup(v) for k, v in values.items()})
