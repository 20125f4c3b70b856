"""``train --resume`` means resume; nothing overwrites a run's history without ``--overwrite``."""

from __future__ import annotations

import pytest

from medtransfer.cli import main
from tests.fixtures import read_files, write_tiny_project

pytestmark = pytest.mark.slow


@pytest.fixture()
def project(tmp_path):
    return write_tiny_project(tmp_path), tmp_path / "runs" / "tiny"


def _history(run):
    return read_files(run, ("metrics.jsonl", "checkpoints/best.pt", "evaluation/report.json"))


def test_resume_with_nothing_to_resume_is_refused_naming_the_run_folder(project, capsys):
    config, run = project
    assert main(["train", str(config), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume" in err and str(run) in err
    assert not (run / "metrics.jsonl").exists() and not (run / "run_config.yaml").exists()


def test_lost_last_checkpoint_never_restarts_over_the_history(project, capsys):
    config, run = project
    assert main(["train", str(config)]) == 0
    assert main(["evaluate", str(config), "--checkpoint", str(run / "checkpoints" / "best.pt")]) == 0  # fmt: skip
    for path in (run / "checkpoints").glob("last*"):
        path.unlink()
    before = _history(run)
    assert set(before) == {"metrics.jsonl", "checkpoints/best.pt", "evaluation/report.json"}
    capsys.readouterr()

    assert main(["train", str(config), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "--overwrite" in err
    assert main(["train", str(config)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _history(run) == before  # metrics.jsonl, best.pt and the report are untouched

    assert main(["train", str(config), "--resume", "--overwrite"]) == 2  # contradictory
    assert main(["train", str(config), "--overwrite"]) == 0
    assert (run / "checkpoints" / "last.pt").is_file()
    assert not (run / "evaluation").exists()  # the old model's report went with its run


def test_evaluate_does_not_replace_a_report_without_overwrite(project, capsys):
    config, run = project
    assert main(["train", str(config)]) == 0
    best = str(run / "checkpoints" / "best.pt")
    assert main(["evaluate", str(config), "--checkpoint", best]) == 0
    before = _history(run)
    capsys.readouterr()
    assert main(["evaluate", str(config), "--checkpoint", best]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and str(run / "evaluation") in err
    assert _history(run) == before
    assert main(["evaluate", str(config), "--checkpoint", best, "--overwrite"]) == 0
