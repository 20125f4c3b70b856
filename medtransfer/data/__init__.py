"""medtransfer.data: manifests, patient-level splits and synthetic CT phantoms.

Records are plain dicts (``"image"``, ``"label"``, ``"case_id"``, ``"patient_id"`` + extra keys).

Example:
    >>> import medtransfer as mt
    >>> cases = mt.data.synthetic.phantoms(6, task="classification", shape=(16, 16, 4))
    >>> train, val, test = mt.data.split(cases, fractions=(0.5, 0.25, 0.25), seed=0)
    >>> len(train), len(val), len(test)
    (3, 2, 1)
"""

from __future__ import annotations

from medtransfer.data import synthetic
from medtransfer.data.case_ids import case_id, case_ids
from medtransfer.data.manifest import case_id_from_path, load_manifest
from medtransfer.data.split import Fold, Split, kfold, split

__all__ = [
    "Fold",
    "Split",
    "case_id",
    "case_id_from_path",
    "case_ids",
    "kfold",
    "load_manifest",
    "split",
    "synthetic",
]
