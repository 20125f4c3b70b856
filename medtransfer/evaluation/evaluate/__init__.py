"""The two entry points: a trained model on labelled records, the result a ``Report``.

- :mod:`~medtransfer.evaluation.evaluate.segmentation`: ``evaluate_segmentation``;
- :mod:`~medtransfer.evaluation.evaluate.classification`: ``evaluate_classification``;
- :mod:`~medtransfer.evaluation.evaluate.records`: the checks and metadata both share (records,
  case ids, class names, the preset's eval pipeline, run metadata).

Both functions are re-exported by ``medtransfer.evaluation``.
"""
