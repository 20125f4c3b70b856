"""Config validation: one ConfigError listing each bad field, allowed values, suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtransfer.cli.config import RunConfig, load_config
from medtransfer.cli.config_messages import field_reference
from medtransfer.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MINIMAL = "data:\n  manifest: cases/manifest.csv\n  task: segmentation\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value)


def test_minimal_config_gets_defaults_and_resolves_paths(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "output:\n  run_dir: runs/a\n"))
    assert cfg.data.manifest == tmp_path / "cases" / "manifest.csv"
    assert cfg.output.run_dir == tmp_path / "runs" / "a"
    assert cfg.model.encoder == "tf_efficientnet_lite0" and cfg.model.weights == "imagenet"
    assert cfg.training.epochs == 20 and cfg.derived_in_channels() == 1


def test_weight_file_is_resolved_but_imagenet_and_null_are_kept(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "model:\n  weights: w/enc.safetensors\n"))
    assert cfg.model.weights == str(tmp_path / "w" / "enc.safetensors")
    assert load_config(write(tmp_path, MINIMAL + "model:\n  weights: null\n")).model.weights is None


def test_unknown_key_suggests_the_closest_and_lists_allowed(tmp_path):
    message = error_of(tmp_path, MINIMAL + "training:\n  epoch: 3\n")
    assert "training.epoch: unknown key; did you mean 'epochs'?" in message
    assert "Allowed keys: amp, batch_size" in message


def test_unknown_section_is_reported(tmp_path):
    message = error_of(tmp_path, MINIMAL + "outptu:\n  run_dir: x\n")
    assert "outptu: unknown key; did you mean 'output'?" in message


def test_every_bad_field_is_listed_once_in_one_error(tmp_path):
    text = (
        "data:\n  manifest: m.csv\n  task: segmentaton\n"
        "training:\n  epochs: -1\n  lr: fast\n"
        "model:\n  conversion: acs2\n"
    )
    message = error_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'run.yaml'} has 4 invalid fields:")
    assert (
        "data.task: must be one of 'segmentation' or 'classification' (got 'segmentaton'); "
        "did you mean 'segmentation'?" in message
    )
    assert "training.epochs: must be > 0 (got -1)" in message
    assert "training.lr: must be a valid number" in message and "(got 'fast')" in message
    assert "model.conversion: must be one of 'inflate' or 'acs' (got 'acs2')" in message


def test_wrong_type_in_a_union_gives_one_line(tmp_path):
    message = error_of(tmp_path, MINIMAL + "preprocessing:\n  window: 5\n")
    assert message.count("preprocessing.window") == 1
    assert "wrong type (got 5)" in message


def test_missing_required_field(tmp_path):
    message = error_of(tmp_path, "data:\n  task: segmentation\n")
    assert "data.manifest: required; missing" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "preprocessing:\n  spatial_dims: 3\n  context: 1\n",
            "preprocessing.context: must be 0 with spatial_dims=3 (got 1)",
        ),
        ("model:\n  conversion: acs\n", "model.conversion: is for preprocessing.spatial_dims=3"),
        (
            "training:\n  steps: 10\n  epochs: 5\n",
            "training.epochs: give exactly one of epochs and steps",
        ),
        ("preprocessing:\n  preset: mri\n  window: abdomen\n", "preprocessing.window: is for"),
        (
            "preprocessing:\n  spatial_dims: 2\n  roi_size: [64, 64, 32]\n",
            "preprocessing.roi_size: needs 2 values",
        ),
        (
            "training:\n  strategy: lora\n  strategy_args: {decay: 0.5}\n",
            "training.strategy_args: ['decay'] are not arguments of ['lora']",
        ),
        (
            "preprocessing:\n  context: 1\nmodel:\n  in_channels: 4\n",
            "model.in_channels: 4 must be a multiple of the 3 channel(s)",
        ),
        (
            "data:\n  manifest: m.csv\n  task: segmentation\n  split: {fractions: [0.5, 0.5, 0.5]}\n",
            "data.split.fractions: must be >= 0 and sum to 1",
        ),
    ],
)
def test_impossible_combinations(tmp_path, extra, expected):
    text = extra if extra.startswith("data:") else MINIMAL + extra
    assert expected in error_of(tmp_path, text)


def test_yaml_and_file_errors_are_config_errors(tmp_path):
    assert "is not valid YAML" in error_of(tmp_path, "data: [unclosed\n")
    assert "must hold a mapping" in error_of(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_are_validated_too(tmp_path):
    path = write(tmp_path, MINIMAL)
    assert load_config(path, {"training.epochs": 2}).training.epochs == 2
    with pytest.raises(ConfigError, match="training.epochs: must be > 0"):
        load_config(path, {"training.epochs": 0})


def test_api_keyword_arguments():
    cfg = RunConfig.model_validate(
        {
            "data": {"manifest": "m.csv", "task": "segmentation", "class_names": ["a", "b"]},
            "preprocessing": {"context": 1, "window": ["abdomen", "bone"], "roi_size": [64, 64]},
            "training": {"strategy": ["lora", "discriminative"], "strategy_args": {"rank": 8}},
        }
    )
    assert cfg.num_classes() == 3 and cfg.derived_in_channels() == 6
    preset = cfg.preset_kwargs(3)
    assert preset["context"] == 1 and preset["window"] == ["abdomen", "bone"]
    assert preset["num_classes"] == 3 and "mean" not in preset
    model = cfg.model_kwargs(3, None)
    assert model["in_channels"] == 6 and model["weights"] is None
    assert cfg.strategy_kwargs() == [("lora", {"rank": 8}), ("discriminative", {})]
    assert cfg.fit_kwargs() == {"epochs": 20}
    assert cfg.postprocess_options() is None  # opt-in


def test_example_configs_validate():
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert len(paths) >= 3
    for path in paths:
        load_config(path)


def test_field_reference_lists_every_field():
    table = field_reference(RunConfig)
    for field in ("data.split.fractions", "preprocessing.context", "training.strategy_args"):
        assert f"`{field}`" in table


def test_docs_field_reference_is_current():
    docs = (CONFIGS.parent / "docs" / "cli.md").read_text()
    assert field_reference(RunConfig) in docs, (
        "regenerate the table in docs/cli.md from field_reference()"
    )


def test_config_and_presets_share_one_spatial_dims_default():
    import inspect

    import medtransfer as mt
    from medtransfer.cli.config_sections import PreprocessingConfig

    for preset in (mt.transforms.presets.ct, mt.transforms.presets.mri):
        assert inspect.signature(preset).parameters["spatial_dims"].default is None
    assert mt.transforms.presets.DEFAULT_SPATIAL_DIMS == PreprocessingConfig().spatial_dims == 2
    assert PreprocessingConfig(roi_size=[8, 8, 8]).spatial_dims == 3  # as presets.ct(roi_size=...)
    _, evaluate = mt.transforms.presets.mri(roi_size=(8, 8, 8))
    assert "SliceStackd" not in str(evaluate.transforms)
    _, evaluate = mt.transforms.presets.mri()
    assert "SliceStackd" in str(evaluate.transforms)
