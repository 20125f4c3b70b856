"""OOD detector: scores by hand, calibrated flag rates, state round trip, embeddings of real models."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from sklearn.covariance import LedoitWolf

import medtransfer as mt
from medtransfer.errors import CheckpointError, ConfigError, ModelError, OutOfDistributionWarning
from medtransfer.evaluation.inference.ood import (
    OODDetector,
    case_embedding,
    embed_records,
    warn_if_out_of_distribution,
)

DIM = 8
MIXING = np.random.default_rng(42).normal(size=(DIM, DIM)) / np.sqrt(DIM) + np.eye(DIM)
# half the features up, half down: moves the embedding's direction too (what knn sees)
SHIFT = np.where(np.arange(DIM) < DIM // 2, 3.0, -3.0)


def _gaussian(n: int, seed: int, shift: float | np.ndarray = 0.0) -> np.ndarray:
    """Correlated Gaussian 'embeddings' around 5 (positive like pooled ReLU features)."""
    return (np.random.default_rng(seed).normal(size=(n, DIM)) + shift) @ MIXING.T + 5.0


# ---------------------------------------------------------------------------------------------
# the detector on synthetic embeddings


def test_mahalanobis_score_matches_numpy_with_ledoit_wolf_covariance():
    reference, queries = _gaussian(60, seed=0), _gaussian(7, seed=1, shift=1.0)
    detector = OODDetector.fit(reference)
    covariance = LedoitWolf().fit(reference).covariance_
    diff = queries - reference.mean(0)
    expected = np.sqrt(np.einsum("ij,jk,ik->i", diff, np.linalg.inv(covariance), diff))
    np.testing.assert_allclose(detector.score(queries), expected, rtol=1e-8)
    assert detector.score(queries[0]).shape == (1,)  # one (d,) vector is one case
    assert (detector.method, detector.n_reference, detector.dim) == ("mahalanobis", 60, DIM)
    assert detector.quantile == 0.95


def test_knn_score_matches_numpy_on_normalised_embeddings():
    reference, queries = _gaussian(30, seed=2), _gaussian(5, seed=3, shift=SHIFT)
    detector = OODDetector.fit(reference, method="knn", k=4)
    unit_ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    distances = np.linalg.norm(unit_q[:, None] - unit_ref[None], axis=2)
    expected = np.sort(distances, axis=1)[:, :4].mean(1)
    np.testing.assert_allclose(detector.score(queries), expected, rtol=1e-8)
    assert OODDetector.fit(reference[:4], method="knn").params["k"] == 3  # capped at n - 1


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_threshold_flags_about_five_percent_of_new_reference_cases(method):
    detector = OODDetector.fit(_gaussian(300, seed=4), method=method)
    fresh = detector.flags(_gaussian(2000, seed=5))
    assert 0.01 <= fresh.mean() <= 0.12
    assert detector.flags(_gaussian(2000, seed=6, shift=SHIFT)).mean() > 0.9


def test_held_out_calibration_unlike_in_sample_quantile():
    # with few cases, in-sample scores are optimistic: their 95th percentile flags far too many
    reference = _gaussian(40, seed=7)
    detector = OODDetector.fit(reference)
    in_sample = np.quantile(detector.score(reference), 0.95)
    assert detector.threshold > in_sample
    fresh = detector.score(_gaussian(4000, seed=8))
    assert (fresh > in_sample).mean() > (fresh > detector.threshold).mean()


def test_fit_is_deterministic_and_quantile_moves_threshold():
    reference = _gaussian(50, seed=9)
    a, b = OODDetector.fit(reference, seed=3), OODDetector.fit(reference, seed=3)
    assert a.threshold == b.threshold
    assert a.calibration_scores.shape == (50,)
    assert a.threshold == pytest.approx(np.quantile(a.calibration_scores, 0.95))
    assert OODDetector.fit(reference, quantile=0.99).threshold > a.threshold


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_state_dict_round_trip_through_weights_only_load(method):
    detector = OODDetector.fit(_gaussian(30, seed=10), method=method)
    state = detector.state_dict()
    for value in state.values():
        assert isinstance(value, str | int | float | torch.Tensor)  # no numpy objects
    buffer = io.BytesIO()
    torch.save({"ood": state}, buffer)
    buffer.seek(0)
    loaded = OODDetector.from_state(torch.load(buffer, weights_only=True)["ood"])
    queries = _gaussian(20, seed=11, shift=0.5)
    np.testing.assert_array_equal(loaded.score(queries), detector.score(queries))
    np.testing.assert_array_equal(loaded.calibration_scores, detector.calibration_scores)
    assert (loaded.method, loaded.threshold, loaded.quantile) == (
        detector.method,
        detector.threshold,
        detector.quantile,
    )
    assert (loaded.n_reference, loaded.dim) == (30, DIM)


def test_malformed_state_is_a_checkpoint_error():
    state = OODDetector.fit(_gaussian(10, seed=12)).state_dict()
    broken = [
        ("not a dict", "expected a dict"),
        ({**state, "format": "other"}, "format"),
        ({**state, "method": "lof"}, "method"),
        ({k: v for k, v in state.items() if k != "precision"}, "missing precision"),
        ({**state, "center": torch.zeros(3)}, "center has shape"),
        ({**state, "calibration_scores": torch.zeros(3)}, "calibration_scores has shape"),
        ({**state, "threshold": float("nan")}, "threshold"),
        ({**state, "quantile": "high"}, "malformed"),
    ]
    for bad, match in broken:
        with pytest.raises(CheckpointError, match=match):
            OODDetector.from_state(bad)
    knn = OODDetector.fit(_gaussian(10, seed=12), method="knn").state_dict()
    with pytest.raises(CheckpointError, match="k="):
        OODDetector.from_state({**knn, "k": 99})


def test_bad_fit_and_score_inputs_are_config_errors():
    reference = _gaussian(10, seed=13)
    with pytest.raises(ConfigError, match="at least 4 reference cases, got 3"):
        OODDetector.fit(reference[:3])
    with pytest.raises(ConfigError, match="method"):
        OODDetector.fit(reference, method="lof")
    with pytest.raises(ConfigError, match="quantile"):
        OODDetector.fit(reference, quantile=1.5)
    with pytest.raises(ConfigError, match="folds"):
        OODDetector.fit(reference, folds=1)
    with pytest.raises(ConfigError, match="non-finite"):
        OODDetector.fit(np.where(np.eye(10, DIM) > 0, np.nan, reference))
    with pytest.raises(ConfigError, match="n_cases, dim"):
        OODDetector.fit(np.zeros((5, 2, 2)))
    detector = OODDetector.fit(reference)
    with pytest.raises(ConfigError, match=f"3 features but the detector was fit on {DIM}"):
        detector.score(np.zeros((2, 3)))


def test_warning_names_case_score_threshold_and_remedy():
    detector = OODDetector.fit(_gaussian(100, seed=14))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score, flagged = warn_if_out_of_distribution(detector, _gaussian(1, 15, SHIFT)[0], "ct-042")
        inlier = warn_if_out_of_distribution(detector, _gaussian(100, seed=14).mean(0), "ct-001")
    assert flagged and score > detector.threshold
    assert inlier[1] is False
    assert len(caught) == 1 and issubclass(caught[0].category, OutOfDistributionWarning)
    message = str(caught[0].message)
    assert "'ct-042'" in message and f"{score:.3g}" in message
    assert f"{detector.threshold:.3g}" in message and "adapt_batchnorm" in message
    assert issubclass(OutOfDistributionWarning, UserWarning)
    assert mt.evaluation.OutOfDistributionWarning is mt.errors.OutOfDistributionWarning


# ---------------------------------------------------------------------------------------------
# embeddings of real (tiny) models


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return mt.models.create_segmenter("test_resnet", 2, weights=None)


def test_case_embedding_is_pooled_deepest_level_averaged_over_slices(segmenter):
    stack = torch.rand(5, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    segmenter.train()
    segmenter.encoder.body.eval()  # a frozen part stays as it was
    vector = case_embedding(segmenter, stack, batch_size=2)
    assert vector.shape == (segmenter.encoder.out_channels[-1],) and vector.dtype == np.float32
    assert segmenter.training and not segmenter.encoder.body.training
    np.testing.assert_array_equal(case_embedding(segmenter, stack, batch_size=2), vector)
    segmenter.eval()
    with torch.no_grad():
        expected = segmenter.encoder(stack)[-1].mean((2, 3)).mean(0).numpy()
    np.testing.assert_allclose(vector, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(case_embedding(segmenter.encoder, stack), vector, rtol=1e-4)
    single = case_embedding(segmenter, stack[0])  # a (C, X, Y) image is one slice
    np.testing.assert_allclose(single, case_embedding(segmenter, stack[:1]), rtol=1e-5)
    radiograph = MetaTensor(stack[0])  # a 2D image, with meta but no slice stack
    np.testing.assert_allclose(case_embedding(segmenter, radiograph), single, rtol=1e-5)
    np.testing.assert_allclose(case_embedding(segmenter, radiograph[None]), single, rtol=1e-5)


def test_case_embedding_of_classifier_and_3d_model():
    classifier = mt.models.create_classifier("test_resnet", 2, weights=None)
    assert case_embedding(classifier, np.zeros((2, 1, 32, 32), np.float32)).shape == (96,)
    volume_model = mt.models.create_segmenter("test_resnet", 2, weights=None, spatial_dims=3)
    vector = case_embedding(volume_model, torch.rand(1, 32, 32, 32))
    assert vector.shape == (volume_model.encoder.out_channels[-1],)


def test_case_embedding_errors(segmenter):
    with pytest.raises(ModelError, match="1 input channel"):
        case_embedding(segmenter, torch.rand(2, 3, 32, 32))
    with pytest.raises(ModelError, match="Segmenter or Classifier"):
        case_embedding(torch.nn.Conv2d(1, 2, 1), torch.rand(2, 1, 32, 32))
    with pytest.raises(ModelError, match="got shape"):
        case_embedding(segmenter, torch.rand(32, 32))
    with pytest.raises(ConfigError, match="batch_size"):
        case_embedding(segmenter, torch.rand(2, 1, 32, 32), batch_size=0)


def test_embed_records_on_unlabelled_phantoms(segmenter):
    records = mt.data.synthetic.phantoms(2, shape=(24, 24, 4))
    unlabelled = [{k: v for k, v in r.items() if k != "label"} for r in records]
    preset = mt.transforms.presets.ct(spatial_dims=2, roi_size=(32, 32))
    embeddings = embed_records(segmenter, unlabelled, preset)
    assert embeddings.shape == (2, segmenter.encoder.out_channels[-1])
    assert np.isfinite(embeddings).all() and not np.allclose(embeddings[0], embeddings[1])
    from medtransfer.evaluation.inference.geometry import prepare_pipeline

    loader, pipeline, key = prepare_pipeline(preset, "image")
    stack = pipeline(loader({key: unlabelled[1]["image"]}))[key]
    np.testing.assert_allclose(embeddings[1], case_embedding(segmenter, stack), rtol=1e-5)
    with pytest.raises(ConfigError, match="'phantom-000' has no 'image'"):
        embed_records(segmenter, [{"case_id": "phantom-000"}], preset)
    with pytest.raises(ConfigError, match="empty"):
        embed_records(segmenter, [], preset)
    volume_model = mt.models.create_segmenter("test_resnet", 2, weights=None, spatial_dims=3)
    with pytest.raises(ModelError, match="stack of axial slices"):
        embed_records(volume_model, unlabelled[:1], preset)
    preset_3d = mt.transforms.presets.ct(spatial_dims=3, roi_size=(32, 32, 32))
    with pytest.raises(ModelError, match="makes 3D volumes"):
        embed_records(segmenter, unlabelled[:1], preset_3d)
    assert embed_records(volume_model, unlabelled[:1], preset_3d).shape == (1, 96)


def test_public_names():
    assert mt.evaluation.OODDetector is OODDetector
    assert mt.evaluation.case_embedding is case_embedding
    assert mt.evaluation.embed_records is embed_records
    assert mt.evaluation.inference.OODDetector is OODDetector
