"""Hub-format folders: export writes weights + config + model card; load_pretrained(DIR), --weights DIR and
hf-hub:ORG/NAME (offline, from a pre-populated huggingface_hub cache) give the features of the source."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch
import yaml

from anatlearn.cli import main
from anatlearn.embed import AnatEncoder
from anatlearn.errors import CheckpointError
from anatlearn.evaluate.results import Results
from anatlearn.models import build_model, default_model_config, load_pretrained, save_checkpoint
from anatlearn.models.card import export_folder

anatcl = pytest.importorskip("anatcl")


def _released(tmp_path):
    """A checkpoint in the released AnatCL layout, written by the released package's own model."""
    torch.manual_seed(0)
    ref = anatcl.AnatCL(pretrained=False, use_head=False).eval()
    for mod in ref.modules():  # BN statistics off their defaults, so eval outputs depend on every buffer
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "0_obhn64_resnet18_global_lambd1.0_fold3_splits5_trial0.pth"
    torch.save({"model": ref.backbone.state_dict()}, path)
    return ref, path


def _volumes(n=3, shape=(40, 44, 40), seed=1):
    rng = np.random.default_rng(seed)
    return {f"s{i}": rng.random(shape, dtype=np.float32) for i in range(n)}


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_released_checkpoint_exports_to_a_folder_with_the_same_features(tmp_path):
    ref, ckpt = _released(tmp_path)
    out = tmp_path / "hub"
    assert main(["export", str(ckpt), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    vols = _volumes()
    from_ckpt = AnatEncoder(ckpt, jit=False).transform(vols)
    from_folder = AnatEncoder(out, jit=False).transform(vols)
    np.testing.assert_array_equal(from_folder.to_numpy(), from_ckpt.to_numpy())
    with torch.no_grad():  # and both are the released package's own representation
        x = torch.from_numpy(np.stack(list(vols.values())))[:, None]
        np.testing.assert_allclose(from_folder.to_numpy(), ref(x).numpy(), rtol=0, atol=1e-5)
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "resnet18" and config["width"] == 1.0 and config["representation_size"] == 512
    assert config["input"]["shape"] == [121, 145, 121] and config["input"]["voxel_mm"] == 1.5
    assert config["method"] == "anatcl-global" and config["released"]["fold"] == 3
    assert config["method_settings"]["lr"] == 1e-4 and config["anatlearn_version"]
    card = (out / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["license"] == "mit" and meta["library_name"] == "anatlearn" and "neuroimaging" in meta["tags"]
    for section in ("## Intended use", "## Training data", "## Pretraining recipe", "## Evaluation",
                    "## Limitations", "## Citation"):
        assert section in card
    assert "3,227" in card and "Not evaluated" in card and "Pattern Recognition Letters" in card
    assert "2408.07079" in card


def _anatlearn_run(tmp_path, with_results: bool):
    """A run directory as `anatlearn pretrain` leaves it: RUN/checkpoints/last.pt (+ an evaluation)."""
    torch.manual_seed(5)
    model = build_model(default_model_config("resnet18", width=0.125)).eval()
    run = tmp_path / "run"
    config = {"method": "anatcl-local", "data": str(tmp_path / "moved-away"), "split": "train", "modality": "vbm",
              "lr": 3e-4, "epochs": 7, "sigma": 2.0}
    (run / "checkpoints").mkdir(parents=True)
    save_checkpoint(run / "checkpoints" / "last.pt", {"format": "anatlearn", "format_version": 1,
                                                       "model": model.state_dict(), "model_config": model.model_config,
                                                       "config": config, "seed": 3})
    if with_results:
        import pandas as pd

        table = pd.DataFrame([{"method": "anatcl", "task": "age", "metric": "mae_internal", "mean": 4.321,
                               "ci_low": 4.0, "ci_high": 4.6, "n": 40, "lower_is_better": True}])
        Results("openbhb", table).write(run / "eval" / "openbhb")
    return model, run


def test_card_reports_the_run_directory_evaluation(tmp_path):
    model, run = _anatlearn_run(tmp_path, with_results=True)
    out = tmp_path / "hub"
    assert main(["export", str(run / "checkpoints" / "last.pt"), "--out", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "eval/openbhb/results.json" in card and "| anatcl | age | mae_internal | 4.321 | [4, 4.6] | 40 |" in card
    assert "Not evaluated" not in card and "size unknown" in card
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "anatcl-local" and config["method_settings"]["lr"] == 3e-4
    assert config["width"] == 0.125 and config["training_data"]["split"] == "train"
    loaded = load_pretrained(out)
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), model.encode(x)) and torch.equal(loaded.project(x), model.project(x))


def test_export_refuses_a_non_empty_folder_and_writes_nothing_on_error(tmp_path, capsys):
    _, run = _anatlearn_run(tmp_path, with_results=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    assert main(["export", str(run / "checkpoints" / "last.pt"), "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "full" / "x").read_text() == "keep"
    assert main(["export", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.*"))
    with pytest.raises(CheckpointError, match="not empty"):
        export_folder(build_model(default_model_config("resnet18", width=0.125)), tmp_path / "full")


def _populate_hub_cache(cache, folder, repo="anatlearn-test/anatcl-tiny", commit="0123456789abcdef0123456789abcdef01234567"):
    """The documented huggingface_hub cache layout: models--ORG--NAME/{refs/main, snapshots/<commit>/...}."""
    org, name = repo.split("/")
    storage = cache / f"models--{org}--{name}"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    shutil.copytree(folder, storage / "snapshots" / commit)
    return repo


def test_hf_hub_loads_offline_from_the_cache(tmp_path, monkeypatch, capsys):
    model, run = _anatlearn_run(tmp_path, with_results=False)
    folder = export_folder(model_from := load_pretrained(run / "checkpoints" / "last.pt"), tmp_path / "hub",
                           source="last.pt")
    cache = tmp_path / "hf-cache"
    repo = _populate_hub_cache(cache, folder)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the hf-hub: path opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    loaded = load_pretrained(f"hf-hub:{repo}")
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), model_from.encode(x))
    assert torch.equal(load_pretrained(f"hf-hub:{repo}@main").encoder.conv1.weight, model.encoder.conv1.weight)
    with pytest.raises(CheckpointError, match=r"hf-hub:anatlearn-test/absent: not in the Hub cache .*HF_HUB_OFFLINE"):
        load_pretrained("hf-hub:anatlearn-test/absent")
    with pytest.raises(CheckpointError, match="not a Hub model id"):
        load_pretrained("hf-hub:no-slash")
    assert main(["inspect", f"hf-hub:{repo}"]) == 0
    assert '"format": "anatlearn-hub"' in capsys.readouterr().out


def test_hf_hub_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(CheckpointError, match=r"optional extra 'hub'.*anatlearn\[hub\]"):
        load_pretrained("hf-hub:org/name")


def test_a_folder_without_config_or_weights_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="folder without config.json"):
        load_pretrained(tmp_path / "empty")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps({"format": "anatlearn-hub", "model_config": {}}))
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        load_pretrained(tmp_path / "noweights")
    (tmp_path / "noweights" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not an anatlearn model config"):
        load_pretrained(tmp_path / "noweights")


def test_weights_of_unknown_origin_are_not_described_as_released(tmp_path):
    out = export_folder(build_model(default_model_config("resnet18", width=0.125)), tmp_path / "hub")
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "unknown" and config["released"] is None and config["method_settings"] == {}
    card = (out / "README.md").read_text()
    assert "Released AnatCL" not in card and "Not recorded with the weights." in card
    assert _front_matter(card)["library_name"] == "anatlearn"
