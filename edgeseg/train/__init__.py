"""Training: fit mobilenet_segnet on a dataset (``fit``) and the pieces of a run (``loop``)."""

from edgeseg.train.fit import TrainConfig, train

__all__ = ["TrainConfig", "train"]
