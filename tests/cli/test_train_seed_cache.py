"""``training.seed`` makes the new layers reproducible; ``training.cache: disk`` works from a config."""

from __future__ import annotations

import pytest
import torch

from medtransfer.cli import main
from medtransfer.cli.config import load_config
from medtransfer.cli.runs import _model
from tests.fixtures import write_tiny_project


@pytest.fixture()
def project(tmp_path):
    return write_tiny_project(tmp_path), tmp_path / "runs" / "tiny"


def _new_layers(model):
    return {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}


def test_two_builds_of_one_config_have_the_same_new_layers(project):
    config, _ = project
    cfg = load_config(config)
    names = cfg.data.class_names
    torch.manual_seed(123)
    first = _new_layers(_model(cfg, names, None))
    torch.manual_seed(456)  # whatever the global RNG did before
    second = _new_layers(_model(cfg, names, None))
    assert first.keys() == second.keys() and any("decoder" in k for k in first)
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = _new_layers(_model(load_config(config, {"training.seed": 1}), names, None))
    assert not all(torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


def test_cache_dir_is_a_config_field_resolved_against_the_config_folder(project):
    config, run = project
    assert load_config(config).training.cache_dir is None
    cfg = load_config(config, {"training.cache_dir": "cache/ct"})
    assert cfg.training.cache_dir == config.parent / "cache" / "ct"
    assert cfg.finetuner_kwargs()["cache_dir"] == config.parent / "cache" / "ct"


@pytest.mark.slow
def test_disk_cache_trains_one_step_with_the_default_cache_dir(project, capsys):
    config, run = project
    args = ["train", str(config), "--set", "training.cache=disk", "--set", "training.steps=1"]
    assert main(args) == 0, capsys.readouterr().err
    assert (run / "checkpoints" / "last.pt").is_file()
    assert any((run / "cache").iterdir())  # the default cache_dir is inside the run folder
