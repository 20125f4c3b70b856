"""Issue 4 acceptance: preset + pretrained model + one optimisation step, end to end, from the
committed DICOM series and from the NIfTI pairs in data_samples/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, list_data_collate

import medtransfer as mt

SAMPLES = Path(__file__).resolve().parents[2] / "data_samples"


def _records(source: str) -> list[dict]:
    records = mt.data.load_manifest(SAMPLES / "manifest.csv")
    if source == "dicom":
        return [r for r in records if Path(r["image"]).is_dir()]
    return [r for r in records if str(r["image"]).endswith(".nii.gz")][:2]


def _one_step(model, batch_image, loss_fn) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    loss = loss_fn(model(batch_image))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.slow
@pytest.mark.parametrize("source", ["dicom", "nifti"])
def test_2_5d_segmentation_step_with_imagenet_encoder(source):
    model = mt.models.create_segmenter(
        "tf_efficientnet_lite0", num_classes=5, weights="imagenet", in_channels=3
    )
    train, _ = mt.transforms.presets.ct(
        "segmentation",
        spatial_dims=2,
        context=1,
        roi_size=(64, 64),
        num_samples=2,
        input_spec=model.encoder.input_spec,
        seed=0,
    )
    loader = DataLoader(
        Dataset(_records(source), transform=train), batch_size=2, collate_fn=list_data_collate
    )
    batch = next(iter(loader))
    assert batch["image"].shape[1:] == (3, 64, 64) and batch["label"].shape[1:] == (1, 64, 64)
    assert set(np.unique(batch["label"].numpy())) <= {0, 1, 2, 3, 4}
    before = [p.detach().clone() for p in model.parameter_groups()["stem"]]
    loss = _one_step(
        model,
        batch["image"].as_tensor(),
        lambda logits: torch.nn.functional.cross_entropy(
            logits, batch["label"].as_tensor()[:, 0].long()
        ),
    )
    assert np.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameter_groups()["stem"]))


@pytest.mark.slow
@pytest.mark.parametrize("source", ["dicom", "nifti"])
def test_3d_classification_step_with_inflated_encoder(source):
    model = mt.models.create_classifier("resnet18", num_classes=1, weights=None, spatial_dims=3)
    _, evaluate = mt.transforms.presets.ct("classification", roi_size=(64, 64, 32))
    records = [{**r, "label": float(r.get("has_lesion", 0))} for r in _records(source)]
    loader = DataLoader(Dataset(records, transform=evaluate), batch_size=len(records))
    batch = next(iter(loader))
    assert batch["image"].shape[1:] == (1, 64, 64, 32)
    target = batch["label"].float().reshape(-1, 1)
    loss = _one_step(
        model,
        batch["image"].as_tensor(),
        lambda logits: torch.nn.functional.binary_cross_entropy_with_logits(logits, target),
    )
    assert np.isfinite(loss)


def test_dicom_and_nifti_copies_give_the_same_preprocessed_volume():
    _, evaluate = mt.transforms.presets.ct("segmentation", roi_size=(32, 32, 32))
    dicom = next(
        r for r in mt.data.load_manifest(SAMPLES / "manifest.csv") if Path(r["image"]).is_dir()
    )
    nifti = {**dicom, "image": str(SAMPLES / "imagesTr" / "phantom-000.nii.gz")}
    a, b = evaluate(dicom), evaluate(nifti)
    np.testing.assert_allclose(a["image"].affine.numpy(), b["image"].affine.numpy(), atol=1e-4)
    assert torch.allclose(
        a["image"].as_tensor(), b["image"].as_tensor(), atol=2e-3
    )  # 0.5 HU / 400 HU window
    assert torch.equal(a["label"].as_tensor(), b["label"].as_tensor())


def test_a_batch_of_nifti_files_of_different_stored_types_collates(tmp_path):
    from monai.data import DataLoader, Dataset

    from medtransfer.transforms import LoadVolumed

    paths = []
    for i, dtype in enumerate((np.int16, np.float32, np.uint8)):
        paths.append(
            mt.io.save(np.ones((4, 4, 3), dtype), tmp_path / f"{i}.nii.gz", affine=np.eye(4))
        )
    loader = DataLoader(Dataset([{"image": p} for p in paths], LoadVolumed("image")), batch_size=3)
    batch = next(iter(loader))
    assert tuple(batch["image"].shape) == (3, 1, 4, 4, 3)
