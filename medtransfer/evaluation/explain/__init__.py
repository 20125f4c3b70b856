"""Where a classifier looked: saliency maps on the source grid, and the cases a report shows.

- :mod:`~medtransfer.evaluation.explain.saliency`: ``saliency`` (Grad-CAM, Grad-CAM++ from MONAI);
- :mod:`~medtransfer.evaluation.explain.layers`: the encoder level a map is read from;
- :mod:`~medtransfer.evaluation.explain.report_cases`: the most and least confident cases of
  each class, with their maps, for ``evaluate_classification(..., saliency=True)``.

``saliency`` is re-exported by ``medtransfer.evaluation``.
"""
