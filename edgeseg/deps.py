"""Optional heavy dependencies, imported at the point of use with an install hint."""

from __future__ import annotations

import os
from typing import Any

from edgeseg.errors import EdgesegError

FULL_HINT = 'install the full toolkit: pip install "edgeseg[full]"'


def tensorflow() -> Any:
    """Import TensorFlow quietly, or fail with the install hint."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import tensorflow as tf
    except ImportError as e:
        raise EdgesegError(f"this command needs TensorFlow, which is not installed; {FULL_HINT}") from e
    tf.get_logger().setLevel("ERROR")
    return tf


def keras() -> Any:
    """Import Keras 3 (after TensorFlow, so it picks the TensorFlow backend)."""
    tensorflow()
    import keras as k

    return k
