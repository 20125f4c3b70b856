"""compare_to_scratch: nested label fractions, argument checks, and one small end-to-end run."""

from __future__ import annotations

import functools

import pytest

from medtransfer.diagnostics.candidates import Candidate
from medtransfer.diagnostics.scratch import _val_every, compare_to_scratch, nested_subsets
from medtransfer.errors import ConfigError


def _labelled(n: int, positives: int) -> list[dict]:
    return [{"label": int(i < positives), "case_id": f"c{i}"} for i in range(n)]


def test_nested_subsets_are_contained_and_deterministic():
    records = [{"case_id": f"c{i}"} for i in range(20)]
    subsets = nested_subsets(records, [1.0, 0.5, 0.25, 0.01])
    assert [len(subsets[f]) for f in (1.0, 0.5, 0.25, 0.01)] == [20, 10, 5, 1]
    assert set(subsets[0.01]) <= set(subsets[0.25]) <= set(subsets[0.5]) <= set(subsets[1.0])
    assert subsets == nested_subsets(records, [0.01, 0.25, 0.5, 1.0])  # order of the list
    assert subsets[0.5] != nested_subsets(records, [0.5], seed=1)[0.5]


def test_nested_subsets_are_stratified():
    records = _labelled(30, positives=6)  # 20% positives
    subsets = nested_subsets(records, [1.0, 0.5, 0.1], stratify=True)
    for f, expected_pos in ((1.0, 6), (0.5, 3), (0.1, 1)):
        positives = sum(records[i]["label"] for i in subsets[f])
        assert positives == expected_pos  # each class keeps its share, at least one case
    assert len(subsets[0.1]) == 1 + 2  # 0.1 * 24 negatives = 2.4 -> 2
    assert set(subsets[0.1]) <= set(subsets[0.5])


@pytest.mark.parametrize("fractions", [[], [0.0], [1.5], ["half"]])
def test_bad_fractions(fractions):
    with pytest.raises(ConfigError, match="label_fractions"):
        nested_subsets([{"label": 0}], fractions)


def test_argument_errors_come_before_any_training():
    records = _labelled(4, 2)
    common = {"task": "classification", "num_classes": 2, "steps": 1}
    with pytest.raises(ConfigError, match="no pretrained weights"):
        compare_to_scratch("resnet18:random", records, records, None, **common)
    with pytest.raises(ConfigError, match="exactly one of epochs= or steps="):
        compare_to_scratch("resnet18", records, records, None, task="classification",
                           num_classes=2)  # fmt: skip
    with pytest.raises(ConfigError, match="must not set"):
        compare_to_scratch("resnet18", records, records, None, finetuner={"seed": 3}, **common)
    with pytest.raises(ConfigError, match="seeds"):
        compare_to_scratch("resnet18", records, records, None, seeds=(0, 0), **common)
    with pytest.raises(ConfigError, match="test must be"):
        compare_to_scratch("resnet18", records, [], None, **common)


def test_validation_interval_gives_about_the_requested_points():
    # 8 records, batch 8, 1 sample each: 1 step per epoch
    assert _val_every(8, None, {}, None, 12, 6) == 2
    assert _val_every(8, None, {"batch_size": 4}, None, 12, 6) == 1  # 2 steps per epoch
    assert _val_every(8, None, {}, 40, None, 6) == 7
    assert _val_every(8, None, {}, 3, None, 6) == 1


@pytest.mark.slow
def test_compare_to_scratch_end_to_end(tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file

    import medtransfer as mt

    torch.manual_seed(0)  # a fixed "pretrained" resnet18 in a local weight file
    weights = tmp_path / "resnet18.safetensors"
    state = timm.create_model("resnet18").state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    cases = mt.data.synthetic.phantoms(6, task="segmentation", shape=(32, 32, 8), seed=0)
    preset = functools.partial(
        mt.transforms.presets.ct, "segmentation", roi_size=(32, 32), num_classes=5, num_samples=1
    )
    result = compare_to_scratch(
        Candidate("resnet18", weights=str(weights)), cases[:4], cases[4:], preset,
        task="segmentation", num_classes=5, seeds=(0, 1), steps=2, label_fractions=(1.0, 0.5),
        device="cpu", n_resamples=100, progress=False, run_dir=tmp_path / "runs",
        model_kwargs={"decoder_channels": (16, 16, 8, 8, 8)},
    )  # fmt: skip
    assert len(result.runs) == 2 * 2 * 2
    assert result.fractions == [1.0, 0.5] and result.seeds == [0, 1]
    assert result.n_train(1.0) == 4 and result.n_train(0.5) == 2
    assert {r["arm"] for r in result.runs} == {"pretrained", "scratch"}
    assert all(r["curve"] and r["steps"] == 2 for r in result.runs)
    assert all(len(r["cases"]["value"]) == 2 for r in result.runs)
    assert (tmp_path / "runs" / "f0.5" / "scratch" / "seed1").is_dir()
    forms = ("pretraining helps (", "no evidence either way (", "negative transfer: ")
    assert all(result.verdict(f).startswith(forms) for f in result.fractions)
    assert result.metadata["budget"] == "steps=2 per run"


def test_a_run_dir_of_another_comparison_is_refused_not_mixed(tmp_path):
    """Resuming is for the same comparison: other settings would silently reuse finished runs."""
    from medtransfer.diagnostics.scratch import _check_settings
    from medtransfer.errors import CheckpointError

    settings = {"seeds": [0, 1], "budget": {"steps": 5}, "train": ["a", "b"]}
    _check_settings(tmp_path, settings)
    _check_settings(tmp_path, dict(settings))  # the same comparison: resumes
    with pytest.raises(CheckpointError, match=r"budget, seeds differ"):
        _check_settings(tmp_path, {**settings, "seeds": [0], "budget": {"steps": 6}})


def test_an_unlabelled_training_case_is_named():
    from medtransfer.diagnostics.scratch import nested_subsets
    from medtransfer.errors import ConfigError

    with pytest.raises(ConfigError, match="record 1 has no 'label'"):
        nested_subsets([{"label": 0}, {"image": "x.nii.gz"}], [1.0], stratify=True)
