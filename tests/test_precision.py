"""anatlearn.precision.resolve: one meaning of a precision setting for pretrain (its ``amp``, full precision
spelt ``off``) and finetune/predict (``--precision``); errors name the caller's parameter."""

import pytest
import torch

from anatlearn.errors import ConfigError
from anatlearn.precision import resolve

CPU, GPU = torch.device("cpu"), torch.device("cuda")


def test_cpu_and_gpu_meanings(monkeypatch):
    assert resolve("auto", CPU) == (None, False) and resolve("fp32", CPU) == (None, False)
    assert resolve("bf16", CPU) == (torch.bfloat16, False)
    assert resolve("off", CPU, name="amp", fp32="off") == (None, False)
    assert resolve("auto", CPU, name="amp", fp32="off") == (None, False)
    # on a GPU, auto follows bf16 support; fp16 needs the scaler (the device object alone decides, no GPU used)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve("auto", GPU) == (torch.bfloat16, False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve("auto", GPU) == (torch.float16, True) and resolve("fp16", GPU) == (torch.float16, True)


def test_errors_name_the_parameter():
    with pytest.raises(ConfigError, match=r"amp='fp16' needs a GPU; on CPU use amp='bf16' or amp='off'"):
        resolve("fp16", CPU, name="amp", fp32="off")
    with pytest.raises(ConfigError, match=r"precision='fp16' needs a GPU"):
        resolve("fp16", CPU)
    with pytest.raises(ConfigError, match=r"unknown precision 'fp8'"):
        resolve("fp8", CPU)
    with pytest.raises(ConfigError, match=r"unknown amp 'fp8'; choose one of auto, off, bf16, fp16"):
        resolve("fp8", CPU, name="amp", fp32="off")
