"""Root pytest set-up, shared by tests/ and the doctests in medtransfer/: offline, isolated cache."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_medtransfer_home(tmp_path_factory, monkeypatch):
    """Point the weight cache at an empty temporary folder: no test or doctest sees the user's."""
    monkeypatch.setenv("MEDTRANSFER_HOME", str(tmp_path_factory.mktemp("medtransfer_home")))
