"""The BIDS side of the BIDS App: discovery of T1w scans with pybids, the names of the derivatives, and
``dataset_description.json`` (BIDS 1.9, "Derivatives": ``DatasetType`` derivative, ``GeneratedBy``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from anatlearn.errors import ConfigError, DataError
from anatlearn.io import atomic_write_text

PIPELINE = "anatlearn"
BIDS_VERSION = "1.9.0"
# the registration template (anatlearn.prep.templates): ICBM 2009a nonlinear symmetric, TemplateFlow's name
SPACE = "MNI152NLin2009aSym"
# what each target's prepared map is, as BIDS-Derivatives entities and suffix
MAP_SUFFIX = {"vbm": "label-GM_probseg", "quasiraw": "desc-preproc_T1w"}


@dataclass(frozen=True)
class Scan:
    """One T1w image of the input dataset: its entities and the stem its derivatives share."""

    subject: str
    session: str | None
    run: str | None
    path: Path
    prefix: str  # the source name up to "_T1w": sub-<s>[_ses-<t>][_acq-...][_run-<r>]

    @property
    def anat_dir(self) -> Path:
        """Where this scan's derivatives go, relative to the output root."""
        return Path(f"sub-{self.subject}") / (f"ses-{self.session}" if self.session else "") / "anat"


def bare_labels(labels: list[str] | None, prefix: str) -> list[str] | None:
    """Labels without their ``sub-`` / ``ses-`` prefix (the BIDS-Apps convention omits it; both are read)."""
    if not labels:
        return None
    out = [lab.removeprefix(prefix) for lab in labels]
    bad = [lab for lab in out if not re.fullmatch(r"[A-Za-z0-9]+", lab)]
    if bad:
        raise ConfigError(f"invalid {prefix.rstrip('-')} label(s) {bad}: BIDS labels are letters and digits only")
    return out


def discover(bids_dir: str | Path, participant_labels: list[str] | None = None,
             session_labels: list[str] | None = None) -> list[Scan]:
    """Every T1w scan (``anat/*_T1w.nii[.gz]``, each subject, session and run) of a BIDS dataset, read by
    pybids (Yarkoni et al. 2019, JOSS 4:1294) with its validator on, filtered by the labels. An invalid
    dataset, a label with no data, or no T1w at all is one :class:`DataError`."""
    from bids import BIDSLayout

    root = Path(bids_dir)
    if not root.is_dir():
        raise DataError(f"BIDS directory not found: {root}")
    try:
        layout = BIDSLayout(str(root), validate=True)
    except Exception as exc:  # pybids raises BIDSValidationError, ValueError, ... with its own message
        # its first line says what is wrong; the rest is an example file (one line for the user)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
        raise DataError(f"{root} is not a valid BIDS dataset: {first} (https://bids-specification.readthedocs.io)"
                        ) from None
    subjects = bare_labels(participant_labels, "sub-")
    sessions = bare_labels(session_labels, "ses-")
    known = set(layout.get_subjects())
    missing = sorted(set(subjects or []) - known)
    if missing:
        raise DataError(f"participant label(s) not in {root}: {', '.join(missing)} (it has: "
                        f"{', '.join(sorted(known)[:10]) or 'no subjects'})")
    query = {"suffix": "T1w", "datatype": "anat", "extension": [".nii", ".nii.gz"]}
    if subjects:
        query["subject"] = subjects
    if sessions:
        query["session"] = sessions
    scans = []
    for f in layout.get(return_type="object", **query):
        ent = f.get_entities()
        name = Path(f.path).name
        scans.append(Scan(str(ent["subject"]), ent.get("session"), None if ent.get("run") is None else str(ent["run"]),
                          Path(f.path), name[:name.rindex("_T1w")]))
    if not scans:
        which = (f" for participant(s) {', '.join(subjects)}" if subjects else "") + \
                (f" in session(s) {', '.join(sessions)}" if sessions else "")
        raise DataError(f"no T1w images found in {root}{which} (expected sub-<label>/[ses-<label>/]anat/"
                        f"sub-<label>[_ses-<label>]_T1w.nii[.gz])")
    return sorted(scans, key=lambda s: s.prefix)


def resolution_label(voxel_mm: float) -> str:
    """The ``res-`` label of a grid's voxel size: 1.5 mm -> ``1p5`` (BIDS labels are alphanumeric)."""
    return f"{voxel_mm:g}".replace(".", "p")


def derivative_names(scan: Scan, target: str, voxel_mm: float, model_label: str | None) -> dict[str, Path]:
    """The derivatives of one scan, relative to the output root."""
    stem = scan.anat_dir / scan.prefix
    names = {"map": Path(f"{stem}_space-{SPACE}_res-{resolution_label(voxel_mm)}_{MAP_SUFFIX[target]}.nii.gz"),
             "qc": Path(f"{stem}_desc-prep_qc.json"),
             "figure": Path(f"sub-{scan.subject}") / "figures" / f"{scan.prefix}_desc-prep_qc.png",
             "log": Path("logs") / f"{scan.prefix}.log"}
    if model_label:
        names["features"] = Path(f"{stem}_desc-{model_label}_features.tsv")
        names["features_json"] = Path(f"{stem}_desc-{model_label}_features.json")
    return names


# files the BIDS validator has no rule for: anatlearn's own outputs
BIDSIGNORE = "logs/\ngroup/\nslurm-logs/\n*/figures/\n*_features.tsv\n*_features.json\n*_qc.json\n"


def write_description(out: Path, command_line: str) -> None:
    """``OUT/dataset_description.json`` and ``OUT/.bidsignore``; an existing description must be anatlearn's
    (another pipeline's derivatives are never mixed in)."""
    from anatlearn import __version__

    path = out / "dataset_description.json"
    if path.is_file():
        try:
            generated = json.loads(path.read_text()).get("GeneratedBy", [{}])
        except json.JSONDecodeError as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
        if not any(g.get("Name") == PIPELINE for g in generated if isinstance(g, dict)):
            raise DataError(f"{out} holds another pipeline's derivatives ({path} names "
                            f"{[g.get('Name') for g in generated if isinstance(g, dict)]}); choose another output "
                            f"directory")
    description = {"Name": "anatlearn prep and embedding", "BIDSVersion": BIDS_VERSION, "DatasetType": "derivative",
                   "GeneratedBy": [{"Name": PIPELINE, "Version": __version__,
                                    "Description": "prep (N4, ANTs registration to MNI152 2009a, Atropos, "
                                                   "Jacobian modulation) then frozen-encoder features",
                                    "CommandLine": command_line}]}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(description, indent=2) + "\n")
    atomic_write_text(out / ".bidsignore", BIDSIGNORE)


def read_description(out: Path) -> dict:
    path = out / "dataset_description.json"
    if not path.is_file():
        raise DataError(f"{out} holds no dataset_description.json: run the participant level into it first")
    return json.loads(path.read_text())
