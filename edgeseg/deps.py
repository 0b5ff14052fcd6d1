"""Optional heavy dependencies, imported at the point of use with an install hint."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from edgeseg.errors import EdgesegError

FULL_HINT = 'install the full toolkit: pip install "edgeseg[full]"'


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Point the process-level stderr (fd 2, where native libraries log) at /dev/null."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tensorflow() -> Any:
    """Import TensorFlow quietly, or fail with the install hint."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _stderr_to_devnull():  # absl prints oneDNN/CUDA notices before any log level applies
            import tensorflow as tf
    except ImportError as e:
        raise EdgesegError(
            f"this command needs TensorFlow, which is not installed; {FULL_HINT}") from e
    tf.get_logger().setLevel("ERROR")
    return tf


def keras() -> Any:
    """Import Keras 3 (after TensorFlow, so it picks the TensorFlow backend)."""
    tensorflow()
    import keras as k

    return k


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX-512 BF16), where mixed
    precision trains ~1.7x faster; elsewhere bfloat16 would be emulated and slow."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@contextlib.contextmanager
def quiet_tensorflow() -> Iterator[None]:
    """Silence TensorFlow's converter chatter (Keras export listings, C++ logs, warnings).

    Progress bars on stdout keep working: only Keras' interactive messages are
    turned off and the process-level stderr goes to /dev/null for the duration.
    """
    import warnings

    k = keras()
    was_interactive = k.config.is_interactive_logging_enabled()
    k.config.disable_interactive_logging()
    try:
        with _stderr_to_devnull(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if was_interactive:
            k.config.enable_interactive_logging()
