"""A trained model on new images: prediction, its geometry, test-time flips, post-processing.

- :mod:`~medtransfer.evaluation.inference.predict`: ``predict`` (sliding windows or slice batches);
- :mod:`~medtransfer.evaluation.inference.geometry`: the eval pipeline and the way back to the
  source image's grid;
- :mod:`~medtransfer.evaluation.inference.tta`: the flips test-time augmentation averages over;
- :mod:`~medtransfer.evaluation.inference.postprocess` and
  :mod:`~medtransfer.evaluation.inference.postprocess_options`: opt-in clean-up of label maps, and
  the options as users write them;
- :mod:`~medtransfer.evaluation.inference.checkpoint_fit`: why a checkpoint does not fit a model.

The public functions are re-exported by ``medtransfer.evaluation``.
"""
