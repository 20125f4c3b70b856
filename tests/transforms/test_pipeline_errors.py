"""Our errors come out of MONAI pipelines, loaders and the FineTuner as themselves."""

from __future__ import annotations

import pytest

import medtransfer as mt
from medtransfer.errors import InputPathError


def test_a_missing_file_in_a_preset_pipeline_is_an_input_path_error(tmp_path):
    _, evaluate = mt.transforms.presets.ct("segmentation", roi_size=(16, 16, 8))
    record = {"image": str(tmp_path / "gone.nii.gz"), "label": str(tmp_path / "gone_label.nii.gz")}
    with pytest.raises(RuntimeError):  # what MONAI's Compose does on its own
        evaluate(record)
    with pytest.raises(InputPathError, match="gone.nii.gz"):
        mt.transforms.run_pipeline(evaluate, record)


def test_other_errors_pass_unchanged():
    with pytest.raises(ZeroDivisionError), mt.transforms.medtransfer_errors():
        _ = 1 / 0


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_finetuner_reports_the_bad_record_not_monais_wrapper(tmp_path, cache):
    cases = mt.data.synthetic.phantoms(2, task="segmentation", seed=0, shape=(16, 16, 8))
    cases[1]["image"] = str(tmp_path / "missing_case.nii.gz")
    train, _ = mt.transforms.presets.ct("segmentation", roi_size=(16, 16, 8), num_samples=1)
    model = mt.models.create_segmenter("resnet18", 5, weights=None, spatial_dims=3)
    tuner = mt.training.FineTuner(
        model,
        task="segmentation",
        run_dir=tmp_path / "run",
        progress="quiet",
        cache="none",
        batch_size=2,
    )
    with pytest.raises(InputPathError, match="missing_case.nii.gz"):
        tuner.fit(cases, None, epochs=1, train_transform=train)
