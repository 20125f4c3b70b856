"""One case-id rule: ``record["case_id"]`` or ``case_0000``..., the same in every report."""

from __future__ import annotations

import numpy as np
import pytest

import medtransfer as mt
from medtransfer.errors import ConfigError


def test_case_ids_keep_given_names_number_the_rest_and_refuse_duplicates():
    assert mt.data.case_ids([{"case_id": "ct-7"}, {}, {"case_id": 3}]) == ["ct-7", "case_0001", "3"]
    with pytest.raises(ConfigError, match="'ct-7' appears twice"):
        mt.data.case_ids([{"case_id": "ct-7"}, {"case_id": "ct-7"}])


def test_fingerprint_names_unnamed_cases_as_the_evaluation_reports_do():
    image = mt.io.make_image(np.zeros((8, 8, 4), np.float32), np.eye(4), source="memory")
    records = [{"image": image}, {"image": image, "case_id": "ct-7"}]
    found = mt.transforms.fingerprint_dataset(records, body_threshold=None)
    assert [c["case_id"] for c in found["cases"]] == ["case_0000", "ct-7"]
