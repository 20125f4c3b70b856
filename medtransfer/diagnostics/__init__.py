"""medtransfer.diagnostics: the questions transfer learning raises, answered with measurements.

- *Which encoder?* :func:`rank_encoders` scores frozen features of each candidate (LogME, H-score,
  LEEP, linear probe) in a fraction of the time fine-tuning them takes, and returns a
  :class:`Ranking`.
- *Did pretraining help?* :func:`compare_to_scratch` trains the same recipe from ImageNet weights
  and from random initialisation on the same data, budget and seeds, at one or several label
  fractions, and returns a :class:`TransferComparison` with paired confidence intervals, learning
  and convergence curves, and a verdict in words (including negative transfer).
- *Will it carry to my site?* :func:`domain_shift` compares a new site's images with the training
  site's (acquisition, intensities, encoder features with a permutation test, per-case
  out-of-distribution scores) and returns a :class:`ShiftReport`; :func:`adapt_batchnorm` (AdaBN)
  and :func:`tent` adapt a trained model to the new site without labels.

See ``docs/diagnostics.md`` for the methods, their references and a validation on real anatomy.

Example:
    >>> import medtransfer as mt
    >>> mt.diagnostics.as_candidate("tf_efficientnet_lite0:2.5d").name
    'tf_efficientnet_lite0 · 2.5D (3 slices) · ImageNet'
"""

from __future__ import annotations

from medtransfer.diagnostics.adapt_bn import adapt_batchnorm
from medtransfer.diagnostics.candidates import Candidate, as_candidate
from medtransfer.diagnostics.comparison import TransferComparison
from medtransfer.diagnostics.features import Features, extract_features
from medtransfer.diagnostics.rank import rank_encoders
from medtransfer.diagnostics.ranking import Ranking
from medtransfer.diagnostics.scores import SCORES, h_score, leep, linear_probe, logme
from medtransfer.diagnostics.scratch import compare_to_scratch
from medtransfer.diagnostics.shift import domain_shift
from medtransfer.diagnostics.shift_report import ShiftReport
from medtransfer.diagnostics.shift_stats import frechet_distance, mmd2, mmd_test, wasserstein_1
from medtransfer.diagnostics.tent import tent

__all__ = [
    "SCORES",
    "Candidate",
    "Features",
    "Ranking",
    "ShiftReport",
    "TransferComparison",
    "adapt_batchnorm",
    "as_candidate",
    "compare_to_scratch",
    "domain_shift",
    "extract_features",
    "frechet_distance",
    "h_score",
    "leep",
    "linear_probe",
    "logme",
    "mmd2",
    "mmd_test",
    "rank_encoders",
    "tent",
    "wasserstein_1",
]
