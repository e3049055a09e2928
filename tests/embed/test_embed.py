"""AnatEncoder: features equal the model's own encode(), in dataset order, for every input form and path."""

import numpy as np
import pytest
import torch

from anatlearn.cli import main
from anatlearn.data import open_dataset
from anatlearn.embed import AnatEncoder, max_abs_difference
from anatlearn.errors import DataError
from anatlearn.evaluate import read_features
from anatlearn.models import build_model, default_model_config, load_pretrained, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(default_model_config("resnet18", width=0.125)).eval()
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(path, {"format": "anatlearn", "format_version": 1, "model": model.state_dict(),
                           "model_config": model.model_config, "seed": 11,
                           "normaliser": {"method": "zscore", "mean": [[1.0, 2.0]], "std": [[0.5, 0.5]]}})
    return path


def test_features_match_direct_encoding_in_dataset_order(tiny_cohort, checkpoint):
    ds = open_dataset(tiny_cohort)
    feats = AnatEncoder(checkpoint, batch_size=5).transform(ds)  # 48 subjects: last batch is partial
    assert list(feats.index) == [str(i) for i in ds.participants["participant_id"]]
    assert list(feats.columns[:2]) == ["f0000", "f0001"] and feats.shape == (len(ds), 64)
    model = load_pretrained(checkpoint)
    with torch.inference_mode():
        ref = model.encode(torch.stack([torch.from_numpy(ds.volume(i))[None] for i in range(6)])).numpy()
    np.testing.assert_allclose(feats.to_numpy()[:6], ref, atol=1e-5)
    meta = feats.attrs["metadata"]
    assert meta["checkpoint_meta"]["seed"] == 11 and meta["checkpoint_meta"]["normaliser"]["method"] == "zscore"
    assert meta["model_config"]["width"] == 0.125


def test_fast_paths_against_plain_fp32(tiny_cohort, checkpoint):
    ds = open_dataset(tiny_cohort).subset(list(range(8)))
    plain = AnatEncoder(checkpoint, batch_size=4, channels_last=False, jit=False).transform(ds)
    cl = AnatEncoder(checkpoint, batch_size=4, channels_last=True, jit=False).transform(ds)
    default = AnatEncoder(checkpoint, batch_size=3)  # channels_last_3d + TorchScript; ragged last batch
    fast = default.transform(ds)
    assert [v is not None for v in default._traced.values()] == [True]  # the traced path really ran
    bf16 = AnatEncoder(checkpoint, batch_size=4, dtype="bf16").transform(ds)
    d_cl, d_fast, d_bf16 = (max_abs_difference(plain, t) for t in (cl, fast, bf16))
    scale = float(np.abs(plain.to_numpy()).max())
    print(f"max abs difference vs fp32: channels_last {d_cl:.2e}, default (jit) {d_fast:.2e}, bf16 {d_bf16:.2e} "
          f"(feature scale {scale:.2e})")
    assert d_cl < 1e-4 and d_fast < 1e-4
    assert d_bf16 < 0.05 * scale  # bf16 keeps ~3 significant digits; differences stay a few % of the scale
    assert d_bf16 > 0  # bf16 really ran in reduced precision


def test_batch_size_does_not_change_features(tiny_cohort, checkpoint):
    ds = open_dataset(tiny_cohort).subset(list(range(7)))
    a = AnatEncoder(checkpoint, batch_size=1).transform(ds)
    b = AnatEncoder(checkpoint, batch_size=7).transform(ds)
    assert max_abs_difference(a, b) < 1e-5


def test_arrays_dicts_and_released_layout(tmp_path):
    torch.manual_seed(1)
    model = build_model(default_model_config("resnet18", width=0.125)).eval()
    released = tmp_path / "anatcl_fold0.pth"
    torch.save({"model": model.state_dict()}, released)  # the released package's layout
    rng = np.random.default_rng(0)
    vols = [rng.random((32, 36, 32), dtype=np.float32) for _ in range(3)]
    enc = AnatEncoder(released, model="resnet18", width=0.125, batch_size=2)
    from_list = enc.transform(vols)
    from_dict = enc.fit(None).transform({"a": vols[0], "b": vols[1][None], "c": vols[2]})  # (1, X, Y, Z) accepted
    assert list(from_list.index) == ["0", "1", "2"] and list(from_dict.index) == ["a", "b", "c"]
    np.testing.assert_allclose(from_list.to_numpy(), from_dict.to_numpy(), atol=1e-6)
    with torch.inference_mode():
        ref = model.encode(torch.from_numpy(vols[0])[None, None]).numpy()
    np.testing.assert_allclose(from_list.to_numpy()[:1], ref, atol=1e-5)


def test_bad_volumes(checkpoint):
    enc = AnatEncoder(checkpoint, batch_size=2)
    with pytest.raises(DataError, match="different shapes"):
        enc.transform([np.zeros((32, 32, 32), np.float32), np.zeros((32, 36, 32), np.float32)])
    bad = np.zeros((32, 32, 32), np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="subject b: volume has NaN"):
        enc.transform({"a": np.zeros((32, 32, 32), np.float32), "b": bad})
    with pytest.raises(DataError, match="expected a 3-D volume"):
        enc.transform([np.zeros((32, 32), np.float32)])


def test_cli_writes_parquet_with_provenance(tiny_cohort, checkpoint, tmp_path, capsys):
    out = tmp_path / "features.parquet"
    code = main(["embed", "--weights", str(checkpoint), "--data", str(tiny_cohort), "--out", str(out),
                 "--split", "internal_test", "--batch-size", "4", "--channels-last", "--compare-fp32"])
    assert code == 0
    feats = read_features(out)
    ds = open_dataset(tiny_cohort, split="internal_test")
    assert list(feats.index) == [str(i) for i in ds.participants["participant_id"]]
    assert feats.attrs["metadata"]["checkpoint"] == str(checkpoint)
    assert feats.attrs["metadata"]["max_abs_difference_vs_fp32"] < 1e-4
    assert "max |features - fp32 features|" in capsys.readouterr().out
    assert main(["embed", "--weights", str(tmp_path / "missing.pt"), "--data", str(tiny_cohort), "--out", str(out)]) == 2


class _CountingDataset:
    """A SubjectDataset stand-in that records how many volumes were read so far."""

    def __init__(self, n):
        import pandas as pd

        self.participants = pd.DataFrame({"participant_id": [f"p{i}" for i in range(n)]})
        self.reads = 0

    def __len__(self):
        return len(self.participants)

    def volume(self, i):
        self.reads += 1
        return np.full((32, 32, 32), float(i), np.float32)


class _MeanEncoder(torch.nn.Module):
    """encode(x) = per-volume mean; records how many volumes had been read at each batch."""

    def __init__(self, dataset):
        super().__init__()
        self.encoder = torch.nn.Identity()
        self.encoder.out_features = 1
        self.dataset, self.reads_at_batch = dataset, []

    def encode(self, x):
        self.reads_at_batch.append(self.dataset.reads)
        return x.mean(dim=(1, 2, 3, 4))[:, None]


def test_streaming_reads_one_batch_at_a_time():
    ds = _CountingDataset(23)
    model = _MeanEncoder(ds)
    feats = AnatEncoder(model, batch_size=4).transform(ds)
    np.testing.assert_allclose(feats["f0000"].to_numpy(), np.arange(23))
    # before encoding batch k only batches 0..k have been read: memory holds one batch of volumes, not n
    assert model.reads_at_batch == [min(4 * (k + 1), 23) for k in range(6)]


def test_untraceable_encoder_falls_back_to_eager(tiny_cohort, checkpoint, monkeypatch):
    ds = open_dataset(tiny_cohort).subset(list(range(4)))
    eager = AnatEncoder(checkpoint, batch_size=2, jit=False).transform(ds)

    def refuse(*args, **kwargs):
        raise RuntimeError("cannot trace")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    enc = AnatEncoder(checkpoint, batch_size=2)
    assert max_abs_difference(eager, enc.transform(ds)) == 0
    assert list(enc._traced.values()) == [None]
