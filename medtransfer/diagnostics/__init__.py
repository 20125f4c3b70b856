"""medtransfer.diagnostics: the questions transfer learning raises, answered with measurements.

- *Which encoder?* :func:`rank_encoders` scores frozen features of each candidate (LogME, H-score,
  LEEP, linear probe) in a fraction of the time fine-tuning them takes, and returns a
  :class:`Ranking`.
- *Did pretraining help?* :func:`compare_to_scratch` trains the same recipe from ImageNet weights
  and from random initialisation on the same data, budget and seeds, at one or several label
  fractions, and returns a :class:`TransferComparison` with paired confidence intervals, learning
  and convergence curves, and a verdict in words (including negative transfer).

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
from medtransfer.diagnostics.tent import tent

__all__ = [
    "SCORES",
    "Candidate",
    "Features",
    "Ranking",
    "TransferComparison",
    "adapt_batchnorm",
    "as_candidate",
    "compare_to_scratch",
    "extract_features",
    "h_score",
    "leep",
    "linear_probe",
    "logme",
    "rank_encoders",
    "tent",
]
