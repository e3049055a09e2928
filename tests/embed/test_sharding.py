"""Sharded, resumable ``anatlearn embed``: two torchrun (gloo, CPU) processes write the same table as one
process; a run killed with SIGKILL and re-run (with another number of processes) equals an uninterrupted
one and recomputes nothing already written; a re-run with other weights or options is refused."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anatlearn.cli import main
from anatlearn.data import open_dataset
from anatlearn.embed import AnatEncoder
from anatlearn.embed.sharding import ChunkPlan, parts_dir, shard, weights_sha256
from anatlearn.evaluate import read_features
from anatlearn.models import build_model, default_model_config, export_safetensors, load_pretrained, save_checkpoint

CHUNK = ["--chunk-size", "5"]  # 48 subjects -> 10 chunks, the last one partial


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    model = build_model(default_model_config("resnet18", width=0.125)).eval()
    save_checkpoint(path, {"format": "anatlearn", "format_version": 1, "model": model.state_dict(),
                           "model_config": model.model_config, "seed": seed})
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    return _checkpoint(d / "a.pt", 0), _checkpoint(d / "b.pt", 1)


@pytest.fixture(scope="module")
def reference(tiny_cohort, weights):
    """The single-process library result every sharded run must equal."""
    return AnatEncoder(weights[0]).transform(open_dataset(tiny_cohort))


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def torchrun(args, nproc=2, module=True):
    """``torchrun --nproc-per-node N -m anatlearn ARGS`` (or the plain ``anatlearn`` script with --no-python)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    target = ["-m", "anatlearn"] if module else ["--no-python", str(Path(sys.executable).parent / "anatlearn")]
    return subprocess.run(launcher + target + [str(a) for a in args], capture_output=True, text=True, env=_env(),
                          timeout=600)


def test_plan_and_shards_cover_every_subject_once():
    plan = ChunkPlan(48, 5)
    rows = [r for k in range(plan.n_chunks) for r in plan.rows(k)]
    assert plan.n_chunks == 10 and rows == list(range(48)) and len(plan.rows(9)) == 3
    for world in (1, 2, 3, 7):
        shares = [shard(list(range(10)), r, world) for r in range(world)]
        assert sorted(sum(shares, [])) == list(range(10))  # disjoint and complete
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_weights_fingerprint_follows_the_weights_not_the_file_format(weights, tmp_path):
    a = load_pretrained(weights[0])
    export_safetensors(a, tmp_path / "a.safetensors", {})
    assert weights_sha256(load_pretrained(tmp_path / "a.safetensors")) == weights_sha256(a)
    assert weights_sha256(load_pretrained(weights[1])) != weights_sha256(a)


def test_torchrun_two_processes_equal_one_process(tiny_cohort, weights, reference, tmp_path):
    out = tmp_path / "features.parquet"
    proc = torchrun(["embed", "--weights", weights[0], "--data", tiny_cohort, "--out", out, *CHUNK])
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = read_features(out)
    assert list(got.index) == list(reference.index)  # participant order
    np.testing.assert_allclose(got.to_numpy(), reference.to_numpy(), rtol=0, atol=1e-6)
    meta, ref_meta = got.attrs["metadata"], reference.attrs["metadata"]
    # the command adds its input check (run once, on rank 0) to what the library's transform records
    assert sorted(set(meta) - {"input_check"}) == sorted(ref_meta) and "input_check" in meta
    assert meta["checkpoint"] == ref_meta["checkpoint"]
    assert meta["encoder_identity"] == ref_meta["encoder_identity"]  # every rank's encoder is the same one
    assert meta["model_config"] == ref_meta["model_config"] and meta["checkpoint_meta"]["seed"] == 0
    assert meta["embedding"]["config"]["world_size"] == 2 and meta["embedding"]["config"]["chunk_size"] == 5
    assert not parts_dir(out).exists()  # the parts are removed once the table is written


def test_killed_run_resumes_without_recomputing(tiny_cohort, weights, reference, tmp_path):
    out = tmp_path / "features.csv"
    args = ["embed", "--weights", weights[0], "--data", tiny_cohort, "--out", out, *CHUNK]
    killed = subprocess.run([sys.executable, "-m", "anatlearn", *map(str, args), "--stop-after-chunks", "3"],
                            capture_output=True, text=True, env=_env(), timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL: no clean-up code ran
    parts = parts_dir(out)
    written = sorted(parts.glob("chunk-*.npz"))
    assert [p.name for p in written] == ["chunk-000000.npz", "chunk-000001.npz", "chunk-000002.npz"]
    assert not out.exists() and not list(parts.glob(".*.tmp"))
    stamps = {p.name: p.stat().st_mtime_ns for p in written}
    # the same command, now with two processes and the plain `anatlearn` script under torchrun
    proc = torchrun([*args, "--keep-parts"], module=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(3 of 10 chunks were already done)" in proc.stdout
    assert {p.name: p.stat().st_mtime_ns for p in written} == stamps  # not recomputed
    assert len(list(parts.glob("chunk-*.npz"))) == 10
    got = read_features(out)
    assert list(got.index) == list(reference.index)
    np.testing.assert_allclose(got.to_numpy(), reference.to_numpy(), rtol=0, atol=1e-6)


def test_rerun_with_other_weights_or_options_is_refused(tiny_cohort, weights, reference, tmp_path, capfd):
    out = tmp_path / "f.parquet"
    base = ["embed", "--data", tiny_cohort, "--out", out, *CHUNK]
    parts = parts_dir(out)
    shutil.copy(weights[0], tmp_path / "w.pt")
    # a first run that keeps its parts (as a killed run leaves them), then re-runs into the same --out
    assert main([*map(str, base), "--weights", str(weights[0]), "--split", "internal_test", "--keep-parts"]) == 0
    first = read_features(out)
    capfd.readouterr()
    # the table is there: a re-run is refused unless --overwrite, which still may not mix in the parts
    assert main([*map(str, base), "--weights", str(weights[0]), "--split", "internal_test"]) == 2
    assert "--overwrite" in capfd.readouterr().err
    base.append("--overwrite")
    cases = [(["--weights", weights[1], "--split", "internal_test"], "weights_sha256"),
             (["--weights", weights[0], "--split", "internal_test", "--precision", "bf16"], "options.dtype: 'float32' in the parts, 'bfloat16' now"),
             (["--weights", weights[0], "--split", "internal_test", "--no-jit"], "options.jit"),
             (["--weights", weights[0], "--split", "train"], "data.split: 'internal_test' in the parts, 'train' now"),
             (["--weights", weights[0], "--split", "internal_test", "--chunk-size", "6"], "chunk_size: 5 in the parts, 6 now")]
    for extra, expected in cases:
        code = main([*map(str, base), *map(str, extra)])
        _, err = capfd.readouterr()
        lines = [ln for ln in err.splitlines() if ln.startswith("anatlearn: error:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert "other weights or options" in lines[0] and expected in lines[0] and str(parts) in lines[0]
    # nothing was mixed: the table and the parts are the first run's
    np.testing.assert_array_equal(read_features(out).to_numpy(), first.to_numpy())
    # the same weights under another file name (a copy) are the same weights: accepted
    assert main([*map(str, base), "--weights", str(tmp_path / "w.pt"), "--split", "internal_test"]) == 0
    assert not parts.exists()


def test_bad_volume_leaves_no_parts(tiny_cohort, weights, tmp_path, capfd):
    data = tmp_path / "data"
    shutil.copytree(tiny_cohort, data)
    first = sorted((data / "images").iterdir())[0]
    arr = np.load(first)
    arr[0, 1, 1, 1] = np.nan
    np.save(first, arr)
    out = tmp_path / "f.parquet"
    assert main(["embed", "--weights", str(weights[0]), "--data", str(data), "--out", str(out), *CHUNK]) == 2
    assert "NaN/inf" in capfd.readouterr().err
    assert not out.exists() and not parts_dir(out).exists()
