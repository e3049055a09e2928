"""Library errors name Python parameters; the pretrain CLI names its flags instead (anatlearn.cli.flags)."""

from anatlearn.cli.flags import with_flags
from anatlearn.cli.pretrain import PARAMETER_FLAGS
from anatlearn.pretrain import TrainConfig


def test_parameters_become_flags_only_where_they_stand_alone():
    cases = {
        "batch_size 1: a contrastive method needs at least 2 subjects per batch":
            "--batch-size 1: a contrastive method needs at least 2 subjects per batch",
        "save_epochs 9: milestone epochs must be whole numbers from 1 to epochs (5)":
            "--save-epochs 9: milestone epochs must be whole numbers from 1 to --epochs (5)",
        "run already holds a run (config.toml); use resume=True to continue it or overwrite=True to replace it":
            "run already holds a run (config.toml); use --resume to continue it or --overwrite to replace it",
        "amp='fp16' needs a GPU; on CPU use amp='bf16' or amp='off'": "--precision fp16 needs a GPU; on CPU use --precision bf16 or --precision fp32",
        # a TOML file's keys and key=value pairs stay as written
        "c.toml: unknown key 'x' (valid keys: epochs, batch_size, keep_last, tensorboard)":
            "c.toml: unknown key 'x' (valid keys: epochs, batch_size, keep_last, tensorboard)",
        "a config with batch_size=32": "a config with batch_size=32",
        # a resume's differences (anatlearn.errors.differences) name the flag to give again
        "another config (batch_size: 32 in the run, 16 now; keep_last: 2 in the run, 3 now)":
            "another config (--batch-size: 32 in the run, 16 now; --keep-last: 2 in the run, 3 now)",
    }
    for message, expected in cases.items():
        assert with_flags(message, PARAMETER_FLAGS) == expected


def test_config_errors_name_parameters_not_flags():
    for bad in (dict(batch_size=1, method="simclr"), dict(keep_last=0), dict(save_epochs=[99], epochs=2)):
        try:
            TrainConfig(data="d", out="o", **bad).validate()
        except Exception as exc:  # noqa: BLE001 - the message is what is tested
            assert "--" not in str(exc) and next(iter(bad)) in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
