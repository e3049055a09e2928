"""Checkpoint formats: the released AnatCL layout (against the released package itself), anatlearn's own,
safetensors, safety against code-running pickles, strictness, and the URL cache."""

import os
import pickle

import pytest
import torch

from anatlearn.errors import CheckpointError
from anatlearn.models import (build_model, default_model_config, export_safetensors, load_checkpoint,
                              load_pretrained, save_checkpoint)
from anatlearn.models.hub import cache_path

anatcl = pytest.importorskip("anatcl")


def _released(tmp_path, use_head, seed=0):
    torch.manual_seed(seed)
    ref = anatcl.AnatCL(pretrained=False, use_head=use_head).eval()
    # perturb BN statistics so that eval-mode outputs depend on every buffer
    for mod in ref.modules():
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    path = tmp_path / f"released-{seed}.pth"
    torch.save({"model": ref.backbone.state_dict()}, path)
    return ref, path


def test_official_layout_gives_identical_outputs(tmp_path):
    ref_repr, path = _released(tmp_path, use_head=False)
    ref_proj = anatcl.AnatCL(pretrained=False, use_head=True).eval()
    ref_proj.backbone.load_state_dict(ref_repr.backbone.state_dict())
    ours = load_pretrained(path, model="resnet18")
    x = torch.randn(1, 1, 40, 40, 40)
    with torch.no_grad():
        assert torch.equal(ours.encode(x), ref_repr(x))
        torch.testing.assert_close(ours.project(x), ref_proj(x), rtol=0, atol=1e-6)
    assert not ours.training


def test_official_layout_with_dataparallel_prefix(tmp_path):
    ref, path = _released(tmp_path, use_head=False)
    state = torch.load(path, weights_only=True)
    torch.save({"model": {"module." + k: v for k, v in state["model"].items()}}, path)
    ours = load_pretrained(path)
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours.encode(x), ref(x))


def test_strict_loading_errors(tmp_path):
    _, path = _released(tmp_path, use_head=False)
    state = torch.load(path, weights_only=True)["model"]
    missing = dict(state)
    missing.pop("encoder.layer3.0.conv1.weight")
    torch.save({"model": missing}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing\.pth.*1 missing keys \(e\.g\. encoder\.layer3\.0\.conv1\.weight\)"):
        load_pretrained(tmp_path / "missing.pth")
    extra = dict(state, **{"encoder.fc.weight": torch.zeros(2, 512)})
    torch.save({"model": extra}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unexpected keys .*encoder.fc.weight"):
        load_pretrained(tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="resnet34.*missing keys"):
        load_pretrained(path, model="resnet34")
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_pretrained(path, model="resnet18", width=0.5)


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"model": Evil()}, fh)
    with pytest.raises(CheckpointError, match="refused to load .*evil.pth.*nothing was executed"):
        load_pretrained(path)
    torch.save({"model": {"x": torch.zeros(1)}, "payload": Evil()}, tmp_path / "evil2.pth")
    assert not marker.exists()  # saving does not run it; loading must not either
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil2.pth")
    assert not marker.exists()


def test_truncated_and_missing_files(tmp_path):
    model = build_model(default_model_config("resnet18", width=0.125))
    path = tmp_path / "ok.pt"
    save_checkpoint(path, {"format": "anatlearn", "model": model.state_dict(), "model_config": model.model_config})
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt is truncated or corrupt"):
        load_pretrained(tmp_path / "trunc.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt"):
        load_pretrained(tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained(tmp_path / "nope.pt")


def test_anatlearn_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    model = build_model(default_model_config("densenet121", width=0.125)).eval()
    from anatlearn.provenance import provenance

    state = {"format": "anatlearn", "format_version": 1, "model": model.state_dict(),
             "model_config": model.model_config, "config": {"method": "anatcl-global", "lr": 1e-4}, "seed": 7,
             "provenance": provenance(7)}
    save_checkpoint(tmp_path / "a.pt", state)
    with pytest.raises(CheckpointError, match=r"holds a densenet121 encoder \(width 0.125\), not the `model` 'resnet18'"):
        load_pretrained(tmp_path / "a.pt", model="resnet18")  # a contradiction is an error, never replaced
    with pytest.raises(CheckpointError, match="not the `width` 1"):
        load_pretrained(tmp_path / "a.pt", width=1.0)
    loaded = load_pretrained(tmp_path / "a.pt", model="densenet121", default_model="resnet18")  # defaults: released only
    assert loaded.model_config == model.model_config
    assert loaded.checkpoint_meta["seed"] == 7 and loaded.checkpoint_meta["config"]["method"] == "anatcl-global"
    assert loaded.checkpoint_meta["provenance"]["versions"]["torch"] == torch.__version__
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.project(x), model.project(x))


def test_safetensors_round_trip(tmp_path):
    torch.manual_seed(4)
    model = build_model(default_model_config("resnet18", width=0.125)).eval()
    export_safetensors(model, tmp_path / "m.safetensors", {"seed": 11})
    loaded = load_pretrained(tmp_path / "m.safetensors")
    assert loaded.checkpoint_meta["seed"] == 11
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), model.encode(x))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_pretrained(tmp_path / "bad.safetensors")


def test_two_urls_with_same_basename_never_share_a_cache_file(tmp_path):
    """The released package caches every fold as weights.pth, so all folds load the first one."""
    cache = tmp_path / "cache"
    (tmp_path / "fold0").mkdir()
    (tmp_path / "fold1").mkdir()
    _, p0 = _released(tmp_path / "fold0", use_head=False, seed=0)
    _, p1 = _released(tmp_path / "fold1", use_head=False, seed=1)
    u0, u1 = p0.rename(p0.parent / "weights.pth").as_uri(), p1.rename(p1.parent / "weights.pth").as_uri()
    assert cache_path(u0, cache) != cache_path(u1, cache)
    m0 = load_pretrained(u0, cache_dir=cache)
    m1 = load_pretrained(u1, cache_dir=cache)
    assert len(list(cache.iterdir())) == 2
    w0, w1 = m0.encoder.conv1.weight, m1.encoder.conv1.weight
    assert not torch.equal(w0, w1)
    assert torch.equal(load_pretrained(u0, cache_dir=cache).encoder.conv1.weight, w0)  # cache hit, same file
    with pytest.raises(CheckpointError, match="could not download"):
        load_pretrained((tmp_path / "absent" / "weights.pth").as_uri(), cache_dir=cache)


def test_cli_inspect_and_export(tmp_path, capsys):
    from anatlearn.cli import main

    _, path = _released(tmp_path, use_head=False)
    assert main(["inspect", str(path)]) == 0
    assert '"parameters": 33488320' in capsys.readouterr().out  # encoder 33,160,000 + head 512*513 + 128*513
    assert main(["export", str(path), "--out", str(tmp_path / "w.safetensors")]) == 0
    assert torch.equal(load_pretrained(tmp_path / "w.safetensors").encoder.conv1.weight,
                       load_pretrained(path).encoder.conv1.weight)
    assert main(["inspect", str(tmp_path / "nope.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
