"""Encoder.transform applies embed's grid rule and input check, warning (InputWarning) where the CLI refuses or
flags, and records the outcomes (grid_check_, input_check_)."""

import re
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch

from anatlearn.data import open_dataset
from anatlearn.errors import DataError, InputWarning
from anatlearn.estimators import Encoder

BAD = (1, 4, 7)  # positions made 100x brighter


@pytest.fixture(scope="module")
def checked(tiny_cohort, tmp_path_factory):
    """A tiny checkpoint recording its training grid and training maps' fingerprint (as `pretrain` writes
    them), and the first 9 maps of its cohort as arrays."""
    from anatlearn.data.lineage import dataset_grid
    from anatlearn.inputcheck import build_fingerprint
    from anatlearn.models import build_model, default_model_config, save_checkpoint

    train = open_dataset(tiny_cohort, split="train")
    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=0.125)).eval()
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(path, {"format": "anatlearn", "format_version": 1, "model": model.state_dict(),
                           "model_config": model.model_config, "seed": 0,
                           "input": {**dataset_grid(train), "modality": "vbm"},
                           "input_fingerprint": build_fingerprint(train, source=str(tiny_cohort))})
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    affine[:3, 3] = [-24, -30, -24]
    save_checkpoint(path.with_name("nifti.pt"), {  # trained on NIfTI maps: the grid's affine is recorded too
        "format": "anatlearn", "format_version": 1, "model": model.state_dict(), "model_config": model.model_config,
        "seed": 0, "input": {"shape": [32, 40, 32], "affine": affine.tolist(), "modality": "vbm"}})
    everyone = open_dataset(tiny_cohort, require_age=False)
    volumes = np.stack([everyone.volume(i) for i in range(9)])
    return {"weights": path, "volumes": volumes, "cohort": tiny_cohort, "nifti": path.with_name("nifti.pt"),
            "affine": affine}


def _transform(encoder, X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = encoder.fit_transform(X)
    return out, [w for w in caught if issubclass(w.category, InputWarning)]


def test_a_clean_cohort_gives_no_warning_and_the_check_of_embed(checked):
    from anatlearn.inputcheck import check_dataset, reference_from_meta

    encoder = Encoder(checked["weights"], batch_size=16).set_output(transform="pandas")
    table, caught = _transform(encoder, str(checked["cohort"]))
    assert caught == [] and table.shape == (48, 64)
    assert encoder.grid_check_["status"] == "same grid" and encoder.grid_check_["input_grid"] == "32x40x32"
    results = encoder.input_check_
    assert len(results) == 48 and results["ok"].all()
    meta = encoder.encoder_.model.checkpoint_meta  # embed's check on the same dataset: the same rows
    expected = check_dataset(open_dataset(checked["cohort"], require_age=False),
                             reference_from_meta(meta, "last.pt").fingerprint)
    assert results.equals(expected)
    record = table.attrs["metadata"]["input_check"]
    assert (record["n_subjects"], record["n_flagged"]) == (48, 0)
    assert table.attrs["metadata"]["grid_check"]["status"] == "same grid"


def test_intensities_x100_warn_with_embeds_summary_and_are_flagged(checked):
    volumes = checked["volumes"].copy()
    volumes[list(BAD)] *= 100
    encoder = Encoder(checked["weights"])
    features, caught = _transform(encoder, volumes)
    assert len(caught) == 1 and features.shape == (9, 64)
    message = str(caught[0].message)
    assert message.startswith("3 of 9 subjects look unlike the training maps; see the Encoder's input_check_")
    for i in BAD:  # about 100x the typical training map's intensity, in words
        assert re.search(rf"subject {i}: intensities about 1?[0-9]{{2}}x the training maps': a raw T1", message)
    flagged = encoder.input_check_.set_index("participant_id")
    assert list(flagged.index[~flagged["ok"]]) == [str(i) for i in BAD]
    from anatlearn.inputcheck import check_volume, reference_from_meta

    fp = reference_from_meta(encoder.encoder_.model.checkpoint_meta, "last.pt").fingerprint
    clean = check_volume(checked["volumes"][1], fp)
    assert clean[1] == [] and flagged.loc["1", "q99"] == pytest.approx(100 * clean[0]["q99"], rel=1e-3)
    assert (flagged.loc[[str(i) for i in BAD], "reasons"].str.contains("a raw T1 rather than a GM map")).all()
    # check_inputs=False: no check, no warning, the same features (the check never alters them)
    unchecked = Encoder(checked["weights"], check_inputs=False)
    same, caught = _transform(unchecked, volumes)
    assert caught == [] and unchecked.input_check_ is None
    np.testing.assert_array_equal(same, features)
    # nibabel images in memory are checked the same way
    images = [nib.Nifti1Image(v, np.eye(4)) for v in volumes]
    _, caught = _transform(Encoder(checked["weights"]), images)
    assert len(caught) == 1 and str(caught[0].message).startswith("3 of 9 subjects look unlike")


def test_another_grid_warns_naming_both_grids_and_still_embeds(checked):
    padded = np.pad(checked["volumes"][:4], ((0, 0), (0, 0), (0, 0), (0, 8)))
    encoder = Encoder(checked["weights"]).set_output(transform="pandas")
    table, caught = _transform(encoder, padded[:, None])  # (n, 1, X, Y, Z)
    assert len(caught) == 1 and table.shape == (4, 64)
    message = str(caught[0].message)
    assert "X is on grid 32x40x40 but the encoder" in message and "was trained on 32x40x32" in message
    assert "`anatlearn embed` refuses" in message
    assert encoder.grid_check_ == {"training_grid": "32x40x32", "input_grid": "32x40x40", "allowed_mismatch": False,
                                   "status": "mismatch warned", "input_shape": [32, 40, 40]}
    assert table.attrs["metadata"]["grid_check"] == encoder.grid_check_
    assert encoder.input_check_ is None  # maps on another grid cannot be compared with the fingerprint
    assert "input check skipped: the maps are 32x40x40" in table.attrs["metadata"]["input_check"]["skipped"]
    # the grid rule holds with check_inputs=False too: features of another grid are never silent
    _, caught = _transform(Encoder(checked["weights"], check_inputs=False), padded)
    assert len(caught) == 1 and "32x40x40" in str(caught[0].message)


def test_nifti_images_in_another_space_warn(checked, tmp_path):
    """The affine of NIfTI images counts, as for a NIfTI dataset in `anatlearn embed`: the first image's."""
    for name, affine in (("same", checked["affine"]), ("moved", np.eye(4))):
        for i, vol in enumerate(checked["volumes"][:3]):
            nib.save(nib.Nifti1Image(vol, affine), tmp_path / f"sub-{name}{i}_T1w.nii.gz")
    paths = sorted(str(p) for p in tmp_path.glob("sub-same*"))
    encoder = Encoder(checked["nifti"]).set_output(transform="pandas")
    table, caught = _transform(encoder, paths)
    assert caught == [] and list(table.index) == ["same0", "same1", "same2"]
    assert encoder.grid_check_["status"] == "same grid"
    assert "has no fingerprint" in table.attrs["metadata"]["input_check"]["skipped"]  # nothing to check against
    _, caught = _transform(encoder, sorted(str(p) for p in tmp_path.glob("sub-moved*")))
    assert len(caught) == 1 and encoder.grid_check_["status"] == "mismatch warned"
    assert "is on grid 32x40x32 in another space (NIfTI affine) than the grid" in str(caught[0].message)
    mixed = paths[:2] + [str(tmp_path / "sub-moved0_T1w.nii.gz")]  # one list, two spaces: refused, as embed does
    with pytest.raises(DataError, match=r"image .*sub-moved0_T1w.nii.gz is on grid 32x40x32, origin \[0.0, 0.0, "
                                        r"0.0\] mm, image .*sub-same0_T1w.nii.gz on 32x40x32, origin \[-24.0"):
        encoder.transform(mixed)
