"""A run folder's history is never lost: resume means resume, overwriting needs overwrite=True.

Also: stale temporaries of atomic writes (left by a SIGKILL) are removed on the next start.
"""

from __future__ import annotations

import pytest
import torch

from medtransfer.errors import CheckpointError, ConfigError
from medtransfer.training import FineTuner
from tests.fixtures import read_files
from tests.training.helpers import TinyClassifier, classification_records


def _tuner(run_dir, **kwargs):
    torch.manual_seed(0)
    options = {"batch_size": 4, "lr": 1e-2, "progress": "quiet", "run_dir": run_dir}
    return FineTuner(TinyClassifier(), **{**options, **kwargs})


def _history(run):
    return read_files(run, ("metrics.jsonl", "checkpoints/best.pt", "checkpoints/last.pt"))


def test_resume_true_with_nothing_to_resume_names_the_run_folder(tmp_path):
    records = classification_records(8)
    run = tmp_path / "empty-run"
    with pytest.raises(CheckpointError, match="nothing to resume") as info:
        _tuner(run).fit(records, records, epochs=1, resume=True)
    assert str(run) in str(info.value)
    assert not (run / "metrics.jsonl").exists()


def test_resume_true_after_last_pt_was_lost_keeps_the_history(tmp_path):
    records = classification_records(8)
    run = tmp_path / "run"
    _tuner(run).fit(records, records, epochs=2)
    for name in ("last.pt", "last.pt.sha256", "last.prev.pt", "last.prev.pt.sha256"):
        (run / "checkpoints" / name).unlink(missing_ok=True)
    before = _history(run)
    for resume in (True, "auto", False):
        with pytest.raises(CheckpointError, match="overwrite") as info:
            _tuner(run).fit(records, records, epochs=2, resume=resume)
        assert str(run) in str(info.value) and "metrics.jsonl" in str(info.value)
    assert _history(run) == before  # metrics.jsonl and best.pt untouched


def test_a_fresh_fit_refuses_a_folder_with_history_and_overwrite_starts_over(tmp_path):
    records = classification_records(8)
    run = tmp_path / "run"
    _tuner(run).fit(records, records, epochs=2)
    (run / "evaluation").mkdir()
    (run / "evaluation" / "report.json").write_text("{}")
    (run / "notes.txt").write_text("mine")
    before = _history(run)
    with pytest.raises(CheckpointError, match="overwrite=True"):
        _tuner(run).fit(records, records, epochs=1)
    assert _history(run) == before
    history = _tuner(run).fit(records, records, epochs=1, overwrite=True)
    assert len(history) == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (run / "evaluation").exists()  # stale reports of the old model are gone
    assert not (run / "checkpoints" / "last.prev.pt").exists()
    assert (run / "notes.txt").read_text() == "mine"  # files that are not run outputs stay


def test_resume_and_overwrite_together_or_a_bad_resume_value_are_config_errors(tmp_path):
    records = classification_records(8)
    with pytest.raises(ConfigError, match="overwrite"):
        _tuner(tmp_path / "a").fit(records, epochs=1, resume=True, overwrite=True)
    with pytest.raises(ConfigError, match="resume"):
        _tuner(tmp_path / "b").fit(records, epochs=1, resume="yes")


def test_resume_auto_starts_a_new_run_in_an_empty_folder_and_resumes_an_existing_one(tmp_path):
    records = classification_records(8)
    run = tmp_path / "run"
    assert len(_tuner(run).fit(records, records, epochs=1, resume="auto")) == 1
    assert len(_tuner(run).fit(records, records, epochs=2, resume="auto")) == 2


def test_a_folder_with_only_a_run_config_is_not_history(tmp_path):
    records = classification_records(8)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.yaml").write_text("data: {}\n")  # written by the CLI before fit()
    (run / "config.json").write_text("{}")  # a first attempt that failed before epoch 1
    assert len(_tuner(run).fit(records, epochs=1)) == 1


def test_stale_temporaries_of_atomic_writes_are_removed_on_the_next_start(tmp_path):
    records = classification_records(8)
    run = tmp_path / "run"
    _tuner(run, checkpoint_every=1).fit(records, records, epochs=1)
    stale = [
        run / "checkpoints" / ".last.pt.k2j3h4.tmp.pt",
        run / "checkpoints" / ".best.pt.abcd12.tmp.pt",
        run / ".metrics.jsonl.x1y2z3.tmp.jsonl",
        run / ".run_config.yaml.q9w8e7.tmp.yaml",
    ]
    for path in stale:
        path.write_bytes(b"\0" * 1024)
    keep = [run / ".hidden-notes", run / "checkpoints" / "my.tmp.pt"]
    for path in keep:
        path.write_text("keep")
    _tuner(run, checkpoint_every=1).fit(records, records, epochs=2, resume=True)
    assert not [p for p in stale if p.exists()]
    assert all(p.read_text() == "keep" for p in keep)
