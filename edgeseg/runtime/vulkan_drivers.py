"""Which Vulkan drivers LiteRT's GPU accelerator may load in a process that holds TensorFlow.

TensorFlow's ``libtensorflow_framework.so.2`` carries its own LLVM and puts its symbols in
the process's global scope. Mesa's Vulkan drivers built on LLVM (lavapipe, RADV) load the
system's ``libLLVM-NN.so``, whose symbol references then bind to TensorFlow's LLVM of
another version: measured here (TF 2.21, Debian's libLLVM-15), ``import tensorflow``
followed by the Vulkan loader's driver scan ends the process with ``free(): invalid
pointer`` (SIGABRT, exit 134) in ``llvm::cl::opt<ChangePrinter>::~opt()`` at exit, after
the command's own work. Loaded the other way round (the driver before TensorFlow) the two
stay apart. So once TensorFlow is in the process, the accelerator is shown only the
drivers that don't link LLVM.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from edgeseg.errors import EdgesegError

# Where the Vulkan loader looks for driver manifests on Linux (its LoaderInterfaceArchitecture
# doc, "Driver Discovery on Linux"), after the XDG variables' own directories.
_MANIFEST_DIRS = ("/etc/xdg/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d",
                  "/usr/share/vulkan/icd.d")
_OVERRIDES = ("VK_DRIVER_FILES", "VK_ICD_FILENAMES")


def _manifest_dirs(environ: Mapping[str, str]) -> list[Path]:
    dirs = [Path(d) / "vulkan" / "icd.d"
            for var in ("XDG_CONFIG_DIRS", "XDG_DATA_HOME", "XDG_DATA_DIRS")
            for d in environ.get(var, "").split(os.pathsep) if d]
    return dirs + [Path(d) for d in _MANIFEST_DIRS]


def _driver_library(manifest: Path) -> Path | None:
    try:
        lib = json.loads(manifest.read_text())["ICD"]["library_path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # the loader skips a manifest it can't read too
    path = Path(lib)
    return path if path.is_absolute() or "/" not in lib else manifest.parent / path


def links_llvm(library: Path) -> bool:
    """Whether a driver library names ``libLLVM`` (its DT_NEEDED entry is a plain string)."""
    try:
        return b"libLLVM" in library.read_bytes()
    except OSError:
        return False


def drivers_without_llvm(environ: Mapping[str, str] | None = None,
                         dirs: list[Path] | None = None) -> tuple[list[Path], list[Path]]:
    """(manifests of drivers that don't link LLVM, manifests of those that do).

    A driver named only by its file name (found through the library search path) counts
    as not linking LLVM: it can't be read from here.
    """
    env = os.environ if environ is None else environ
    seen: dict[str, Path] = {}
    for d in dirs if dirs is not None else _manifest_dirs(env):
        for manifest in sorted(d.glob("*.json")) if d.is_dir() else ():
            seen.setdefault(manifest.name, manifest)  # an earlier directory wins, as in the loader
    keep: list[Path] = []
    llvm: list[Path] = []
    for manifest in seen.values():
        lib = _driver_library(manifest)
        if lib is not None:
            (llvm if links_llvm(lib) else keep).append(manifest)
    return keep, llvm


def keep_llvm_drivers_away_from_tensorflow(environ: os._Environ | dict[str, str] | None = None,
                                           dirs: list[Path] | None = None) -> list[str]:
    """Before the accelerator first loads Vulkan: with TensorFlow in this process and no
    driver choice of the user's (``VK_DRIVER_FILES``/``VK_ICD_FILENAMES``), point the loader
    at the drivers that don't link LLVM.

    Returns:
        The manifests left out (e.g. ``lvp_icd.x86_64``); empty when nothing changed.

    Raises:
        EdgesegError: Every driver here links LLVM: none can run beside TensorFlow.
    """
    env = os.environ if environ is None else environ
    if "tensorflow" not in sys.modules or any(env.get(v) for v in _OVERRIDES):
        return []
    keep, llvm = drivers_without_llvm(env, dirs)
    names = [m.stem for m in llvm]
    if not llvm:
        return []
    if not keep:
        raise EdgesegError(
            f"--delegate gpu: every Vulkan driver here ({', '.join(names)}) is built on LLVM, "
            "which clashes with TensorFlow's LLVM, loaded in this process (it would abort at "
            "exit); run the .tflite in a process without TensorFlow, or pass --fallback to "
            "run on the CPU.")
    env["VK_ICD_FILENAMES"] = os.pathsep.join(str(m) for m in keep)
    return names
