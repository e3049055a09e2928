"""Shared fixtures: small generated cohorts (created once per test session)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

TESTS = Path(__file__).resolve().parent
# Marked `slow` here, not in their files (several helpers own them): `make test-fast` (-m "not slow") leaves them
# out; `make test` and CI run them. Each takes ten seconds or more on the idle 2-core machine (docs/results.md,
# "What the tests guarantee"): end-to-end runs, ANTs registrations, torchrun, killed-and-resumed runs. An entry
# is a test file or one test of it (``file::test``, every parametrisation).
SLOW = (
    "prep/test_real_head.py", "test_wheel.py", "demo/test_demo.py",
    "prep/test_bids_app.py", "prep/test_alignment.py",
    "prep/test_cli.py::test_failed_subject_reported_others_prepared_then_resume",
    "prep/test_shard.py::test_two_shards_and_merge_equal_one_run",
    "embed/test_sharding.py::test_killed_run_resumes_without_recomputing",
    "embed/test_sharding.py::test_torchrun_two_processes_equal_one_process",
    "pretrain/test_interrupt.py", "pretrain/test_resume.py", "pretrain/test_distributed.py",
    "finetune/test_finetune.py::test_random_init_cli_final_model_and_predict",
    "finetune/test_finetune.py::test_shuffled_labels_give_chance_out_of_fold",
    "finetune/test_finetune.py::test_killed_run_resumes_to_the_same_predictions",
    "finetune/test_finetune.py::test_a_planted_leak_is_caught",
    "finetune/test_finetune.py::test_pretrained_encoder_fine_tuned_and_scored_from_its_own_predictions",
    "finetune/test_report_runs.py::test_runs_and_probe_side_by_side_with_the_paired_tests",
    "pretrain/test_retention.py", "test_file_modes.py::test_demo_outputs_are_readable_by_colleagues",
    "study/test_resume.py::test_two_worker_processes_give_the_one_process_result",
    "study/test_resume.py::test_interrupted_study_resumes_to_the_uninterrupted_result",
    "study/test_resume.py::test_a_grid_of_ablations_alone_runs_and_aggregates",
    "study/test_run3.py::test_run3_shape_trains_evaluates_and_pairs_the_new_methods",
    "studies/test_snapshot_reproduce.py::test_a_snapshot_restored_on_a_fresh_checkout_continues_to_the_same_result",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath)).resolve().relative_to(TESTS).as_posix()
        name = f"{path}::{item.originalname}"
        if path in SLOW or name in SLOW:
            item.add_marker(pytest.mark.slow)


TINY_SHAPE = (32, 40, 32)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """48 healthy subjects, 4 sites (one held out), 32x40x32 volumes."""
    from anatlearn.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort") / "healthy", 48, TINY_SHAPE, seed=1, n_sites=4)


@pytest.fixture(scope="session")
def tiny_downstream(tmp_path_factory):
    """40 subjects of the same world: AD-like and SCZ-like patients with matched controls."""
    from anatlearn.synthetic import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort") / "downstream", 40, TINY_SHAPE, seed=1, n_sites=4,
                           diseases=("AD-like", "SCZ-like"))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module's tests: identical float reductions in every run it compares."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
