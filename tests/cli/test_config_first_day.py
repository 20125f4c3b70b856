"""Config fields a researcher's first day needs (issue 11: items 2, 9, 10 and 11, config part)."""

from __future__ import annotations

import pytest

from medtransfer.cli.config import RunConfig, load_config
from medtransfer.errors import ConfigError
from tests.cli.test_config import MINIMAL, error_of, write


def test_steps_alone_means_no_epochs(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "training:\n  steps: 30\n"))
    assert cfg.training.steps == 30 and cfg.training.epochs is None
    assert cfg.fit_kwargs() == {"steps": 30}
    assert load_config(write(tmp_path, MINIMAL)).fit_kwargs() == {"epochs": 20}
    via_set = load_config(write(tmp_path, MINIMAL), {"training.steps": 5})
    assert via_set.fit_kwargs() == {"steps": 5}
    again = RunConfig.model_validate_json(cfg.model_dump_json())  # run_config.yaml round trip
    assert again.fit_kwargs() == {"steps": 30}


def test_steps_and_epochs_together_are_refused(tmp_path):
    message = error_of(tmp_path, MINIMAL + "training:\n  steps: 30\n  epochs: 5\n")
    assert "training.epochs: give exactly one of epochs and steps" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("preprocessing:\n  preset: MRI\n", "(got 'MRI'); did you mean 'mri'?"),
        (
            "preprocessing:\n  roi: [64, 64]\n",
            "preprocessing.roi: unknown key; did you mean 'roi_size'?",
        ),  # fmt: skip
        (
            "training:\n  learning_rate: 0.01\n",
            "training.learning_rate: unknown key; did you mean 'lr'?",
        ),  # fmt: skip
        ("training:\n  num_epochs: 3\n", "did you mean 'epochs'?"),
        ("evaluation:\n  postprocess: {largest: [1]}\n", "did you mean 'largest_component'?"),
    ],
)
def test_did_you_mean(tmp_path, extra, expected):
    assert expected in error_of(tmp_path, MINIMAL + extra)


def test_postprocess_is_off_unless_the_config_asks(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.postprocess_options() is None
    for off in ("null", "false", "{}"):
        text = MINIMAL + f"evaluation:\n  postprocess: {off}\n"
        assert load_config(write(tmp_path, text)).postprocess_options() is None
    text = MINIMAL + "evaluation:\n  postprocess: {largest_component: [liver], min_island_mm3: {lesion: 20}}\n"  # fmt: skip
    cfg = load_config(write(tmp_path, text))
    assert cfg.postprocess_options() == {
        "largest_component": ["liver"],
        "min_island_mm3": {"lesion": 20.0},
    }
    assert cfg.evaluation.postprocess.largest_component == ["liver"]
    every = load_config(write(tmp_path, MINIMAL + "evaluation:\n  postprocess: true\n"))
    assert every.postprocess_options() == {"largest_component": True}


def test_postprocess_class_names_are_checked_when_known(tmp_path):
    text = (
        "data:\n  manifest: m.csv\n  task: segmentation\n  class_names: [liver, lesion]\n"
        "evaluation:\n  postprocess: {largest_component: [livr]}\n"
    )
    message = error_of(tmp_path, text)
    assert (
        "evaluation.postprocess.largest_component" in message and "did you mean 'liver'" in message
    )


def test_manifest_label_arguments(tmp_path):
    text = (
        "data:\n  manifest: m.csv\n  task: classification\n  label_key: diagnosis\n"
        "  class_names: [benign, malignant]\n"
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.manifest_kwargs() == {"label_key": "diagnosis", "class_names": ["benign", "malignant"]}  # fmt: skip
    seg = load_config(write(tmp_path, MINIMAL + "  class_names: [liver]\n"))
    assert seg.manifest_kwargs() == {}  # segmentation class names are label 1, 2, ...
    custom = load_config(write(tmp_path, MINIMAL + "  label_key: seg\n"))
    assert custom.manifest_kwargs() == {"label_key": "seg"}


def test_config_error_is_raised_for_an_unknown_postprocess_key(tmp_path):
    with pytest.raises(ConfigError, match="evaluation.postprocess.fill_hole"):
        load_config(write(tmp_path, MINIMAL + "evaluation:\n  postprocess: {fill_hole: true}\n"))
