"""A trained model on new images: prediction, its geometry, test-time flips, post-processing.

- :mod:`~medtransfer.evaluation.inference.predict`: ``predict`` (sliding windows or slice batches);
- :mod:`~medtransfer.evaluation.inference.geometry`: the eval pipeline and the way back to the
  source image's grid;
- :mod:`~medtransfer.evaluation.inference.tta`: the flips test-time augmentation averages over;
- :mod:`~medtransfer.evaluation.inference.postprocess` and
  :mod:`~medtransfer.evaluation.inference.postprocess_options`: opt-in clean-up of label maps, and
  the options as users write them;
- :mod:`~medtransfer.evaluation.inference.checkpoint_fit`: why a checkpoint does not fit a model;
- :mod:`~medtransfer.evaluation.inference.embedding` and
  :mod:`~medtransfer.evaluation.inference.ood`: one feature vector per case, and the
  out-of-distribution detector that tells when a case is unlike the reference (training) cases.

The public functions are re-exported by ``medtransfer.evaluation``.
"""

from medtransfer.evaluation.inference.embedding import case_embedding, embed_records
from medtransfer.evaluation.inference.ood import OODDetector, OutOfDistributionWarning

__all__ = ["OODDetector", "OutOfDistributionWarning", "case_embedding", "embed_records"]
