"""The package surface: fast side-effect-free import, lazy subpackages, the error hierarchy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import medtransfer as mt
from medtransfer import errors


def test_import_is_fast_and_loads_no_heavy_backend():
    code = (
        "import sys, time, json; t = time.perf_counter(); import medtransfer; "
        "print(json.dumps({'s': time.perf_counter() - t, "
        "'heavy': [m for m in ('torch', 'monai', 'timm', 'pydicom', 'nibabel') if m in sys.modules]}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["heavy"] == []
    assert result["s"] < 2.0


@pytest.mark.parametrize(
    "name",
    ["io", "data", "transforms", "encoders", "models", "evaluation", "training", "diagnostics"],
)
def test_subpackages_are_attributes(name):
    assert getattr(mt, name).__name__ == f"medtransfer.{name}"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = mt.nothing


def test_every_error_is_a_medtransfer_error():
    names = [n for n in errors.__all__ if n.endswith("Error")]
    assert len(names) >= 10
    for name in names:
        assert issubclass(getattr(errors, name), errors.MedTransferError)
    assert issubclass(
        errors.InputPathError, FileNotFoundError
    )  # `except FileNotFoundError` still works
    assert issubclass(errors.GeometryWarning, UserWarning)


def test_io_names_stay_functions_after_every_submodule_is_imported():
    import importlib
    import pkgutil

    import medtransfer.io as io

    for module in pkgutil.iter_modules(io.__path__):
        importlib.import_module(f"medtransfer.io.{module.name}")
    for name in io.__all__:
        value = getattr(io, name)
        assert callable(value) and not isinstance(value, type(io)), name


def test_importing_io_does_not_import_monai():
    import subprocess
    import sys

    code = "import sys, medtransfer as mt; mt.io.list_series; print('monai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
