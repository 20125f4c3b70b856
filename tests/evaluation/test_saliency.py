"""saliency: the peak falls in the evidence (a bright blob), on the source grid; the model is left
as it was; the sampling grid of each level; errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import medtransfer as mt
from medtransfer.errors import ConfigError, MedTransferError, ModelError
from medtransfer.evaluation.explain.alignment import trace_grids, upsample_aligned
from medtransfer.evaluation.explain.layers import feature_levels, resolve_layer
from medtransfer.evaluation.explain.report_cases import pick_cases
from tests.evaluation.blobs import (
    blob_case,
    blob_records,
    brightness_classifier,
    calibrate_head,
)
from tests.fixtures import make_affine

# (spatial_dims of the model, image shape, blob radius in voxels, preset arguments)
TASKS = {
    "2d-slices": (2, (48, 48, 5), 6, {"roi_size": (48, 48), "spatial_dims": 2}),
    "2.5d-slices": (2, (48, 48, 5), 6, {"roi_size": (48, 48), "spatial_dims": 2, "context": 1}),
    "3d": (3, (32, 32, 32), 5, {"roi_size": (32, 32, 32), "spatial_dims": 3}),
}


def _task(name: str) -> tuple:
    dims, shape, radius, args = TASKS[name]
    preset = mt.transforms.presets.ct("classification", window="abdomen", **args)
    model = brightness_classifier(dims, in_channels=2 * args.get("context", 0) + 1)
    return calibrate_head(model, preset, shape, radius), preset, shape, radius


def _peak(heat: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(heat.argmax()), tuple(heat.shape)))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TASKS))
def test_peak_falls_inside_the_blob(name):
    model, preset, shape, radius = _task(name)
    rng = np.random.default_rng(3)
    hits = []
    for _ in range(8):
        image, mask = blob_case(rng, shape, radius)
        heat = mt.evaluation.saliency(model, torch.as_tensor(image), preset, device="cpu")
        assert tuple(heat.shape) == shape and heat.dtype == torch.float32
        assert float(heat.min()) >= 0.0 and float(heat.max()) == pytest.approx(1.0)
        hits.append(bool(mask[_peak(heat)]))
    assert sum(hits) >= 7, f"{name}: the peak fell in the blob in {sum(hits)} of 8 cases"


@pytest.mark.slow
def test_gradcampp_and_a_2d_radiograph():
    preset = mt.transforms.presets.xray(roi_size=(64, 64), augment=False)
    model = brightness_classifier(2)
    rng = np.random.default_rng(4)
    hits = 0
    for method in ("gradcam", "gradcampp"):
        for _ in range(4):
            image, mask = blob_case(rng, (80, 72), 8)  # resized to 64 x 64 and back
            heat = mt.evaluation.saliency(
                model, torch.as_tensor(image), preset, method, device="cpu"
            )
            assert tuple(heat.shape) == (80, 72) and heat.meta["saliency_method"] == method
            hits += bool(mask[_peak(heat)])
    assert hits >= 7


@pytest.mark.slow
@pytest.mark.parametrize("dims", [2, 3])
def test_nifti_source_grid_through_crop_resampling_and_orientation(tmp_path, dims):
    """Air around a body box, LPS-like axes, anisotropic voxels: the map comes back on the file's
    own grid (shape and affine of mt.io.load) and peaks inside the blob there."""
    shape = (40, 36, 12)
    rng = np.random.default_rng(5)
    image = np.full(shape, -1000.0, dtype=np.float32)
    image[4:36, 3:33, :] = rng.normal(40.0, 10.0, size=(32, 30, 12))
    grid = np.indices(shape, dtype=np.float32)
    centre, radii = (12.0, 22.0, 6.0), (6.0, 6.0, 2.5)
    mask = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0
    image[mask] += 150.0
    affine = make_affine(spacing=(1.2, 1.0, 3.0), angles=(0.0, 0.0, 0.05))
    path = mt.io.save(mt.io.make_image(image, affine, source="memory"), tmp_path / "case.nii.gz")
    roi = (48, 48) if dims == 2 else (48, 48, 16)
    preset = mt.transforms.presets.ct(
        "classification", window="abdomen", spacing=(1.5, 1.5, 3.0), roi_size=roi,
        spatial_dims=dims,
    )  # fmt: skip
    heat = mt.evaluation.saliency(brightness_classifier(dims), path, preset, device="cpu")
    loaded = mt.io.load(path)
    assert tuple(heat.shape) == tuple(loaded.shape)
    np.testing.assert_allclose(heat.affine.numpy(), loaded.affine.numpy(), atol=1e-4)
    assert heat.meta["spacing"] == pytest.approx(loaded.meta["spacing"], abs=1e-4)
    assert mask[_peak(heat)], f"peak {_peak(heat)} outside the blob centred on {centre}"
    assert float(heat.numpy()[~mask].mean()) < float(heat.numpy()[mask].mean())


def test_meta_target_and_the_model_left_as_it_was():
    dims, shape, radius, args = TASKS["2d-slices"]
    preset = mt.transforms.presets.ct("classification", window="abdomen", **args)
    model = brightness_classifier(2, num_classes=3)
    model.train()
    model.encoder.body.layer1.requires_grad_(False)
    for p in model.head.parameters():
        p.grad = torch.ones_like(p)
    flags = [p.requires_grad for p in model.parameters()]
    hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())
    image, _ = blob_case(np.random.default_rng(0), shape, radius)
    heat = mt.evaluation.saliency(model, torch.as_tensor(image), preset, target=1, device="cpu")
    assert heat.meta["target"] == 1 and heat.meta["saliency_method"] == "gradcam"
    assert heat.meta["layer"] == "encoder.body.layer1" and 0.0 < heat.meta["score"] < 1.0
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.head.parameters())
    assert all(p.grad is None for p in model.encoder.parameters())
    assert sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules()) == hooks
    default = mt.evaluation.saliency(model, torch.as_tensor(image), preset, device="cpu")
    assert default.meta["target"] == 2  # the predicted class: the one reading the brightness


def test_layer_choice_from_feature_info():
    model = mt.models.create_classifier("resnet18", 1, weights=None)
    assert feature_levels(model) == [f"encoder.body.{n}" for n in
                                     ("act1", "layer1", "layer2", "layer3", "layer4")]  # fmt: skip
    sizes_224 = [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert resolve_layer(model, None, sizes_224) == "encoder.body.layer4"
    assert resolve_layer(model, -2) == "encoder.body.layer3"
    assert resolve_layer(model, "encoder.body.layer3.0") == "encoder.body.layer3.0"
    convnext = mt.models.create_classifier("convnext_nano", 1, weights=None)
    assert feature_levels(convnext)[-1] == "encoder.body.stages_3"  # flattened by features_only


@pytest.mark.parametrize(
    ("name", "offsets"),
    [
        ("resnet18", (0.0, 0.0, 0.0, 0.0, 0.0)),  # symmetric padding: cell i at s * i
        ("convnext_nano", (1.5, 3.5, 7.5, 15.5)),  # patchifying: cell i at s * i + (s - 1) / 2
        ("tf_efficientnet_lite0", (1.0, 3.0, 7.0, 15.0, 31.0)),  # TF "SAME", even input
    ],
)
def test_sampling_grid_of_each_level(name, offsets):
    model = mt.models.create_classifier(name, 1, weights=None).eval()
    levels = feature_levels(model)
    grid = trace_grids(model, torch.zeros(1, 1, 64, 64), levels)
    found = [grid.frame(level, (64, 64)) for level in levels]
    assert [o[0] for _, o in found] == list(offsets)
    assert [s[0] for s, _ in found] == [64 / grid.sizes[level][0] for level in levels]


def test_upsampling_puts_cells_where_they_are():
    maps = torch.zeros(1, 1, 4, 4)
    maps[0, 0, 1, 2] = 1.0
    up = upsample_aligned(maps, (64, 64), (16.0, 16.0), (0.0, 0.0))
    assert _peak(up[0, 0]) == (16, 32)
    up = upsample_aligned(maps, (64, 64), (16.0, 16.0), (7.5, 7.5))
    assert float(up[0, 0, 23, 39]) == pytest.approx(float(up[0, 0, 24, 40]))  # between 23, 24


def test_explicit_layer_on_a_model_without_encoder():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(4, 2),
    )  # fmt: skip
    preset = mt.transforms.presets.xray(roi_size=(32, 32), augment=False)
    heat = mt.evaluation.saliency(model, torch.rand(40, 40), preset, layer="1", device="cpu")
    assert tuple(heat.shape) == (40, 40) and heat.meta["layer"] == "1"


def test_errors_are_medtransfer_errors_with_clear_messages():
    preset = mt.transforms.presets.xray(roi_size=(32, 32), augment=False)
    image = torch.rand(32, 32)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 2))
    with pytest.raises(ModelError, match="encoder.*layer="):
        mt.evaluation.saliency(plain, image, preset)
    model = mt.models.create_classifier("resnet18", 1, weights=None)
    with pytest.raises(ConfigError, match="method='lime'.*gradcam"):
        mt.evaluation.saliency(model, image, preset, method="lime")
    with pytest.raises(ModelError, match="Did you mean encoder.body.layer4"):
        mt.evaluation.saliency(model, image, preset, layer="encoder.body.layer44")
    with pytest.raises(ModelError, match="out of range.*5 feature levels"):
        mt.evaluation.saliency(model, image, preset, layer=7)
    with pytest.raises(ConfigError, match="target=3 is out of range.*1 output"):
        mt.evaluation.saliency(model, image, preset, target=3, device="cpu")
    with pytest.raises(MedTransferError, match="Not found"):
        mt.evaluation.saliency(model, "/no/such/file.nii.gz", preset)
    with pytest.raises(ModelError, match="no feature map"):
        mt.evaluation.saliency(model, image, preset, layer="encoder", device="cpu")


def test_pick_cases_per_class_and_finding():
    names = ["a", "b", "c"]
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]])
    picks = pick_cases(scores, np.array([0, 1, 0, 1]), names, 2)
    assert [(p.index, p.class_name, p.role, p.target) for p in picks] == [
        (0, "a", "most confident", 0), (2, "a", "least confident", 0),
        (1, "b", "most confident", 1), (3, "b", "least confident", 1),
    ]  # fmt: skip
    labels = np.array([[1, np.nan], [1, 0], [0, 1], [1, -1]])
    picks = pick_cases(scores[:, :2], labels, ["x", "y"], 3)
    assert [(p.index, p.class_name, p.role) for p in picks] == [
        (0, "x", "most confident"), (1, "x", "most confident"), (3, "x", "least confident"),
        (2, "y", "most confident"),
    ]  # fmt: skip
    assert all(p.multilabel and p.target == "xy".index(p.class_name) for p in picks)
    binary = pick_cases(np.array([0.2, 0.9, np.nan]), np.array([1, 1, 1]), ["no", "yes"], 1)
    assert [(p.index, p.target, p.class_name) for p in binary] == [(1, "positive", "yes")]


@pytest.mark.slow
def test_report_shows_overlays_of_most_and_least_confident_cases(tmp_path):
    model, preset, shape, radius = _task("2d-slices")
    records, _ = blob_records(6, shape, radius)
    report = mt.evaluation.evaluate_classification(
        model, records, preset, n_resamples=50, progress=False, device="cpu", saliency=True,
        class_names=["clear", "blob"],
    )  # fmt: skip
    shown = [(s.case_id, s.class_name, s.role) for s in report.saliency]
    positives = sorted((c for c in report.cases if c["label"] == 1), key=lambda c: -c["score"])
    assert shown == [
        (positives[0]["case_id"], "blob", "most confident"),
        (positives[-1]["case_id"], "blob", "least confident"),
    ]
    html = report.to_html(tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Saliency: where the model found its evidence" in html and "<h3>blob</h3>" in html
    for case_id, _, role in shown:
        assert f"blob, {role}: case {case_id}" in html
    data = report.to_dict()["saliency"]
    assert [d["case_id"] for d in data] == [s[0] for s in shown]
    assert set(data[0]) == {"case_id", "class", "role", "score", "slice_index", "n_slices",
                            "method", "layer", "window"}  # fmt: skip
    assert len(report.to_json(tmp_path / "r.json").read_text()) < 20_000  # no maps in the JSON
    plain = mt.evaluation.evaluate_classification(model, records, preset, n_resamples=50,
                                                  progress=False, device="cpu")  # fmt: skip
    assert plain.saliency == [] and "Saliency" not in plain.to_html(tmp_path / "p.html").read_text()


@pytest.mark.slow
def test_report_of_multilabel_findings_explains_each_finding():
    dims, shape, radius, args = TASKS["2d-slices"]
    preset = mt.transforms.presets.ct("classification", window="abdomen", **args)
    model = brightness_classifier(dims, num_classes=2)
    records, _ = blob_records(4, shape, radius)
    for record in records:
        record["label"] = [1, record["label"]]  # finding "any" in every case, "blob" in some
    report = mt.evaluation.evaluate_classification(
        model, records, preset, n_resamples=20, progress=False, device="cpu",
        saliency="gradcampp", saliency_cases=1, class_names=["any", "blob"],
    )  # fmt: skip
    assert [(s.class_name, s.method) for s in report.saliency] == [
        ("any", "gradcampp"), ("blob", "gradcampp"),
    ]  # fmt: skip


def test_report_saliency_arguments_are_checked_before_the_cases_run():
    records, _ = blob_records(2, (16, 16, 2), 3)
    preset = mt.transforms.presets.ct("classification", roi_size=(16, 16), spatial_dims=2)
    model = mt.models.create_classifier("resnet18", 1, weights=None)
    with pytest.raises(ConfigError, match="saliency='lime'"):
        mt.evaluation.evaluate_classification(model, records, preset, saliency="lime")
    with pytest.raises(ConfigError, match="saliency_cases=0"):
        mt.evaluation.evaluate_classification(model, records, preset, saliency=True,
                                              saliency_cases=0)  # fmt: skip
    plain = nn.Sequential(nn.Flatten(), nn.LazyLinear(2))
    with pytest.raises(ModelError, match="encoder"):
        mt.evaluation.evaluate_classification(plain, records, preset, saliency=True)
