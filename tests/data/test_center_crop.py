"""Centre crops (open_dataset(center_crop=...), embed --center-crop): shape, centring against a brute-force
search, the crop box's round trip, and the CLI giving the features of the cropped volumes."""

import numpy as np
import pytest
import torch

from anatlearn.cli import main
from anatlearn.data import open_dataset
from anatlearn.synthetic import generate_cohort
from anatlearn.data.crop import CenterCropped, center_crop, center_crop_box, uncrop
from anatlearn.errors import DataError
from anatlearn.features import read_features


def test_box_of_the_released_readme_size():
    box = center_crop_box((121, 145, 121), (121, 128, 121))
    assert [(s.start, s.stop) for s in box] == [(0, 121), (8, 136), (0, 121)]  # 8 voxels before, 9 after


@pytest.mark.parametrize("shape,size", [((121, 145, 121), (121, 128, 121)), ((10, 11, 12), (3, 4, 12)),
                                        ((7, 8, 9), (1, 1, 1)), ((5, 6, 7), (5, 6, 7))])
def test_crop_is_centred_and_round_trips(shape, size):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    c = center_crop(x, size)
    assert c.shape == size and c.flags.c_contiguous
    for axis, (n, s) in enumerate(zip(shape, size)):  # brute force: the offset leaving floor((n-s)/2) before
        before = min(range(n - s + 1), key=lambda o: (abs(o - (n - s - o)), o))
        assert center_crop_box(shape, size)[axis].start == before
        assert before <= (n - s) - before <= before + 1
    back = uncrop(c, shape, fill=-1.0)
    box = center_crop_box(shape, size)
    np.testing.assert_array_equal(back[box], x[box])
    assert (back == -1.0).sum() == np.prod(shape) - np.prod(size)
    np.testing.assert_array_equal(center_crop(back, size), c)


def test_bad_sizes_are_one_clear_error():
    with pytest.raises(DataError, match=r"does not fit volumes of shape \(61, 73, 61\)"):
        center_crop_box((61, 73, 61), (61, 80, 61))
    with pytest.raises(DataError, match="has 2 sizes for 3-D"):
        center_crop_box((61, 73, 61), (61, 64))


def test_dataset_wrapper_and_embed_cli(tmp_path):
    from anatlearn.models import build_model, default_model_config, save_checkpoint

    data = generate_cohort(tmp_path / "cohort", n_subjects=4, shape=(40, 48, 40))
    full = open_dataset(data, require_age=False)
    cropped = open_dataset(data, require_age=False, center_crop=(40, 42, 40))
    assert isinstance(cropped, CenterCropped) and cropped.shape == (40, 42, 40) and len(cropped) == 4
    np.testing.assert_array_equal(cropped.volume(2), full.volume(2)[:, 3:45, :])
    np.testing.assert_array_equal(cropped.subset([2]).volume(0), cropped.volume(2))
    assert cropped.participants.equals(full.participants) and cropped.participants is cropped.dataset.participants
    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=0.125)).eval()
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, {"format": "anatlearn", "model": model.state_dict(), "model_config": model.model_config})
    out = tmp_path / "f.csv"
    assert main(["embed", "--weights", str(ckpt), "--data", str(data), "--out", str(out), "--no-jit",
                 "--center-crop", "40", "42", "40"]) == 0
    table = read_features(out)
    with torch.no_grad():
        ref = model.encode(torch.from_numpy(np.stack([cropped.volume(i) for i in range(4)]))[:, None]).numpy()
    np.testing.assert_allclose(table.to_numpy(), ref, rtol=0, atol=1e-5)
    assert main(["embed", "--weights", str(ckpt), "--data", str(data), "--out", str(tmp_path / "g.csv"),
                 "--center-crop", "40", "50", "40"]) == 2
    assert not (tmp_path / "g.csv").exists()
