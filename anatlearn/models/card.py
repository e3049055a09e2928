"""Hub-format model folders: ``model.safetensors``, ``config.json`` and ``README.md`` (a model card).

The layout is the one Hugging Face Hub model repositories use, so a folder written by :func:`export_folder`
can be uploaded as it is and read back with ``load_pretrained("hf-hub:ORG/NAME")``:

    DIR/model.safetensors   the weights (encoder and head), no pickle
    DIR/config.json         architecture, width, input grid and preprocessing, method and its settings,
                            the anatlearn version (``"format": "anatlearn-hub"``)
    DIR/README.md           model card: YAML front matter (license, tags, library_name), intended use,
                            training data and its size, the pretraining recipe, evaluation results, limitations,
                            citation (Mitchell et al. 2019, "Model Cards for Model Reporting", FAT*)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from anatlearn.errors import CheckpointError, DataError
from anatlearn.models.checkpoint import (CONFIG_FILE, HUB_FORMAT, WEIGHTS_FILE, export_safetensors,  # noqa: F401
                                         is_hub_folder, load_checkpoint, read_hub_folder)

HUB_FORMAT_VERSION = 1
CARD_FILE = "README.md"

CITATION = """@article{barbano2026anatomical,
  title   = {Anatomical foundation models for brain MRIs},
  author  = {Barbano, Carlo Alberto and Brunello, Matteo and Dufumier, Benoit and Grangetto, Marco},
  journal = {Pattern Recognition Letters},
  volume  = {199},
  pages   = {178--184},
  year    = {2026},
  doi     = {10.1016/j.patrec.2025.11.028},
  note    = {arXiv:2408.07079}
}"""

# The input the released AnatCL weights were trained on (docs/getting-data.md, "The 121x128x121 question").
VBM_INPUT = {"shape": [121, 145, 121], "voxel_mm": 1.5, "space": "MNI152, the SPM12/CAT12 TPM grid",
             "affine": [[-1.5, 0.0, 0.0, 90.0], [0.0, 1.5, 0.0, -126.0], [0.0, 0.0, 1.5, -72.0], [0, 0, 0, 1]],
             "preprocessing": "CAT12 VBM modulated gray-matter map (mwp1), no intensity normalisation",
             "center_crop": None}
QUASIRAW_INPUT = {"shape": [182, 218, 182], "voxel_mm": 1.0, "space": "MNI152, the FSL 1 mm grid",
                  "preprocessing": "quasi-raw T1w (OpenBHB): N4 bias correction, affine to MNI, skull-stripped",
                  "center_crop": None}
# The recipe of the released checkpoints: the settings spelled out in their run names
# (resnet18_amp_yaware_adam_tf_none_lr0.0001_step_step10_rate0.9_wd5e-05_bsz32_trainall_False_temp0.1_
# views2_kernel_rbf_sigma2.0_alpha1.0_anat_desikan_normTrue_..._lambd1.0_fold{k}_splits5).
RELEASED_SETTINGS = {"optimizer": "adam", "lr": 1e-4, "lr_step": 10, "lr_gamma": 0.9, "weight_decay": 5e-5,
                     "batch_size": 32, "temperature": 0.1, "views": 2, "kernel": "rbf", "sigma": 2.0,
                     "atlas": "desikan", "augment": [], "amp": True, "lambda": 1.0}


# The released weights' inputs are checked against the approximate CAT12 VBM reference shipped with
# anatlearn (anatlearn/inputcheck/released_vbm.json); their config.json names it rather than copying it.
RELEASED_FINGERPRINT = "anatcl-released-vbm"


def _released_variant(source: str) -> dict:
    """Variant and fold of a released checkpoint (:func:`anatlearn.data.lineage.released_variant`)."""
    from anatlearn.data.lineage import released_variant

    return released_variant(source)


def _training_data(meta: dict) -> dict:
    """Where an anatlearn checkpoint's training data was, its size and volume grid: as the run recorded them
    (``training_data`` in the checkpoint), else read from the data directory if it is still there; a cohort
    of ``anatlearn synth`` (``truth/world.json``) is marked synthetic."""
    cfg = meta.get("config") or {}
    recorded = meta.get("training_data") or {}
    out = {"name": str(cfg.get("data") or "unknown"), "split": cfg.get("split") or None,
           "modality": cfg.get("modality", "vbm"), "n_subjects": None, "shape": None,
           "synthetic": recorded.get("synthetic")}
    if recorded:
        out["split"], out["n_subjects"] = recorded.get("split"), recorded.get("n_subjects")
    if cfg.get("data") and out["synthetic"] is None:
        world = Path(cfg["data"]) / "truth" / "world.json"
        if world.is_file():
            info = json.loads(world.read_text())
            params = info.get("params") or {}
            out["synthetic"] = {"world": info.get("world"), "n_subjects": params.get("n_subjects"),
                                "seed": params.get("seed")}
    if cfg.get("data"):
        from anatlearn.data import open_dataset
        from anatlearn.errors import AnatlearnError

        try:
            dataset = open_dataset(cfg["data"], split=cfg.get("split") or None, modality=out["modality"],
                                   require_age=False)
            out["n_subjects"] = out["n_subjects"] or len(dataset)
            out["shape"] = [int(s) for s in dataset.shape]
        except (AnatlearnError, OSError):
            pass  # moved or deleted since training: the card says the size is unknown
    return out


def build_config(net, source: str) -> dict:
    """The ``config.json`` of ``net`` (a loaded :class:`ContrastiveModel` with its ``checkpoint_meta``)."""
    from anatlearn.provenance import versions

    meta = dict(getattr(net, "checkpoint_meta", {}) or {})
    model_config = dict(net.model_config)
    from anatlearn.data.lineage import encoder_sha256

    base = {"format": HUB_FORMAT, "format_version": HUB_FORMAT_VERSION, "library_name": "anatlearn",
            "architecture": model_config["encoder"], "width": model_config.get("width", 1.0),
            "encoder_sha256": encoder_sha256(net),  # the identity feature tables record (anatlearn.data.lineage)
            "representation_size": int(net.encoder.out_features), "model_config": model_config,
            "anatlearn_version": versions()["anatlearn"], "source": Path(source).name if source else None}
    if meta.get("format") == HUB_FORMAT:  # re-export of a Hub folder: its description carries over
        return {**meta["hub_config"], "anatlearn_version": base["anatlearn_version"]}
    if meta.get("format") == "anatlearn":  # trained (or exported) by anatlearn
        cfg = meta.get("config") or {}
        data = _training_data(meta)
        grid = dict(QUASIRAW_INPUT if data["modality"] == "quasiraw" else VBM_INPUT)
        recorded = meta.get("input") or (meta.get("finetune") or {}).get("input")  # the grid it was trained on
        if isinstance(recorded, dict) and recorded.get("shape"):
            data["shape"] = [int(s) for s in recorded["shape"]]
        if data["shape"] and data["shape"] != grid["shape"]:  # e.g. a synthetic cohort on a coarser grid
            grid = {"shape": data["shape"], "voxel_mm": None, "space": "the training data's space",
                    "preprocessing": "the training data's preprocessing", "center_crop": None}
        if isinstance(recorded, dict) and recorded.get("shape"):
            grid.update(affine=recorded.get("affine"), recorded=True)  # from the checkpoint (anatlearn.data.lineage)
        keys = ("epochs", "batch_size", "lr", "weight_decay", "lr_step", "lr_gamma", "temperature", "kernel",
                "sigma", "lambda_age", "lambda_anat", "descriptors", "atlas", "normalise", "weight_map", "views",
                "augment", "seed")
        return {**base, "input": grid, "method": cfg.get("method", meta.get("method", "unknown")),
                "method_settings": {k: cfg[k] for k in keys if k in cfg}, "training_data": data,
                "released": None, "input_fingerprint": meta.get("input_fingerprint")}
    released = _released_variant(source or "")
    variant = released["variant"]
    if variant is None and not str(source).endswith(".pth"):  # neither anatlearn's nor a released checkpoint
        return {**base, "input": VBM_INPUT, "method": "unknown", "method_settings": {}, "released": None,
                "training_data": {"name": "unknown", "split": None, "modality": "vbm", "n_subjects": None,
                                  "shape": None, "note": "not recorded with the weights"}}
    return {**base, "input": VBM_INPUT, "method": f"anatcl-{variant}" if variant else "anatcl",
            "method_settings": RELEASED_SETTINGS,
            "training_data": {"name": "OpenBHB (Dufumier et al. 2022), CAT12 VBM", "split": "train",
                              "modality": "vbm", "n_subjects": None, "shape": VBM_INPUT["shape"],
                              "note": "OpenBHB's training split, 3,227 healthy subjects from about 60 sites "
                                      "(the run name says trainall_False and fold k of 5 splits: each fold "
                                      "was trained on its share of them)"},
            "released": {"package": "anatcl (https://github.com/carloalbertobarbano/AnatCL)", **released},
            "input_fingerprint": RELEASED_FINGERPRINT}


def find_results(run_dir) -> list[tuple[str, list[dict]]]:
    """Every evaluation results directory (``results.json``) below ``run_dir``: (name, tidy rows)."""
    from anatlearn.evaluate.results import Results

    found = []
    if run_dir is None or not Path(run_dir).is_dir():
        return found
    for path in sorted(Path(run_dir).rglob("results.json")):
        try:
            table = Results.read(path).table
        except DataError:
            continue  # a half-written or foreign results file is skipped, not reported as evaluated
        found.append((str(path.parent.relative_to(run_dir)) or ".", table.to_dict(orient="records")))
    return found


def _results_section(results: list[tuple[str, list[dict]]]) -> str:
    if not results:
        return "Not evaluated: no evaluation results (`results.json`) were found in the run directory.\n"
    lines = []
    for name, rows in results:
        lines += [f"From `{name}/results.json`:", "", "| method | task | metric | mean | 95 % CI | n |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            ci = (f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]" if r.get("ci_low") == r.get("ci_low")
                  and r.get("ci_low") is not None else "")
            lines.append(f"| {r.get('method')} | {r.get('task')} | {r.get('metric')} | {r.get('mean'):.4g} | {ci} "
                         f"| {r.get('n')} |")
        lines.append("")
    return "\n".join(lines)


def _recipe(config: dict) -> str:
    if config["method"] == "unknown":
        return "Not recorded with the weights."
    about = (" (AnatCL: a y-Aware contrastive loss with an age kernel plus an anatomical term weighting pairs by\n"
             "the similarity of their cortical descriptors)" if config["method"].startswith("anatcl") else "")
    settings = ", ".join(f"{k}={v}" for k, v in config["method_settings"].items())
    return (f"Method `{config['method']}`{about}. Encoder {config['architecture']}, width {config['width']:g}, "
            f"projection head dropped at inference. Settings: {settings or 'not recorded'}.")


def _data_sentence(data: dict) -> str:
    """The card's training-data line: what the run recorded, a synthetic cohort called synthetic."""
    size = data.get("note") or (f"{data['n_subjects']:,} subjects" if data.get("n_subjects")
                                else "size unknown (not recorded, and the data was not readable at export)")
    split = f", split `{data['split']}`" if data.get("split") else ""
    synthetic = data.get("synthetic")
    if synthetic:
        made = f" of {synthetic['n_subjects']:,} generated subjects" if synthetic.get("n_subjects") else ""
        world = f", world {synthetic['world']}" if synthetic.get("world") else ""
        return (f"A synthetic cohort{made} (`anatlearn synth`{world}; `{data['name']}`{split}, "
                f"{data.get('modality', 'vbm')}): {size} trained on. No real scans.")
    return f"{data['name']}{split} ({data.get('modality', 'vbm')}): {size}."


def _scope(config: dict) -> str:
    """The limitation on what the features can be used for, from what the training data was."""
    data = config["training_data"]
    if data.get("synthetic"):
        return ("- Trained on a synthetic cohort only: these weights test a pipeline; their features say nothing "
                "reliable\n  about real brain scans.")
    if config.get("released"):
        return ("- Trained on healthy subjects of public research cohorts (OpenBHB); features of pathological,\n"
                "  paediatric or very old brains, and of scanners or protocols unlike the training sites, are out "
                "of distribution.")
    if config["method"] == "unknown":
        return "- The training data is not recorded: what the features are valid for is unknown."
    return (f"- Trained on `{data['name']}` only; brains, scanners or protocols unlike those in it are out of "
            f"distribution.")


def model_card(config: dict, results: list[tuple[str, list[dict]]], license: str = "mit") -> str:
    """The README.md model card of a Hub folder (``config`` from :func:`build_config`)."""
    grid, data, released = config["input"], config["training_data"], config.get("released")
    shape = "x".join(str(s) for s in grid["shape"])
    origin = (f"Weights from {('`' + config['source'] + '`') if config['source'] else 'an in-memory model'}; how they were "
              f"trained is not recorded with them."
              if config["method"] == "unknown" else
              f"Released AnatCL weights ({released['variant'] or 'variant unknown'}, fold "
              f"{released['fold'] if released['fold'] is not None else 'unknown'}), imported from `{config['source']}` "
              f"of the `anatcl` package and converted without change." if released else
              f"Pretrained with anatlearn {config['anatlearn_version']} (checkpoint `{config['source']}`).")
    title = config["architecture"] if config["method"] == "unknown" else f"{config['method']} {config['architecture']}"
    front = "\n".join(["---", f"license: {license}", "library_name: anatlearn", "pipeline_tag: feature-extraction",
                       "tags:", *[f"- {t}" for t in ("medical-imaging", "neuroimaging", "brain-mri", "3d",
                                                      "contrastive-learning", "anatcl", "anatlearn")], "---"])
    return f"""{front}

# {title} (width {config['width']:g})

{origin}

## Intended use
A frozen feature extractor for research on brain MRI: `encode(x)` maps one {shape} volume to a
{config['representation_size']}-d representation for linear probes (brain age, sex, diagnosis, clinical scores).
Input: {shape} voxels{f" at {grid['voxel_mm']} mm" if grid.get('voxel_mm') else ""}, {grid['preprocessing']}
({grid['space']}). Not a medical device; not for diagnosis or any clinical decision about an individual.

```python
from anatlearn.models import load_pretrained
model = load_pretrained("THIS_FOLDER_OR_hf-hub:ORG/NAME")
features = model.encode(volumes)  # (B, 1, {', '.join(str(s) for s in grid['shape'])}) float32 -> (B, {config['representation_size']})
```

## Training data
{_data_sentence(data)}

## Pretraining recipe
{_recipe(config)}

## Evaluation
{_results_section(results)}
## Limitations
{_scope(config)}
- The representation carries site information; harmonise (e.g. ComBat) or test for site effects before pooling sites.
- The input must match the grid and preprocessing above: other spaces, resolutions or intensity scales give
  features without meaning, silently.

## Citation
```bibtex
{CITATION}
```
"""


def export_folder(net, out, source: str = "", run_dir=None, license: str = "mit") -> Path:
    """Write the Hub-format folder ``out`` for ``net``: weights, config.json and the model card.

    ``run_dir``: where to look for evaluation results (``results.json`` anywhere below it). The folder is
    assembled in a temporary sibling and renamed into place, so a failure leaves nothing half written; an
    existing non-empty ``out`` is an error.
    """

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"export folder {out} exists and is not empty; choose a new folder")
    config = build_config(net, source)
    card = model_card(config, find_results(run_dir), license)
    from anatlearn.io import atomic_write_text, make_temp_dir

    tmp = make_temp_dir(out)  # the folder and its files get the modes the umask gives (0755, 0644 under 022)
    try:
        export_safetensors(net, tmp / WEIGHTS_FILE, {"hub_config": {k: config[k] for k in ("method", "input")}})
        atomic_write_text(tmp / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        atomic_write_text(tmp / CARD_FILE, card)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
