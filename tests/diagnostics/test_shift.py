"""domain_shift: a shifted site is detected and its cases flagged; the same site is not; the report
keeps case ids only and round-trips through JSON and the HTML report."""

from __future__ import annotations

import pytest

import medtransfer as mt
from medtransfer.diagnostics.shift import domain_shift
from medtransfer.diagnostics.shift_report import ShiftReport
from medtransfer.errors import ConfigError

PRESET = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
ENCODER = "tf_efficientnet_lite0"  # ImageNet weights, installed offline


def _site(n: int, seed: int, name: str, gamma: float = 1.0) -> list[dict]:
    records = mt.data.synthetic.phantoms(n, shape=(32, 32, 4), seed=seed)
    out = []
    for i, r in enumerate(records):
        image = r["image"]
        if gamma != 1.0:  # a contrast change of the body, as another scanner's protocol
            scaled = ((image + 1000.0).clamp(min=0) / 2000.0) ** gamma
            image = scaled * 2000.0 - 1000.0  # a MetaTensor stays one: same grid
        out.append({**r, "image": image, "case_id": f"{name}-{i:02d}", "site": name})
    return out


@pytest.fixture(scope="module")
def sites():
    return _site(10, 0, "A"), _site(6, 1, "A"), _site(6, 2, "B", gamma=0.4)


@pytest.fixture(scope="module")
def shifted(sites):
    a, _, b = sites
    return domain_shift(a, b, PRESET, encoder=ENCODER, permutations=199)


def test_a_shifted_site_is_detected_and_its_cases_flagged(shifted):
    assert shifted.reference_name == "A" and shifted.target_name == "B"
    assert shifted.p_value < 0.01 and shifted.shifted
    assert shifted.target_flag_rate >= 0.8
    assert shifted.intensity["w1"] > 3 * shifted.intensity["w1_within_reference"]
    assert set(shifted.flagged) <= {f"B-{i:02d}" for i in range(6)}
    assert "B is shifted from A" in shifted.verdict()


def test_the_same_site_is_not_flagged(sites):
    a, held_out, _ = sites
    same = domain_shift(a, held_out, PRESET, encoder=ENCODER, permutations=199)
    assert same.p_value > 0.05 and not same.shifted
    assert same.target_flag_rate <= 0.34
    assert "No evidence" in same.verdict()


def test_sites_are_split_by_the_site_column(sites):
    a, _, b = sites
    report = domain_shift(
        a[:6] + b[:3], None, PRESET, encoder=ENCODER, permutations=49, reference_site="A"
    )
    assert (report.n_reference, report.n_target) == (6, 3)
    assert report.target_ids == ["B-00", "B-01", "B-02"]
    with pytest.raises(ConfigError, match="reference_site"):
        domain_shift(a[:6] + b[:3], None, PRESET, encoder=ENCODER, reference_site="C")
    with pytest.raises(ConfigError, match="site"):
        domain_shift(a[:6], None, PRESET, encoder=ENCODER)


def test_a_trained_model_gives_the_embeddings(sites):
    a, _, b = sites
    model = mt.models.create_segmenter("resnet18", 5, weights=None, seed=0)
    report = domain_shift(a[:5], b[:2], PRESET, model=model, permutations=49)
    assert report.features["dim"] == model.encoder.out_channels[-1]
    with pytest.raises(ConfigError, match="not both"):
        domain_shift(a[:5], b[:2], PRESET, model=model, encoder=ENCODER)


def test_too_few_cases_are_refused(sites):
    a, _, b = sites
    with pytest.raises(ConfigError, match="at least 4 reference"):
        domain_shift(a[:3], b, PRESET, encoder=ENCODER)


def test_report_files_frame_and_section(shifted, tmp_path):
    again = ShiftReport.from_json(shifted.to_json(tmp_path / "shift.json"))
    assert (
        again.summary() == pytest.approx(shifted.summary()) or again.summary() == shifted.summary()
    )
    frame = shifted.to_frame()
    assert len(frame) == shifted.n_reference + shifted.n_target
    assert frame[frame.site == "B"].flagged.sum() == len(shifted.flagged)
    report = mt.evaluation.Report("segmentation")
    shifted.add_to(report)
    assert report.sections[0]["title"] == "Domain shift (A → B)"
    assert "<img" in report.sections[0]["html"] and "MMD" in report.sections[0]["html"]
    text = shifted.to_markdown()
    assert "| feature MMD² |" in text and "PatientName" not in text
    with pytest.raises(ConfigError, match="not a ShiftReport"):
        (tmp_path / "bad.json").write_text("{}")
        ShiftReport.from_json(tmp_path / "bad.json")
