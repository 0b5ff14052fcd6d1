"""The on-device runtime: numpy and a TFLite interpreter, never TensorFlow."""

from edgeseg.runtime.interpreter import backend, make_interpreter
from edgeseg.runtime.segmenter import Segmentation, Segmenter, Timings

__all__ = ["Segmentation", "Segmenter", "Timings", "backend", "make_interpreter"]
