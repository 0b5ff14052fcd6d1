"""The one place that creates a TFLite interpreter: LiteRT or tflite_runtime, plus delegates."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import io
import os
import platform
import re
import sys
import tempfile
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from edgeseg.errors import EdgesegError
from edgeseg.runtime.accelerator import GpuModel, compile_for_gpu

# Tried in order; the first that imports is used.
_BACKENDS = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "ai_edge_litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "tflite_runtime"),
)
INSTALL_HINT = "pip install ai-edge-litert (or tflite-runtime on older Raspberry Pi OS)"

_EDGETPU_LIBS = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib",
                 "Windows": "edgetpu.dll"}
CPU_NAMES = (None, "", "cpu", "xnnpack")
# Custom ops found in published models, and what runs them.
_CUSTOM_OPS = {
    # MediaPipe's ops: the XNNPACK delegate implements them (its README, "Custom operators").
    "Convolution2DTransposeBias": "MediaPipe's op, run by the XNNPACK delegate of ai-edge-litert "
                                  "(pip install ai-edge-litert)",
    "MaxPoolingWithArgmax2D": "MediaPipe's op, run by the XNNPACK delegate of ai-edge-litert "
                              "(pip install ai-edge-litert)",
    "MaxUnpooling2D": "MediaPipe's op, run by the XNNPACK delegate of ai-edge-litert "
                      "(pip install ai-edge-litert)",
    "edgetpu-custom-op": "the model is compiled for the Edge TPU: run it with --delegate edgetpu",
}

# Which delegate each interpreter really got (after any fallback).
_DELEGATE_USED: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


class Backend(NamedTuple):
    """The interpreter package in use."""

    name: str
    version: str
    module: Any


@functools.cache
def backend() -> Backend:
    """Import the first available interpreter package (LiteRT first, then tflite_runtime).

    Raises:
        EdgesegError: When neither is installed.
    """
    for name, module_name, package in _BACKENDS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        version = getattr(importlib.import_module(package), "__version__", "unknown")
        return Backend(name, str(version), module)
    raise EdgesegError(f"no TFLite interpreter is installed; {INSTALL_HINT}.")


def _numpy_message(version: str) -> str:
    """tflite-runtime's last release (2.14, 2023) is compiled against numpy 1: under numpy 2
    its first call prints numpy's 20-line warning with a traceback, then fails."""
    import numpy as np

    return (f"tflite-runtime {version} was built for numpy 1.x and cannot run with numpy "
            f"{np.__version__}: pip install \"numpy<2\", or replace it with ai-edge-litert "
            "(pip install ai-edge-litert), which supports numpy 2.")


def default_threads() -> int:
    """All cores: XNNPACK scales with them, and the interpreter's own default is one."""
    return os.cpu_count() or 1


def _load(library: str, what: str, install: str) -> Any:
    try:
        # Find the library first: a Delegate whose library is missing fails in __init__
        # and then again, noisily, in its __del__.
        ctypes.CDLL(library)
        return backend().module.load_delegate(library)
    except (ValueError, OSError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgesegError(f"could not load the {what} delegate ({library}): {first}; {install}, "
                           "or pass --fallback to run on the CPU.") from e


def _edgetpu_delegate(model_path: Path) -> Any:
    if b"edgetpu-custom-op" not in model_path.read_bytes():
        raise EdgesegError(
            f"{model_path.name} is not compiled for the Edge TPU; run edgetpu_compiler on the int8 "
            "model (or `edgeseg convert --target edgetpu`) and pass the *_edgetpu.tflite file."
        )
    lib = _EDGETPU_LIBS.get(platform.system(), _EDGETPU_LIBS["Linux"])
    return _load(lib, "Edge TPU",
                 "install the Edge TPU runtime: sudo apt-get install libedgetpu1-std "
                 "(https://coral.ai/software/#debian-packages)")


def _delegates_for(delegate: str, model_path: Path) -> list[Any]:
    if delegate == "edgetpu":
        return [_edgetpu_delegate(model_path)]
    if not Path(delegate).exists() and ("/" in delegate or ".so" in delegate
                                        or delegate.endswith(".dylib")):
        raise EdgesegError(f"--delegate {delegate}: no such file; check the path of the "
                           "delegate library (or use cpu, edgetpu or gpu).")
    if not Path(delegate).exists():
        raise EdgesegError(f"unknown delegate {delegate!r}: use cpu, edgetpu, gpu, or the path of "
                           "a delegate library (.so).")
    return [_load(delegate, Path(delegate).name, "check that the library matches this runtime")]


def load_error(model_path: Path, error: BaseException) -> EdgesegError:
    """The one-line error for an interpreter that refused a model, saying what to do.

    A custom op the runtime lacks is named with what runs it; a module built for
    numpy 1 says so; anything else points at a damaged file.
    """
    text = str(error).strip()
    be = backend()
    op = re.search(r"unresolved custom op: ([\w.\-/]+?)\.?(?:\s|$)", text)
    if op:
        name = op.group(1)
        has = _CUSTOM_OPS.get(name, "a runtime built with that op (the model's own framework "
                                    "registers it)")
        if be.name == "ai-edge-litert" and "MediaPipe" in has:
            has = "MediaPipe's op runs only in the XNNPACK delegate, the default CPU path: run " \
                  "without --delegate"
        return EdgesegError(f"{model_path} uses the custom op {name}, which {be.name} "
                            f"{be.version} does not have: {has}.")
    chain = [error, error.__cause__, error.__context__]
    if any(e is not None and ("_ARRAY_API" in str(e) or "numpy.core.multiarray" in str(e))
           for e in chain):
        return EdgesegError(_numpy_message(be.version))
    detail = text.splitlines()[0] if text else type(error).__name__
    return EdgesegError(f"{model_path} could not be loaded as a TFLite model ({detail}); check "
                        "that the file is complete (re-copy or re-run `edgeseg convert`).")


KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_KERAS_MAGIC = (b"PK\x03\x04", b"\x89HDF")  # a .keras file is a zip; .h5 is HDF5


def check_model_file(path: str | os.PathLike) -> None:
    """Fail early, before a camera is opened, on a model file that cannot run.

    Raises:
        EdgesegError: ``path`` is missing, or is a Keras model (by suffix, or a zip/HDF5
            file whose bytes 4-8 are not the TFLite identifier ``TFL3``): the message
            gives the convert command.
    """
    path = Path(path)
    if not path.is_file():
        raise EdgesegError(f"{path}: no such model file; check the path.")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return
    if path.suffix.lower() in KERAS_SUFFIXES or head[:4] in _KERAS_MAGIC:
        raise EdgesegError(f"{path} is a Keras model; this command runs a .tflite (what the Pi "
                           f"runs, without TensorFlow). Convert it first: edgeseg convert "
                           f"{path} --int8")


# What LiteRT's native logger writes to fd 2 on every CPU run, with no switch to turn it
# off (TF_CPP_MIN_LOG_LEVEL does not reach it): dropped. Every other line is passed on.
_NATIVE_INFO = frozenset({"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
                          "INFO: Initialized TensorFlow Lite runtime."})


@contextlib.contextmanager
def _without_native_info() -> Iterator[None]:
    """Hold what native code writes to fd 2 in the block; pass it on less ``_NATIVE_INFO``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [ln for ln in held.read().splitlines(keepends=True)
                    if ln.decode(errors="replace").strip() not in _NATIVE_INFO]
            if kept:
                os.write(2, b"".join(kept))


def _create(model_path: Path, threads: int, delegates: list[Any], content: bytes | None = None,
            allocate: bool = True) -> Any:
    # numpy's C-API loader prints its own traceback to stderr before the call fails;
    # the error below says it in one line instead.
    noise = io.StringIO()
    source = {"model_content": content} if content is not None else {"model_path": str(model_path)}
    try:
        with contextlib.redirect_stderr(noise), _without_native_info():
            interpreter = backend().module.Interpreter(
                **source, num_threads=threads, experimental_delegates=delegates or None,
            )
            if allocate:
                interpreter.allocate_tensors()
    except (ValueError, RuntimeError, SystemError, ImportError) as e:
        raise load_error(model_path, e) from e
    return interpreter


def make_interpreter(model_path: str | os.PathLike | bytes, threads: int | None = None,
                     delegate: str | None = None, fallback: bool = False,
                     allocate: bool = True) -> Any:
    """Create and allocate an interpreter for ``model_path``: the only place that makes one.

    Args:
        model_path: The ``.tflite`` file, or the model's bytes (CPU only).
        threads: CPU threads for XNNPACK and the builtin kernels (default: all cores).
        delegate: ``None``/``"cpu"`` (XNNPACK), ``"edgetpu"`` (needs an ``_edgetpu.tflite``),
            ``"gpu"`` (LiteRT's GPU accelerator: returns a
            :class:`edgeseg.runtime.accelerator.GpuModel`, which offers the same calls),
            or the path of a delegate library (e.g. a ``libtensorflowlite_gpu_delegate.so``
            built from the TensorFlow sources).
        fallback: When the delegate cannot be loaded, warn and run on the CPU instead
            of raising.
        allocate: Allocate the tensors (False: only read the graph, e.g. a model whose
            custom op needs a delegate that isn't here).

    Returns:
        An interpreter, with tensors allocated unless ``allocate`` is False.

    Raises:
        EdgesegError: Missing or corrupt model, unknown or missing delegate, a custom op
            the runtime lacks, a runtime built for another numpy.
    """
    if isinstance(model_path, (bytes, bytearray)):
        if delegate not in CPU_NAMES:
            raise EdgesegError("a delegate needs the model as a file; save it first.")
        interpreter = _create(Path("<model bytes>"), threads or default_threads(), [],
                              bytes(model_path), allocate)
        _DELEGATE_USED[interpreter] = "xnnpack"
        return interpreter
    path = Path(model_path)
    check_model_file(path)
    threads = threads or default_threads()
    if threads < 1:
        raise EdgesegError(f"--threads must be at least 1 (got {threads}).")
    name = "xnnpack" if delegate in CPU_NAMES else str(delegate)
    delegates: list[Any] = []
    if name != "xnnpack":
        try:
            if name == "gpu":
                return _gpu(path, threads)
            delegates = _delegates_for(name, path)
        except EdgesegError as e:
            if not fallback:
                raise
            why = re.sub(r"[;,] or pass --fallback to run on the CPU\.$", ".", str(e))
            warnings.warn(f"{why} Falling back to the CPU (XNNPACK), as --fallback asks.",
                          RuntimeWarning, stacklevel=2)
            name = "xnnpack"
    interpreter = _create(path, threads, delegates, None, allocate)
    _DELEGATE_USED[interpreter] = name
    return interpreter


def _gpu(path: Path, threads: int) -> Any:
    # The model's own tensor details (quantization included) come from the interpreter,
    # which only reads the graph here; the accelerator runs it.
    details = _create(path, threads, [], None, allocate=False)
    model = compile_for_gpu(path, details, threads)
    _DELEGATE_USED[model] = "gpu"
    return model


def accelerator_line(interpreter: Any) -> str | None:
    """One line on LiteRT's GPU accelerator for a model made with ``delegate="gpu"``:
    the adapter it ran on and whether it took the whole model (None for other models)."""
    return interpreter.status.line() if isinstance(interpreter, GpuModel) else None


def delegate_name(interpreter: Any) -> str:
    """The delegate ``interpreter`` was created with (``xnnpack`` for the CPU)."""
    return _DELEGATE_USED.get(interpreter, "xnnpack")


def delegated_nodes(interpreter: Any) -> tuple[int, int] | None:
    """(nodes taken by delegates, nodes in the model), or None when the runtime can't tell.

    Each DELEGATE node replaces the original nodes between its input and output
    tensors, so walking back from its outputs to its inputs finds what it took.
    """
    if isinstance(interpreter, GpuModel):  # what the accelerator said (None: it didn't)
        s = interpreter.status
        if s.fully_accelerated:
            return interpreter.nodes, interpreter.nodes
        return (s.on_gpu, s.on_gpu + s.on_cpu) if s.on_gpu is not None and s.on_cpu else None
    try:
        ops = interpreter._get_ops_details()  # noqa: SLF001 - the only source of this figure
    except (AttributeError, RuntimeError, ValueError):
        return None
    original = [op for op in ops if op["op_name"] != "DELEGATE"]
    produced_by = {int(t): i for i, op in enumerate(original) for t in op["outputs"]}
    taken: set[int] = set()
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        boundary = {int(t) for t in op["inputs"]}
        stack = [int(t) for t in op["outputs"]]
        while stack:
            t = stack.pop()
            node = produced_by.get(t)
            if t in boundary or node is None or node in taken:
                continue
            taken.add(node)
            stack.extend(int(x) for x in original[node]["inputs"])
    return len(taken), len(original)
