"""``batch_size`` counts samples per step, also when a record yields several crops (issue 11)."""

from __future__ import annotations

import pytest
import torch

import medtransfer as mt
from medtransfer.training import Callback, FineTuner
from tests.training.helpers import TinySegmenter, state_equal


class CountingSegmenter(TinySegmenter):
    """Remembers the batch size of every training forward."""

    def __init__(self) -> None:
        super().__init__(num_classes=5)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(int(x.shape[0]))
        return super().forward(x)


def _fit(tmp_path, n, num_samples, batch_size, epochs=1, **kwargs):
    cases = mt.data.synthetic.phantoms(n, shape=(16, 16, 4), seed=0)
    train, _ = mt.transforms.presets.ct(
        spatial_dims=2, roi_size=(16, 16), num_samples=num_samples, num_classes=5
    )
    callbacks = kwargs.pop("callbacks", [])
    torch.manual_seed(0)
    tuner = FineTuner(
        CountingSegmenter(), task="segmentation", batch_size=batch_size, progress="quiet",
        run_dir=tmp_path, deterministic=True, **kwargs,
    )  # fmt: skip
    history = tuner.fit(cases, epochs=epochs, train_transform=train, callbacks=callbacks)
    return tuner, history


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_num_samples_4_and_batch_size_8_give_8_samples_a_step(tmp_path, cache):
    tuner, history = _fit(tmp_path / "run", n=5, num_samples=4, batch_size=8, cache=cache)
    assert tuner.model.seen == [8, 8, 4]  # 5 cases x 4 crops = 20 samples (was 20 in one step)
    assert history.records[-1]["step"] == 3


def test_a_batch_size_that_is_no_multiple_of_num_samples_is_still_exact(tmp_path):
    tuner, history = _fit(tmp_path / "run", n=4, num_samples=3, batch_size=8, epochs=2)
    assert tuner.model.seen == [8, 4, 8, 4]  # 12 samples per epoch
    assert history.records[-1]["step"] == 4


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, tuner, step, loss):
        if step == self.step:
            raise KeyboardInterrupt


def test_resume_mid_epoch_with_multi_sample_crops_matches_an_uninterrupted_run(tmp_path):
    options = {"n": 6, "num_samples": 3, "batch_size": 4, "epochs": 2, "checkpoint_every": 2}
    full, reference = _fit(tmp_path / "a", **options)
    assert full.model.seen == [4, 4, 4, 4, 2] * 2  # 18 samples per epoch
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "b", callbacks=[StopAt(3)], **options)
    cases = mt.data.synthetic.phantoms(6, shape=(16, 16, 4), seed=0)
    train, _ = mt.transforms.presets.ct(spatial_dims=2, roi_size=(16, 16), num_samples=3, num_classes=5)  # fmt: skip
    torch.manual_seed(0)
    resumed = FineTuner(
        CountingSegmenter(), task="segmentation", batch_size=4, progress="quiet",
        run_dir=tmp_path / "b", deterministic=True, checkpoint_every=2,
    )  # fmt: skip
    history = resumed.fit(cases, epochs=2, train_transform=train, resume=True)
    assert resumed.model.seen == [4, 4, 2] + [4, 4, 4, 4, 2]  # from step 3 (checkpoint at 2)
    assert state_equal(resumed.model.state_dict(), full.model.state_dict())
    keys = ("step", "train_loss")
    assert [{k: r[k] for k in keys} for r in history.records] == [
        {k: r[k] for k in keys} for r in reference.records
    ]


def test_a_multi_sample_transform_that_does_not_say_how_many_is_counted():
    from monai.transforms import Compose, MapTransform, MultiSampleTrait

    from medtransfer.training.data_loading import EpochLoaders, samples_per_record

    class TwoCopies(MapTransform, MultiSampleTrait):
        def __call__(self, data):
            return [dict(data), dict(data)]

    pipeline = Compose([TwoCopies("image")])
    assert samples_per_record(pipeline) is None
    records = [{"image": torch.zeros(1, 4, 4), "label": i % 2} for i in range(3)]
    loaders = EpochLoaders(records, transform=pipeline, batch_size=4, cache="none")
    sizes = [len(batch["label"]) for batch in loaders.iterate(0)]
    assert loaders.per_record == 2 and sizes == [4, 2] and len(loaders) == 2
