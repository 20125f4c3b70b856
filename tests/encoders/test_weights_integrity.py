"""Weight integrity: damaged checksum sidecars, unverified cache files, imports that do not fit."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

import medtransfer as mt
from medtransfer.cli import main
from medtransfer.encoders import sources
from medtransfer.errors import WeightsError


def _sidecar(path):
    return path.with_name(path.name + ".sha256")


@pytest.mark.parametrize("content", ["", "\n  \n", "not-a-checksum  resnet18.safetensors\n"])
def test_empty_or_damaged_cache_sidecar_is_an_error_naming_it(resnet18_file, content):
    cached = mt.encoders.import_weights("resnet18", resnet18_file)
    _sidecar(cached).write_text(content)
    with pytest.raises(WeightsError, match="resnet18.safetensors.sha256") as info:
        sources.resolve_weights("resnet18", "imagenet")
    assert "import" in str(info.value)  # says how to fix it


def test_empty_sidecar_of_an_explicit_file_is_an_error(resnet18_file, tmp_path):
    own = tmp_path / "mine.safetensors"
    own.write_bytes(resnet18_file.read_bytes())
    _sidecar(own).write_text("")
    with pytest.raises(WeightsError, match=r"mine\.safetensors\.sha256"):
        sources.resolve_weights("resnet18", own)


def test_resolved_weights_say_whether_a_checksum_was_verified(resnet18_file, tmp_path):
    cached = mt.encoders.import_weights("resnet18", resnet18_file)
    assert sources.resolve_weights("resnet18", "imagenet").verified
    _sidecar(cached).unlink()  # a file copied into the cache by hand
    assert not sources.resolve_weights("resnet18", "imagenet").verified
    assert not sources.resolve_weights("resnet18", resnet18_file).verified
    digest = sources.sha256_file(resnet18_file)
    assert sources.resolve_weights("resnet18", resnet18_file, sha256=digest).verified


def test_cli_verify_does_not_call_an_unverified_file_ok(resnet18_file, capsys):
    cached = mt.encoders.import_weights("resnet18", resnet18_file)
    assert main(["weights", "verify", "resnet18"]) == 0
    assert "ok (checksum matches)" in capsys.readouterr().out

    _sidecar(cached).unlink()
    assert main(["weights", "verify", "resnet18"]) == 1
    captured = capsys.readouterr()
    assert "ok" not in captured.out.split("resnet18", 2)[-1].split()[:4]
    assert "UNVERIFIED" in captured.out and "no checksum recorded" in captured.out
    assert "--sha256" in captured.err  # how to record one

    _sidecar(cached).write_text("")
    assert main(["weights", "verify", "resnet18"]) == 1
    assert "FAILED" in capsys.readouterr().out


def _state(name, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs).state_dict()


def test_import_refuses_weights_of_another_architecture(tmp_path):
    wrong = tmp_path / "resnet34.safetensors"
    save_file(_state("resnet34"), str(wrong))  # same layer names, more blocks
    wider = tmp_path / "wide.safetensors"
    state = _state("resnet18")
    for key in ("layer4.1.conv2.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias"):
        state[key] = torch.zeros(2 * state[key].shape[0], *state[key].shape[1:])
    save_file(state, str(wider))  # same names, other shapes
    for path, words in ((wrong, "unexpected"), (wider, "shape mismatch")):
        with pytest.raises(WeightsError, match=words) as info:
            mt.encoders.import_weights("resnet18", path)
        assert str(path) in str(info.value) and "resnet18" in str(info.value)
    assert not sources.cache_file("resnet18").parent.exists() or not any(
        sources.cache_file("resnet18").parent.iterdir()
    )


def test_refused_import_leaves_existing_cache_untouched(resnet18_file, tmp_path):
    cached = mt.encoders.import_weights("resnet18", resnet18_file)
    before = (cached.read_bytes(), _sidecar(cached).read_text())
    wrong = tmp_path / "conv.safetensors"
    state = _state("resnet18")
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    save_file(state, str(wrong))
    with pytest.raises(WeightsError, match=r"conv1\.weight"):
        mt.encoders.import_weights("resnet18", wrong)
    assert (cached.read_bytes(), _sidecar(cached).read_text()) == before
    assert sorted(p.name for p in cached.parent.iterdir()) == [
        "resnet18.safetensors",
        "resnet18.safetensors.sha256",
    ]


def test_import_accepts_another_classifier_head(tmp_path):
    other_head = tmp_path / "r18-10classes.safetensors"
    save_file(_state("resnet18", num_classes=10), str(other_head))
    cached = mt.encoders.import_weights("resnet18", other_head)
    encoder = mt.encoders.create("resnet18", weights="imagenet")
    assert encoder.weights.path == cached


def test_import_of_an_unknown_encoder_name_is_refused(resnet18_file):
    with pytest.raises(WeightsError, match="resnet_18"):
        mt.encoders.import_weights("resnet_18", resnet18_file)


def test_cli_import_of_a_mismatched_file_fails_cleanly(tmp_path, capsys):
    wrong = tmp_path / "resnet34.safetensors"
    save_file(_state("resnet34"), str(wrong))
    assert main(["weights", "import", str(wrong), "--name", "resnet18"]) == 1
    err = capsys.readouterr().err
    assert "medtransfer: error:" in err and "internal error" not in err
    assert not sources.cache_file("resnet18").exists()
