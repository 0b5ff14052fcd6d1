"""LiteRT's own GPU accelerator (CompiledModel on WebGPU/Vulkan), behind the interpreter's API."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime.vulkan_drivers import keep_llvm_drivers_away_from_tensorflow

ACCELERATOR_LIB = "libLiteRtWebGpuAccelerator.so"
TITLE = "LiteRT GPU accelerator (WebGPU)"
VULKAN_HINT = ("install the GPU's Vulkan driver and check that `vulkaninfo --summary` lists "
               "it (sudo apt-get install libvulkan1 mesa-vulkan-drivers vulkan-tools)")

# What Dawn (the accelerator's WebGPU) logs when it finds no adapter: what it means, the fix.
_REASONS = (
    (r"Couldn't load Vulkan: (\S+)",
     "the Vulkan loader {0} is not installed", "sudo apt-get install libvulkan1, then " + VULKAN_HINT),
    (r"shaderUniform\*ArrayDynamicIndexing required",
     "the Vulkan driver lacks shaderUniform*ArrayDynamicIndexing, which the accelerator's "
     "WebGPU (Dawn) requires (Mesa's lavapipe and the Pi 5's v3dv lack it)",
     "this driver cannot run it: use a GPU whose Vulkan driver has that feature"),
    (r"Found no drivers|VK_ERROR_INCOMPATIBLE_DRIVER",
     "the Vulkan loader found no driver", VULKAN_HINT),
)


class GpuStatus(NamedTuple):
    """What the accelerator said about one model.

    Attributes:
        adapter: The adapter Dawn selected, as it names it (e.g. ``SwiftShader Device
            (Subzero), backend=Vulkan, adapterType=CPU / Software``).
        fully_accelerated: Every op runs on the GPU (else the rest run on the CPU).
        on_gpu: Ops on the GPU, when the accelerator logged the split (None: not said).
        on_cpu: Ops left to the CPU, likewise.
        cpu_ops: Each op type it refused, with its reason (``ARG_MAX (Tensor
            type(INT64) is not supported)``).
    """

    adapter: str
    fully_accelerated: bool
    on_gpu: int | None = None
    on_cpu: int | None = None
    cpu_ops: tuple[str, ...] = ()

    def line(self) -> str:
        """One line: which accelerator ran, on what, and whether it took the whole model."""
        if self.fully_accelerated:
            return f"{TITLE} on {self.adapter}: fully accelerated"
        split = (f"{self.on_cpu} of {self.on_gpu + self.on_cpu} ops"
                 if self.on_gpu is not None and self.on_cpu is not None else "the ops it lacks")
        ops = f": {', '.join(self.cpu_ops)}" if self.cpu_ops else ""
        return (f"{TITLE} on {self.adapter}: not fully accelerated, {split} run on the CPU "
                f"(XNNPACK){ops}")


def _split(log: str) -> tuple[int | None, int | None, tuple[str, ...]]:
    """(ops on the GPU, ops on the CPU, refused op types with reasons) from the accelerator's
    log: "Following operations are not supported by GPU delegate: OP: reason. node ... N
    operations will run on the GPU, and the remaining M operations will run on the CPU."."""
    counts = re.search(r"(\d+) operations? will run on the GPU, and the remaining (\d+) "
                       r"operations? will run on the CPU", log)
    block = re.search(r"not supported by GPU delegate:\n(.*?)\n\d+ operations? will run", log,
                      re.S)
    ops: list[str] = []
    for ln in (block.group(1).splitlines() if block else []):
        op, _, why = ln.strip().partition(":")  # "OP: reason. node", or "OP: " alone
        op, why = op.strip(), why.strip().split(". ")[0].rstrip(".")
        item = f"{op} ({why})" if why else op
        if op and item not in ops:
            ops.append(item)
    if not counts:
        return None, None, tuple(ops)
    return int(counts.group(1)), int(counts.group(2)), tuple(ops)


@contextlib.contextmanager
def native_output() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptors 1 and 2 (LiteRT, absl and Dawn
    log there, one OpenCL line even on stdout); the list holds the text once the block ends."""
    sys.stdout.flush()
    sys.stderr.flush()
    text: list[str] = []
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            f.seek(0)
            text.append(f.read().decode(errors="replace"))


def _quiet_exit() -> None:
    """LiteRT's tensor-buffer module keeps an environment of its own, torn down by a C++
    static destructor after Python has finished, which logs two DestroyAccelerator lines:
    stderr goes to /dev/null once Python's own exit work is done."""
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


def _no_adapter_reason(log: str) -> tuple[str, str]:
    for pattern, reason, fix in _REASONS:
        m = re.search(pattern, log)
        if m:
            return reason.format(*m.groups()), fix
    return "no adapter found", VULKAN_HINT


def _icd_note() -> str:
    """The variable that chose the Vulkan drivers, when one did: a likely culprit."""
    if _LEFT_OUT:
        return (f" (LLVM-based drivers {', '.join(_LEFT_OUT)} left out: they clash with "
                "TensorFlow, loaded in this process)")
    for name in ("VK_ICD_FILENAMES", "VK_DRIVER_FILES"):
        if os.environ.get(name):
            return f" ({name}={os.environ[name]})"
    return ""


def failure(log: str, error: BaseException | None = None) -> str:
    """The one-line reason the accelerator gave, from its log (and the error it raised)."""
    if "No adapters found" in log or "Failed to initialize WebGPU" in log:
        reason, fix = _no_adapter_reason(log)
        return f"no GPU adapter: {reason}{_icd_note()}; {fix}"
    lines = [ln.strip() for ln in log.splitlines() if ln.startswith(("ERROR", "E0"))]
    detail = lines[0] if lines else (str(error).strip().splitlines() or ["failed"])[0]
    return f"the accelerator refused the model ({detail})"


@functools.cache
def _litert() -> Any:
    """ai_edge_litert.compiled_model, or an EdgesegError saying what to install."""
    try:
        from ai_edge_litert import compiled_model
    except ImportError as e:
        raise EdgesegError("LiteRT's GPU accelerator needs ai-edge-litert 2 (pip install -U "
                           "ai-edge-litert); tflite-runtime has none.") from e
    if not (Path(compiled_model.__file__).parent / ACCELERATOR_LIB).exists():
        raise EdgesegError(f"this ai-edge-litert ships no GPU accelerator ({ACCELERATOR_LIB}); "
                           "pip install -U ai-edge-litert.")
    return compiled_model


@functools.cache
def _environment() -> Any:
    """One LiteRT environment per process: it loads the accelerator libraries once.

    It is kept alive until the process ends (one extra reference): destroying it at
    exit makes LiteRT log three ``DestroyAccelerator`` lines on stderr after the
    command's own output.
    """
    import atexit
    import ctypes

    cm = _litert()
    with native_output():
        try:
            env = cm.Environment.create(runtime_path=str(Path(cm.__file__).parent))
        except RuntimeError as e:
            env = e
    if isinstance(env, RuntimeError):
        first = (str(env).strip().splitlines() or ["failed"])[0]
        raise EdgesegError(f"--delegate gpu: LiteRT's environment did not start ({first}); "
                           "reinstall ai-edge-litert, or pass --fallback to run on the CPU.")
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(env))
    atexit.register(_quiet_exit)
    return env


# The accelerator looks for a GPU adapter once per process and keeps the outcome: a later
# model logs neither the adapter's name nor why there is none, so the first answer is kept.
_NO_ADAPTER: list[str] = []
_ADAPTER: list[str] = []
_LEFT_OUT: list[str] = []  # Vulkan drivers not shown to the accelerator (TensorFlow is loaded)


class GpuModel:
    """A model compiled for the GPU accelerator, with the TFLite interpreter's API.

    Offers what the runtime calls on an interpreter: ``get_input_details``,
    ``get_output_details`` (the model's own tensor details, quantization included),
    ``tensor(index)`` (a callable returning a writable array the size of the tensor),
    ``set_tensor``, ``get_tensor`` and ``invoke``. ``invoke`` copies the inputs in, runs,
    and reads the outputs back: the GPU runs asynchronously, so its time is only
    complete once the outputs are read.
    """

    def __init__(self, compiled: Any, buffers: tuple[list[Any], list[Any]], details: Any,
                 status: GpuStatus) -> None:
        self._model = compiled
        self._inputs = details.get_input_details()
        self._outputs = details.get_output_details()
        self.status = status
        sig = next(iter(compiled.get_signature_list()))
        ins = compiled.get_input_tensor_details(sig)
        outs = compiled.get_output_tensor_details(sig)
        names = compiled.get_signature_list()[sig]
        in_index = [int(ins[n]["index"]) for n in names["inputs"]]
        out_index = [int(outs[n]["index"]) for n in names["outputs"]]
        self._arrays: dict[int, np.ndarray] = {
            int(d["index"]): np.zeros([int(x) for x in d["shape"]], d["dtype"])
            for d in (*self._inputs, *self._outputs)}
        missing = set(in_index + out_index) - set(self._arrays)
        if missing:
            raise EdgesegError(f"the GPU accelerator's signature names tensors {sorted(missing)} "
                               "that are not the model's inputs or outputs.")
        self._in = list(zip(buffers[0], in_index))
        self._out = list(zip(buffers[1], out_index))
        self.nodes = len(details._get_ops_details())  # noqa: SLF001 - the op count

    def close(self) -> None:
        """Release the compiled model; LiteRT logs its accelerators' teardown, kept off stderr."""
        model, self._model = getattr(self, "_model", None), None
        if model is None:
            return
        with contextlib.suppress(Exception), native_output():
            self._in = self._out = []
            model.close()
            del model  # the last reference: LiteRT tears it down here, inside the capture

    def __del__(self) -> None:
        self.close()

    def allocate_tensors(self) -> None:
        """Nothing to do: the accelerator allocated its buffers when it compiled."""

    def get_input_details(self) -> list[dict[str, Any]]:
        return self._inputs

    def get_output_details(self) -> list[dict[str, Any]]:
        return self._outputs

    def tensor(self, index: int) -> Any:
        array = self._arrays[int(index)]
        return lambda: array

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        np.copyto(self._arrays[int(index)], value, casting="unsafe")

    def get_tensor(self, index: int) -> np.ndarray:
        return self._arrays[int(index)].copy()

    def invoke(self) -> None:
        try:
            for buf, i in self._in:
                buf.write(self._arrays[i])
            self._model.run_by_index(0, [b for b, _ in self._in], [b for b, _ in self._out])
            for buf, i in self._out:
                a = self._arrays[i]
                a.reshape(-1)[:] = buf.read(a.size, a.dtype)
        except RuntimeError as e:
            first = (str(e).strip().splitlines() or ["failed"])[0]
            raise EdgesegError(f"the GPU accelerator failed to run the model ({first}); run "
                               "without --delegate gpu.") from e


def compile_for_gpu(path: Path, details: Any, threads: int) -> GpuModel:
    """Compile ``path`` for the GPU accelerator (the ops it lacks on ``threads`` CPU threads).

    Args:
        path: The ``.tflite`` file.
        details: A TFLite interpreter of the same file (unallocated is enough): the
            source of tensor details and quantization.
        threads: CPU threads for the ops left to the CPU.

    Raises:
        EdgesegError: No ai-edge-litert 2 or no accelerator library in it; no GPU adapter
            (says why, from the accelerator's log, and how to fix it); a model it refuses.
    """
    if _NO_ADAPTER:
        raise EdgesegError(_NO_ADAPTER[0])
    cm = _litert()
    if not _ADAPTER and not _LEFT_OUT:  # before the first driver scan (vulkan_drivers says why)
        _LEFT_OUT[:] = keep_llvm_drivers_away_from_tensorflow()
    env = _environment()
    options = cm.Options(hardware_accelerators=cm.HardwareAccelerator.GPU
                         | cm.HardwareAccelerator.CPU,
                         cpu_options=cm.CpuOptions(num_threads=threads))
    compiled, error = None, None
    with native_output() as log:
        try:
            compiled = cm.CompiledModel.from_file(str(path), environment=env, options=options)
            fully = compiled.is_fully_accelerated()
            buffers = compiled.create_input_buffers(0), compiled.create_output_buffers(0)
        except RuntimeError as e:
            error = e
    text = log[0]
    if compiled is None or error is not None:
        message = (f"--delegate gpu: {failure(text, error)}; or pass --fallback to run on "
                   "the CPU.")
        if "no GPU adapter" in message:
            _NO_ADAPTER.append(message)
        raise EdgesegError(message)
    m = re.search(r"Selected adapter: ([^\n]+)", text)
    if m:
        _ADAPTER[:] = [re.sub(r", arch=[^,]*, vendor=[^,]*", "", m.group(1).strip())]
    adapter = _ADAPTER[0] if _ADAPTER else "an unnamed adapter"
    model = GpuModel(compiled, buffers, details,
                     GpuStatus(adapter, fully, *(_split(text) if not fully else (None, None, ()))))
    with native_output():  # the first run compiles the shaders and logs
        try:
            model.invoke()
        except EdgesegError as e:
            raise EdgesegError(f"--delegate gpu: {e}") from e
    return model


def probe(path: str | os.PathLike) -> dict[str, Any]:
    """Ask the GPU accelerator about a model: compile it (seconds) and report what it said.

    Returns:
        ``{"runs": bool, "fully_accelerated": bool | None, "adapter": str | None,
        "line": str}``: ``line`` is :meth:`GpuStatus.line`, or why it can't run
        (no GPU adapter and the fix, no accelerator installed, a model it refuses).

    Raises:
        EdgesegError: Missing or corrupt model (as ``make_interpreter``).
    """
    from edgeseg.runtime.interpreter import make_interpreter

    make_interpreter(path, threads=1, allocate=False)  # a bad file is the file's error
    try:
        model = make_interpreter(path, threads=1, delegate="gpu")
    except EdgesegError as e:
        why = re.sub(r"^--delegate gpu: |[;,] or pass --fallback to run on the CPU\.$", "", str(e))
        return {"runs": False, "fully_accelerated": None, "adapter": None,
                "line": f"{TITLE}: {why}"}
    status = model.status
    model.close()
    return {"runs": True, "fully_accelerated": status.fully_accelerated,
            "adapter": status.adapter, "line": status.line()}
