"""Stateful accumulators for evaluation loops: per-case values, bootstrapped from the same cases.

- :mod:`~medtransfer.evaluation.accumulators.segmentation`: ``SegmentationAccumulator``;
- :mod:`~medtransfer.evaluation.accumulators.classification`: ``ClassificationAccumulator`` and
  ``classification_metrics``;
- :mod:`~medtransfer.evaluation.accumulators.case_ids`: the case identifiers both keep.

The public names are re-exported by ``medtransfer.evaluation``.
"""
