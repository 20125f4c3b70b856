"""Weight files are read without running code from them."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from medtransfer.encoders.safe_load import load_state_dict_file
from medtransfer.errors import WeightsError


class _Payload:
    """Unpickling this object calls ``open(marker, "w")``, which creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_safetensors_round_trip(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a.weight": torch.arange(6.0).reshape(2, 3)}, str(path))
    state = load_state_dict_file(path)
    assert torch.equal(state["a.weight"], torch.arange(6.0).reshape(2, 3))


def test_torch_file_nested_and_data_parallel_prefix(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": {"module.conv.weight": torch.ones(2, 2)}}, path)
    state = load_state_dict_file(path)
    assert list(state) == ["conv.weight"]
    assert torch.equal(state["conv.weight"], torch.ones(2, 2))


def test_pickled_callable_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="pickled Python objects") as info:
        load_state_dict_file(path)
    assert str(path) in str(info.value)
    assert not marker.exists()  # nothing in the file ran


def test_legacy_plain_pickle_with_callable_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"payload": _Payload(marker)}, handle, protocol=2)
    with pytest.raises(WeightsError):
        load_state_dict_file(path)
    assert not marker.exists()


def test_truncated_and_unknown_files(tmp_path):
    good = tmp_path / "w.safetensors"
    save_file({"a": torch.ones(100)}, str(good))
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(good.read_bytes()[:50])
    with pytest.raises(WeightsError, match="cut.safetensors"):
        load_state_dict_file(bad)
    with pytest.raises(WeightsError, match="unsupported extension"):
        load_state_dict_file(_touch(tmp_path / "w.npz"))
    with pytest.raises(WeightsError, match="not found"):
        load_state_dict_file(tmp_path / "missing.pth")


def test_whole_model_object_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), path)  # a pickled module, not a state dict
    with pytest.raises(WeightsError):
        load_state_dict_file(path)


def _touch(path):
    path.write_bytes(b"x")
    return path
