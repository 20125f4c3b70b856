"""``medtransfer demo --quick``: the main job end to end on tiny phantoms (a smoke test)."""

from __future__ import annotations

import pytest

from medtransfer.cli import main


@pytest.mark.slow
def test_demo_quick_prints_the_comparison_and_writes_reports(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("Dice liver", "AUROC (patient)", "imagenet", "random", "95% CI"):
        assert text in out
    assert f"Report: {(tmp_path / 'index.html').resolve()}" in out
    for name in ("segmentation-imagenet", "segmentation-random", "classification-imagenet"):
        assert (tmp_path / f"{name}.html").is_file()
    assert "segmentation-random.html" in (tmp_path / "index.html").read_text()
