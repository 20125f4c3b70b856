"""Benchmark: wall time of the commands a user types first, against the header read they wrap.

Each command runs in a fresh process (as from a shell), ``--repeats`` times; the table reports the
median wall time and, for ``inspect``, the ratio to a bare pydicom/nibabel header read in a fresh
process (the floor any tool pays: interpreter start plus the parser import). Target (issue 11):
``medtransfer --help`` and ``inspect`` of one file under 1.5 s on a 2-core laptop-class machine.

Usage:
    .venv/bin/python benchmarks/cli_startup.py [--repeats 5] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

ROOT = Path(__file__).resolve().parents[1]
CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def _wall(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            argv, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    import nibabel as nib

    folder = Path(tempfile.mkdtemp())
    nifti = folder / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 32), np.int16), np.eye(4)), nifti)
    py, cli = sys.executable, [sys.executable, "-m", "medtransfer.cli"]
    rows = [
        ("medtransfer --help", _wall([*cli, "--help"], args.repeats), None),
        (
            "inspect CT_small.dcm",
            _wall([*cli, "inspect", str(CT_SMALL)], args.repeats),
            _wall([py, "-c", f"import pydicom; pydicom.dcmread({str(CT_SMALL)!r}, "
                   "stop_before_pixels=True)"], args.repeats),
        ),
        (
            "inspect ct.nii.gz",
            _wall([*cli, "inspect", str(nifti)], args.repeats),
            _wall([py, "-c", f"import nibabel; nibabel.load({str(nifti)!r}).header"], args.repeats),
        ),
        ("python -c 'import monai' (what inspect used to pay)", _wall([py, "-c", "import monai"], args.repeats), None),
    ]  # fmt: skip
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; median of {args.repeats} fresh processes")  # fmt: skip
    if args.markdown:
        print("\n| command | wall (s) | bare header read (s) | ratio |\n|---|---|---|---|")
    for name, seconds, floor in rows:
        ratio = f"{seconds / floor:.2f}x" if floor else "-"
        floor_text = f"{floor:.2f}" if floor else "-"
        if args.markdown:
            print(f"| {name} | {seconds:.2f} | {floor_text} | {ratio} |")
        else:
            print(f"{name:55s} {seconds:6.2f} s   floor {floor_text:>5s}   {ratio}")


if __name__ == "__main__":
    main()
