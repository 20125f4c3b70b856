"""Metrics as functions of predictions and references, with the checks of their inputs.

- :mod:`~medtransfer.evaluation.metrics.mask_inputs`: label maps or one-hot masks, and spacing;
- :mod:`~medtransfer.evaluation.metrics.score_inputs`: classification scores and labels (the task is
  read from the shapes);
- :mod:`~medtransfer.evaluation.metrics.overlap` (Dice, IoU) and
  :mod:`~medtransfer.evaluation.metrics.surface` (HD95, ASSD, surface Dice) for segmentation;
- :mod:`~medtransfer.evaluation.metrics.ranking` (ROC, AUROC, AUPRC),
  :mod:`~medtransfer.evaluation.metrics.thresholds` (accuracy, sensitivity/specificity, Youden) and
  :mod:`~medtransfer.evaluation.metrics.calibration` (ECE) for classification.

The public functions are re-exported by ``medtransfer.evaluation``.
"""
