"""Encoder: the features of `anatlearn embed`, from paths or nibabel images, inside scikit-learn pipelines."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from anatlearn.cli import main
from anatlearn.errors import CheckpointError, InputWarning
from anatlearn.estimators import ComBat, Encoder
from anatlearn.features import read_features


@pytest.fixture(scope="module")
def nifti_cohort(tmp_path_factory):
    """24 subjects written as NIfTI (what `anatlearn synth --nifti` writes), with a tiny checkpoint."""
    from anatlearn.models import build_model, default_model_config, save_checkpoint
    from anatlearn.synthetic import generate_cohort

    root = tmp_path_factory.mktemp("nifti")
    cohort = generate_cohort(root / "cohort", 24, (32, 40, 32), seed=3, n_sites=3, held_out_sites=0, nifti=True)
    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=0.125)).eval()
    save_checkpoint(root / "last.pt", {"format": "anatlearn", "format_version": 1, "model": model.state_dict(),
                                       "model_config": model.model_config, "seed": 0})
    bids = Path(cohort) / "bids"
    labels = pd.read_csv(bids / "participants.tsv", sep="\t", dtype={"participant_id": str})
    paths = [str(next((bids / f"sub-{pid}" / "anat").glob("*.nii.gz"))) for pid in labels["participant_id"]]
    return {"bids": bids, "weights": root / "last.pt", "labels": labels, "paths": paths}


@pytest.fixture(autouse=True)
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def test_clone_does_not_load_weights(tmp_path, monkeypatch):
    import anatlearn.models

    calls = []
    monkeypatch.setattr(anatlearn.models, "load_pretrained", lambda *a, **k: calls.append(a))
    encoder = Encoder(tmp_path / "missing.pt", batch_size=4)
    copy = clone(encoder)
    assert calls == [] and copy.get_params() == encoder.get_params()
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="missing.pt"):
        copy.fit()


def test_same_features_as_anatlearn_embed(nifti_cohort, tmp_path):
    out = tmp_path / "features.parquet"
    assert main(["embed", "--weights", str(nifti_cohort["weights"]), "--data", str(nifti_cohort["bids"]),
                 "--out", str(out)]) == 0
    embedded = read_features(out)
    encoder = Encoder(nifti_cohort["weights"]).set_output(transform="pandas")
    from_paths = encoder.fit_transform(nifti_cohort["paths"])
    assert list(from_paths.index) == list(embedded.index)  # sub-<id> of each file name
    assert np.abs(from_paths.to_numpy() - embedded.to_numpy()).max() < 1e-5
    images = [nib.load(p) for p in nifti_cohort["paths"]]
    from_images = Encoder(nifti_cohort["weights"]).fit_transform(images)
    assert isinstance(from_images, np.ndarray) and from_images.shape == (24, 64)
    assert np.abs(from_images - from_paths.to_numpy()).max() < 1e-5
    volumes = np.stack([img.get_fdata(dtype=np.float32) for img in images])
    for array in (volumes, volumes[:, None]):  # (n, X, Y, Z) and (n, 1, X, Y, Z)
        assert np.abs(Encoder(nifti_cohort["weights"]).fit_transform(array) - from_images).max() < 1e-5
    from_dir = Encoder(nifti_cohort["weights"]).fit_transform(str(nifti_cohort["bids"]))
    assert np.abs(from_dir - embedded.to_numpy()).max() < 1e-5
    assert list(encoder.get_feature_names_out()) == list(embedded.columns)


def test_released_layout_and_exported_folder(nifti_cohort, tmp_path):
    """A released AnatCL checkpoint ({"model": encoder.* + head.*}; architecture by model/width) and an exported
    folder give the anatlearn checkpoint's features."""
    from anatlearn.models import load_pretrained
    from anatlearn.models.card import export_folder

    net = load_pretrained(nifti_cohort["weights"])
    torch.save({"model": net.state_dict()}, tmp_path / "released.pth")
    folder = export_folder(net, tmp_path / "exported")
    paths = nifti_cohort["paths"][:4]
    reference = Encoder(nifti_cohort["weights"]).fit_transform(paths)
    with pytest.warns(InputWarning, match="on grid 32x40x32 but .* was trained on 121x145x121"):  # a .pth: released
        released = Encoder(tmp_path / "released.pth", model="resnet18", width=0.125).fit_transform(paths)
    np.testing.assert_allclose(released, reference, atol=1e-5)
    np.testing.assert_allclose(Encoder(folder).fit_transform(paths), reference, atol=1e-5)
    with pytest.raises(CheckpointError, match="shape mismatches"):  # the released layout at the wrong width
        Encoder(tmp_path / "released.pth").fit()


def test_cross_val_score_with_routed_sites(nifti_cohort):
    labels = nifti_cohort["labels"]
    pipe = make_pipeline(Encoder(nifti_cohort["weights"]), ComBat(), RidgeCV())
    scores = cross_val_score(pipe, nifti_cohort["paths"], labels["age"].to_numpy(float),
                             params={"sites": labels["site"].to_numpy()}, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    with pytest.raises(ValueError, match="needs `sites`"):  # no sites: one clear error, not unharmonised features
        cross_val_score(pipe, nifti_cohort["paths"], labels["age"].to_numpy(float), cv=3, error_score="raise")


def test_pretrainer_trains_resumes_and_embeds(tiny_cohort, tmp_path):
    from anatlearn.estimators import Pretrainer

    out = tmp_path / "run"
    trainer = Pretrainer(method="simclr", epochs=1, out=out, width=0.125, batch_size=16, num_workers=0)
    features = trainer.fit_transform(tiny_cohort)
    assert features.shape == (48, 64) and (out / "checkpoints" / "last.pt").is_file()
    embedded = Encoder(out / "checkpoints" / "last.pt").fit_transform(tiny_cohort)
    np.testing.assert_array_equal(features, embedded)
    before = (out / "checkpoints" / "last.pt").read_bytes()
    again = clone(trainer).fit(tiny_cohort)  # the run in `out` is complete: resumed, not retrained
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
    np.testing.assert_array_equal(again.transform(tiny_cohort), features)


def test_a_model_that_contradicts_the_checkpoint_is_refused(nifti_cohort):
    with pytest.raises(CheckpointError, match="holds a resnet18 encoder .* not the `model` 'densenet121'"):
        Encoder(nifti_cohort["weights"], model="densenet121").fit()
