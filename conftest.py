"""Root pytest set-up, shared by tests/ and the doctests in medtransfer/: offline, isolated cache."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one intra-op thread per xdist worker: `-n 2` on 2 cores would otherwise oversubscribe
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_medtransfer_home(tmp_path_factory, monkeypatch):
    """Point the weight cache at an empty temporary folder: no test or doctest sees the user's."""
    monkeypatch.setenv("MEDTRANSFER_HOME", str(tmp_path_factory.mktemp("medtransfer_home")))
