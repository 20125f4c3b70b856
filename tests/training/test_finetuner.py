"""FineTuner: fit, validation, run directory, best checkpoint, early stopping, NaN, resume."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import medtransfer as mt
from medtransfer.errors import CheckpointError, ConfigError, ModelError
from medtransfer.training import EarlyStopping, FineTuner, load_checkpoint
from tests.training.helpers import (
    TinyClassifier,
    TinySegmenter,
    classification_records,
    segmentation_records,
    state_equal,
)


def _tuner(tmp_path, model=None, **kwargs):
    torch.manual_seed(0)
    options = {"batch_size": 4, "lr": 1e-2, "progress": "quiet", "run_dir": tmp_path / "run"}
    options.update(kwargs)
    return FineTuner(model or TinyClassifier(), **options)


def test_fit_classification_from_records_writes_the_run_directory(tmp_path):
    records = classification_records(16)
    tuner = _tuner(tmp_path)
    history = tuner.fit(records, records, epochs=3)
    assert len(history) == 3 and history["train_loss"][-1] < history["train_loss"][0]
    assert set(history.records[-1]) >= {"train_loss", "val_loss", "auroc", "accuracy", "lr"}
    assert history.records[-1]["accuracy"] >= 0.75
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.json", "environment.json", "metrics.jsonl"}
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"] == "FullFineTune()" and config["trainable_parameters"] == 1322
    assert "torch" in json.loads((run / "environment.json").read_text())["packages"]
    assert not list(run.rglob("*.tmp*"))  # atomic writes leave no temporaries


def test_best_checkpoint_holds_the_best_epoch(tmp_path):
    records = classification_records(16)
    tuner = _tuner(tmp_path, metric=lambda logits, y: -logits.float().abs().mean(1) * 0 + torch.rand(len(y)))  # fmt: skip
    history = tuner.fit(records, records, epochs=4)
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["epoch"] == history.best_epoch
    assert best["metric"] == pytest.approx(history.best_value)
    assert history.best_value == max(history[history.metric])


def test_best_checkpoint_weights_are_the_model_at_that_epoch(tmp_path):
    records = classification_records(8)
    snapshots = {}

    class Snapshot(mt.training.Callback):
        def on_epoch_end(self, tuner, record):
            snapshots[record["epoch"]] = {k: v.clone() for k, v in tuner.model.state_dict().items()}

    tuner = _tuner(tmp_path)
    history = tuner.fit(records, records, epochs=3, callbacks=[Snapshot()])
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")["model"]
    assert state_equal(best, snapshots[history.best_epoch])
    assert state_equal(tuner.load_best().state_dict(), snapshots[history.best_epoch])


def test_early_stopping_stops_after_patience(tmp_path):
    records = classification_records(8)
    tuner = _tuner(tmp_path, metric=lambda logits, y: torch.zeros(len(y)))  # never improves
    history = tuner.fit(records, records, epochs=10, callbacks=[EarlyStopping(patience=2)])
    assert len(history) == 3 and history.stopped_early


class NaNAfter(nn.Module):
    """Wraps a model; outputs NaN from the ``after``-th training forward on."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.inner = TinyClassifier()
        self.num_classes = 2
        self.after, self.calls = after, 0

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.after:
                return out * float("nan")
        return out


def test_nan_loss_stops_with_step_and_last_good_checkpoint(tmp_path):
    records = classification_records(16)
    tuner = _tuner(tmp_path, NaNAfter(after=7), checkpoint_every=2)
    with pytest.raises(ModelError, match=r"step 7.*last\.pt") as info:
        tuner.fit(records, epochs=3)
    assert "case-" in str(info.value)  # cases named by case_id only
    good = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert good["loop"]["step"] == 6
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())


def test_existing_run_needs_resume_and_resume_needs_a_checkpoint(tmp_path):
    records = classification_records(8)
    _tuner(tmp_path).fit(records, epochs=1)
    with pytest.raises(CheckpointError, match="resume=True"):
        _tuner(tmp_path).fit(records, epochs=1)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        _tuner(tmp_path / "other").fit(records, epochs=1, resume=True)
    with pytest.raises(ConfigError, match="exactly one"):
        _tuner(tmp_path / "x").fit(records, epochs=1, steps=3)


def _weights_and_metrics(tuner, history):
    keys = ("train_loss", "val_loss", "auroc", "accuracy", "step")
    return tuner.model.state_dict(), [{k: r.get(k) for k in keys} for r in history.records]


def test_resume_in_process_matches_an_uninterrupted_run(tmp_path):
    records = classification_records(12)
    full = _tuner(tmp_path / "a", deterministic=True)
    ref_state, ref_metrics = _weights_and_metrics(full, full.fit(records, records, epochs=3))

    class StopAfter(mt.training.Callback):
        def on_step_end(self, tuner, step, loss):
            if step == 4:
                raise KeyboardInterrupt

    first = _tuner(tmp_path / "b", deterministic=True, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        first.fit(records, records, epochs=3, callbacks=[StopAfter()])
    resumed = _tuner(tmp_path / "b", deterministic=True, checkpoint_every=2)
    history = resumed.fit(records, records, epochs=3, resume=True)
    state, metrics = _weights_and_metrics(resumed, history)
    assert state_equal(state, ref_state)
    assert metrics == ref_metrics


def test_fit_with_dataloaders_steps_and_grad_accum(tmp_path):
    data = TensorDataset(torch.randn(12, 1, 8, 8), torch.arange(12) % 3)
    model = TinyClassifier(num_classes=3)
    tuner = _tuner(tmp_path, model, grad_accum=2, clip_grad=1.0, schedule="one_cycle")
    loader = DataLoader(data, batch_size=2, shuffle=True)
    history = tuner.fit(loader, DataLoader(data, batch_size=4), steps=5)
    assert history.records[-1]["step"] == 5 and history.metric == "accuracy"
    assert "auroc" not in history.records[-1]


def test_segmentation_with_sliding_window_validation(tmp_path):
    records = segmentation_records(8, size=24)
    tuner = _tuner(tmp_path, TinySegmenter(), task="segmentation", roi_size=(16, 16))
    history = tuner.fit(records[:6], records[6:], epochs=2)
    assert history.metric == "dice" and 0.0 <= history.records[-1]["dice"] <= 1.0


def test_records_with_monai_transforms_are_cached_and_augmented(tmp_path):
    from monai.transforms import Compose, EnsureChannelFirstd, RandFlipd, ScaleIntensityd

    cases = mt.data.synthetic.phantoms(6, task="classification", shape=(16, 16, 1))
    for case in cases:  # one axial slice, 2D
        case["image"] = case["image"][..., 0]
    train_tf = Compose(
        [
            EnsureChannelFirstd("image", channel_dim="no_channel"),
            ScaleIntensityd("image"),
            RandFlipd("image", prob=0.5, spatial_axis=0),
        ]
    )
    val_tf = Compose(train_tf.transforms[:2])
    tuner = _tuner(tmp_path)
    history = tuner.fit(cases, cases, epochs=1, train_transform=train_tf, val_transform=val_tf)
    assert len(history) == 1


def test_bad_arguments_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="task"):
        FineTuner(TinyClassifier(), task="detection")
    with pytest.raises(ConfigError, match="grad_accum"):
        FineTuner(TinyClassifier(), grad_accum=0)
    with pytest.raises(ConfigError, match="loss"):
        _tuner(tmp_path, loss="dice_ce").fit(classification_records(4), epochs=1)


def test_lr_find_suggests_a_rate_and_leaves_the_model_unchanged(tmp_path):
    records = classification_records(16)
    tuner = _tuner(tmp_path)
    before = {k: v.clone() for k, v in tuner.model.state_dict().items()}
    result = tuner.lr_find(records, num_iter=30, start_lr=1e-5, end_lr=10.0)
    assert 1e-5 <= result.suggestion <= 10.0 and len(result.lrs) == len(result.losses) > 3
    assert state_equal(tuner.model.state_dict(), before)


def test_track_meta_is_restored_after_an_error(tmp_path):
    from monai.data import get_track_meta

    tuner = _tuner(tmp_path, NaNAfter(after=1))
    with pytest.raises(ModelError):
        tuner.fit(classification_records(8), epochs=1)
    assert get_track_meta()


@pytest.mark.slow
def test_3d_phantom_segmentation_with_a_segmenter_and_sliding_window(tmp_path):
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        RandSpatialCropd,
        ScaleIntensityRanged,
    )

    cases = mt.data.synthetic.phantoms(3, "segmentation", shape=(32, 32, 16), seed=1)
    deterministic = [
        EnsureChannelFirstd(("image", "label"), channel_dim="no_channel"),
        ScaleIntensityRanged("image", -160, 240, 0.0, 1.0, clip=True),
    ]
    train_tf = Compose([*deterministic, RandSpatialCropd(("image", "label"), (16, 16, 16))])
    model = mt.models.create_segmenter(
        "resnet18", 5, weights=None, spatial_dims=3, decoder_channels=(32, 16, 8, 8, 4)
    )
    tuner = _tuner(tmp_path, model, task="segmentation", batch_size=2, roi_size=(16, 16, 16))
    history = tuner.fit(
        cases[:2], cases[2:], epochs=1, train_transform=train_tf,
        val_transform=Compose(deterministic),
    )  # fmt: skip
    assert 0.0 <= history.records[0]["dice"] <= 1.0
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()


def test_thread_loader_and_disk_cache(tmp_path):
    records = classification_records(8)
    tuner = _tuner(tmp_path, loader="thread", cache="disk", cache_dir=tmp_path / "cache")
    history = tuner.fit(records, records, epochs=1)
    assert len(history) == 1 and any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    "strategy",
    [
        mt.training.LinearProbe(),
        mt.training.BitFit(),
        mt.training.GradualUnfreeze(head_epochs=1, train_norms=False),
        [mt.training.LoRA(rank=2), mt.training.Discriminative(0.5)],
    ],
    ids=["LinearProbe", "BitFit", "GradualUnfreeze", "LoRA+Discriminative"],
)
def test_every_strategy_fits_and_reports_its_trainable_count(tmp_path, capsys, strategy):
    records = classification_records(8)
    tuner = _tuner(tmp_path, strategy=strategy, progress="epoch")
    stem_before = tuner.model.encoder[0].weight.detach().clone()
    history = tuner.fit(records, records, epochs=2)
    out = capsys.readouterr().out
    assert "parameters trainable" in out and len(history) == 2
    stem = tuner.export().encoder[0].weight
    if isinstance(strategy, (mt.training.LinearProbe, mt.training.BitFit)):
        assert torch.equal(stem, stem_before)
    if isinstance(strategy, mt.training.GradualUnfreeze):
        assert out.count("parameters trainable") == 2  # start, then stage1 opened at epoch 2


def test_single_logit_binary_classifier_with_focal_and_class_weights(tmp_path):
    records = classification_records(8)
    model = TinyClassifier(num_classes=1)
    tuner = _tuner(tmp_path, model, loss="focal", class_weights=[1.0, 2.0])
    history = tuner.fit(records, records, epochs=1)
    assert history.metric == "auroc" and 0.0 <= history.records[0]["auroc"] <= 1.0


def test_segmentation_class_weights_and_deep_supervision_loss(tmp_path):
    records = segmentation_records(4)
    tuner = _tuner(tmp_path, TinySegmenter(), task="segmentation", class_weights=[0.5, 2.0])
    assert len(tuner.fit(records, records, epochs=1)) == 1


def test_bf16_autocast_and_channels_last_run_on_cpu(tmp_path):
    records = classification_records(8)
    tuner = _tuner(tmp_path, amp="bf16", channels_last=True)
    history = tuner.fit(records, records, epochs=1)
    assert torch.isfinite(torch.tensor(history.records[0]["train_loss"]))
    conv = tuner.model.encoder[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)


def test_default_run_dirs_never_reuse_an_earlier_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = classification_records(4)
    first = FineTuner(TinyClassifier(), progress="quiet", batch_size=4)
    first.fit(records, epochs=1)
    second = FineTuner(TinyClassifier(), progress="quiet", batch_size=4)
    second.fit(records, epochs=1)
    assert first.run.path != second.run.path
    assert first.run.path.parent == second.run.path.parent == tmp_path.joinpath("runs").relative_to(tmp_path)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_2_5d_presets_validate_whole_volumes(tmp_path, task):
    """Eval presets for 2D/2.5D yield per-volume slice stacks; validation scores them per volume."""
    import medtransfer as mt

    cases = mt.data.synthetic.phantoms(4, task=task, seed=0, shape=(32, 32, 8))
    for i, case in enumerate(cases):  # two volumes with other slice counts: stacks differ in length
        if i % 2:
            case["image"] = case["image"][..., :6]
            if task == "segmentation":
                case["label"] = case["label"][..., :6]
    model = (mt.models.create_segmenter if task == "segmentation" else mt.models.create_classifier)(
        "resnet18", 5 if task == "segmentation" else 1, weights=None, in_channels=3
    )
    train_tf, eval_tf = mt.transforms.presets.ct(task, spatial_dims=2, context=1, roi_size=(32, 32))
    tuner = mt.training.FineTuner(
        model, task=task, run_dir=tmp_path / "run", progress="quiet", batch_size=2
    )
    history = tuner.fit(
        cases[:2], cases[2:], epochs=1, train_transform=train_tf, val_transform=eval_tf
    )
    last = history.records[-1]
    assert math.isfinite(last["val_loss"])
    if task == "segmentation":
        assert 0.0 <= last["dice"] <= 1.0
    else:
        assert last["accuracy"] in (0.0, 0.5, 1.0)
