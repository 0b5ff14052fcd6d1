"""The folder you copy to the device: model, sidecar, labels, settings, service and installer."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.config import file_sha256, sidecar_path
from edgeseg.device.deploy_files import EXECUTABLES, TEMPLATES, fill_env, find_templates, parse_env
from edgeseg.errors import EdgesegError
from edgeseg.tflite import read_description


@dataclass(frozen=True)
class BundleSettings:
    """The service settings written into the bundle's ``edgeseg.env``.

    Attributes:
        camera: A V4L2 index (``0``), a ``/dev/video*`` path or ``picam``.
        threads: Interpreter threads (one per core on a Pi 4/5).
        stream_port: MJPEG stream port; 0 for no stream.
        stream_host: Address the stream listens on (``127.0.0.1`` or ``0.0.0.0``).
        save: Where the service saves the overlay video (empty: don't save).
        delegate: ``edgetpu``, ``gpu``, a delegate library path, or empty for the CPU;
            None picks ``edgetpu`` for models converted for that target.
    """

    camera: str = "0"
    threads: int = 4
    stream_port: int = 8080
    stream_host: str = "127.0.0.1"
    save: str = ""
    delegate: str | None = None

    def __post_init__(self) -> None:
        cam = str(self.camera)
        if not (cam.isdigit() or cam == "picam" or cam.startswith("/dev/")):
            raise EdgesegError(f"--camera {cam!r}: use a V4L2 index (0 for /dev/video0), "
                               "a /dev/video* path, or picam for a Pi camera module.")
        if self.threads < 1:
            raise EdgesegError(f"--threads {self.threads} must be at least 1 (4 on a Pi 4/5).")
        if not 0 <= self.stream_port <= 65535:
            raise EdgesegError(f"--stream-port {self.stream_port} must be 1-65535, or 0 for none.")


@dataclass(frozen=True)
class Bundle:
    """A finished bundle: where it is and what it holds (paths relative to it)."""

    path: Path
    model: str
    files: tuple[str, ...]
    sidecar_source: str
    notes: tuple[str, ...] = ()


def read_bundle_description(model: Path) -> tuple[dict[str, Any] | None, list[str], str]:
    """The model's edgeseg description, its labels, and where they came from.

    Read by :func:`edgeseg.tflite.read_description`, as ``edgeseg run`` reads them: the
    sidecar, else the embedded ``edgeseg.json``, else the standard TFLite metadata of a
    model edgeseg did not write (MediaPipe's: the description is then None). A compiled
    ``X_edgetpu.tflite`` carries neither sidecar nor zip: ``X.tflite``'s description is used.

    Raises:
        EdgesegError: When the model is missing or not a .tflite, or describes nothing.
    """
    if not model.is_file():
        raise EdgesegError(f"{model}: no such model file; give the .tflite from edgeseg convert.")
    with model.open("rb") as f:
        head = f.read(8)
    if model.suffix != ".tflite" or head[4:8] != b"TFL3":
        raise EdgesegError(f"{model} is not a .tflite model; convert it first: "
                           "edgeseg convert model.keras --int8 -o model.tflite")
    sources = [model]
    if model.stem.endswith("_edgetpu"):
        sources.append(model.with_name(model.stem[: -len("_edgetpu")] + ".tflite"))
    found = []
    for src in sources:
        if src.is_file():
            # Nothing that falls to defaults is bundled (refused below): no "running on defaults".
            found.append((src, read_description(src, warn_unreadable=False)))
    src, meta = next(((s, m) for s, m in found if m.description is not None),
                     next(((s, m) for s, m in found if m.source != "defaults"), found[0]))
    if meta.source == "defaults":
        raise EdgesegError(
            f"{sidecar_path(model)} is missing and {model.name} has no embedded description or "
            "TFLite metadata: the runtime needs it for preprocessing and labels. Copy the "
            "sidecar beside the model, or re-run edgeseg convert, which writes both."
        )
    where = {"sidecar": str(sidecar_path(src)),
             "embedded": f"{src} (embedded edgeseg.json)"}.get(meta.source, f"{src} ({meta.source})")
    data = meta.description
    if data is not None and src != model and data.get("model_sha256"):
        # The copy beside the compiled model describes the compiled bytes.
        data = {**data, "model_sha256": file_sha256(model)}
    return data, list(meta.labels), where


def auto_delegate(model: Path) -> str:
    """``edgetpu`` for a model compiled by edgetpu_compiler (``*_edgetpu.tflite``), else CPU."""
    return "edgetpu" if model.stem.endswith("_edgetpu") else ""


def notes_for(model: Path, data: dict[str, Any] | None, delegate: str) -> list[str]:
    """Warnings worth a line: a model meant for the Edge TPU but not compiled, and the reverse."""
    target = ((data or {}).get("tflite") or {}).get("target")
    if target == "edgetpu" and delegate != "edgetpu":
        return [f"{model.name} was converted for the Edge TPU but not compiled: it runs on the "
                f"CPU. Compile it (edgetpu_compiler {model.name}) and bundle "
                f"{model.stem}_edgetpu.tflite to use a Coral."]
    if delegate == "edgetpu" and not model.stem.endswith("_edgetpu"):
        return [f"--delegate edgetpu needs a model compiled by edgetpu_compiler "
                f"(*_edgetpu.tflite); {model.name} will fail to load unless --fallback is set."]
    return []


def _readme(model: str, data: dict[str, Any] | None, labels: list[str], env: dict[str, str],
            dirname: str) -> str:
    if data is None:
        what = "not made by edgeseg: the runtime reads its TFLite metadata, as `edgeseg run` does"
    else:
        cfg, tfl = data.get("edgeseg", data), data.get("tflite") or {}
        what = (f"{cfg.get('height', '?')}×{cfg.get('width', '?')} (H×W) input, "
                f"{tfl.get('mode', '?')}, target {tfl.get('target', '?')}")
    coral = " --coral" if env.get("EDGESEG_DELEGATE") == "edgetpu" else ""
    port = env.get("EDGESEG_STREAM_PORT") or "8080"
    return f"""# edgeseg bundle: {model}

Model: `models/{model}` ({what}); classes: {", ".join(labels) or "?"}.
Settings: `edgeseg.env` (camera {env["EDGESEG_CAMERA"]}, {env["EDGESEG_THREADS"]} threads,
stream port {env["EDGESEG_STREAM_PORT"] or "none"}).

On a Raspberry Pi (Raspberry Pi OS Bookworm 64-bit):

    scp -r {dirname} pi@raspberrypi.local:
    ssh pi@raspberrypi.local
    cd {dirname} && sudo ./install-pi.sh{coral}

The installer puts the runtime (no TensorFlow) in /opt/edgeseg/venv, this model in
/opt/edgeseg/models, the settings in /opt/edgeseg/edgeseg.env, and enables edgeseg.service.
edgeseg comes from the wheel in `wheels/` (edgeseg is not on PyPI); when `wheels/` also holds
the runtime's dependencies (`edgeseg bundle --wheelhouse DIR`) nothing is downloaded: the
install works on a device with no internet. `./install-pi.sh --help` lists the options.

    journalctl -u edgeseg -f                              # its log
    ssh -L {port}:localhost:{port} pi@raspberrypi.local   # then open http://localhost:{port}/

Edit /opt/edgeseg/edgeseg.env and `sudo systemctl restart edgeseg` to change settings. To
update the model, run this again with a new bundle, or copy the files into
/opt/edgeseg/models and rename them over the old ones (see the full deploy/README.md).
"""


def _build(dest: Path, model: Path, data: dict[str, Any] | None, labels: list[str],
           settings: BundleSettings, delegate: str, templates: Path, wheel: Path | None,
           name: str, own: bool = False, wheelhouse: list[Path] | None = None) -> None:
    (dest / "models").mkdir()
    shutil.copyfile(model, dest / "models" / model.name)
    if data is not None:  # a third-party model carries its TFLite metadata inside
        (dest / "models" / sidecar_path(model).name).write_text(json.dumps(data, indent=2) + "\n")
    if labels:
        (dest / "models" / "labels.txt").write_text("\n".join(labels) + "\n")
    for t in TEMPLATES:
        if t != "edgeseg.env":
            shutil.copyfile(templates / t, dest / t)
    for t in EXECUTABLES:
        (dest / t).chmod(0o755)
    values = {
        "EDGESEG_MODEL": f"models/{model.name}",
        "EDGESEG_CAMERA": str(settings.camera),
        "EDGESEG_SOURCE": "",
        "EDGESEG_THREADS": str(settings.threads),
        "EDGESEG_DELEGATE": delegate,
        "EDGESEG_STREAM_PORT": str(settings.stream_port) if settings.stream_port else "",
        "EDGESEG_STREAM_HOST": settings.stream_host,
        "EDGESEG_SAVE": settings.save,
    }
    env_text = fill_env((templates / "edgeseg.env").read_text(), values)
    (dest / "edgeseg.env").write_text(env_text)
    (dest / "README.md").write_text(_readme(model.name, data, labels, parse_env(env_text), name))
    if wheel is not None or own or wheelhouse:
        (dest / "wheels").mkdir()
    if wheel is not None:
        shutil.copyfile(wheel, dest / "wheels" / wheel.name)
    elif own:
        from edgeseg.device.own_wheel import own_wheel

        own_wheel(dest / "wheels")
    for w in wheelhouse or []:
        if not w.name.startswith("edgeseg-"):  # ours wins over a stale one in the wheelhouse
            shutil.copyfile(w, dest / "wheels" / w.name)


def _check_edgeseg_wheel(wheel: Path) -> None:
    """Refuse a --wheel that is not an edgeseg wheel (install-pi.sh would fail on the device)."""
    fix = "give an edgeseg wheel (pip wheel --no-deps . in the edgeseg source) or leave out --wheel"
    if not wheel.name.startswith("edgeseg-"):
        raise EdgesegError(f"--wheel {wheel}: not an edgeseg wheel (its name must start with "
                           f"edgeseg-); {fix}.")
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise EdgesegError(f"--wheel {wheel}: not a wheel (not a zip file: {exc}); {fix}.") from None
    if "edgeseg/__init__.py" not in names:
        raise EdgesegError(f"--wheel {wheel}: holds no edgeseg/__init__.py, so it is not an "
                           f"edgeseg wheel; {fix}.")


def _is_bundle(folder: Path) -> bool:
    """Whether ``folder`` holds exactly what :func:`_build` writes, and nothing of the user's."""
    top = {p.name for p in folder.iterdir()}
    if not {"edgeseg.env", "install-pi.sh", "models"} <= top:
        return False
    if not top <= {*TEMPLATES, "README.md", "models", "wheels"}:
        return False
    models = [p for p in (folder / "models").iterdir()]
    tflites = [p for p in models if p.suffix == ".tflite"]
    if len(tflites) != 1 or not all(p.is_file() for p in models):
        return False
    allowed = {tflites[0].name, sidecar_path(tflites[0]).name, "labels.txt"}
    if not {p.name for p in models} <= allowed:
        return False
    wheels = folder / "wheels"
    return not wheels.exists() or all(p.is_file() and p.suffix == ".whl"
                                      for p in wheels.iterdir())


def _check_replaceable(out: Path, model: Path, force: bool) -> None:
    """Refuse an existing ``-o`` unless --force and it is an edgeseg bundle (or empty)
    that does not hold the input model."""
    if not out.is_dir():
        raise EdgesegError(f"{out} exists and is not a folder; pick another -o.")
    if model.resolve().is_relative_to(out.resolve()):
        raise EdgesegError(f"-o {out} holds the input model {model}; replacing it would "
                           "delete the model: pick another -o (a new folder).")
    if any(out.iterdir()) and not _is_bundle(out):
        raise EdgesegError(f"-o {out} already exists and is not a bundle edgeseg wrote "
                           "(it holds other files); pick another -o (a new folder).")
    if not force:
        raise EdgesegError(f"{out} already exists; pass --force to replace it.")


def make_bundle(model: str | Path, output: str | Path, settings: BundleSettings | None = None,
                *, wheel: str | Path | None = None, force: bool = False,
                include_wheel: bool = False, wheelhouse: str | Path | None = None) -> Bundle:
    """Write the deploy folder for ``model`` at ``output``, all at once.

    The folder is built beside ``output`` under a temporary name and renamed into place,
    so an interrupted run leaves no half-made bundle.

    Args:
        model: The .tflite model; its ``.tflite.json`` sidecar (or embedded description)
            supplies labels and the target.
        output: The folder to create.
        settings: What goes into ``edgeseg.env``.
        wheel: An edgeseg wheel to ship in ``wheels/`` (install-pi.sh then installs it).
        force: Replace ``output`` if it exists; only a bundle edgeseg wrote (or an empty
            folder) that does not hold ``model`` is ever replaced.
        include_wheel: Without ``wheel``, ship a wheel of the running edgeseg
            (:func:`edgeseg.device.own_wheel.own_wheel`; ``edgeseg bundle`` does by default).
        wheelhouse: A folder of wheels for the runtime's dependencies (``pip download
            --platform manylinux2014_aarch64 --only-binary=:all:``), copied into ``wheels/``;
            install-pi.sh then installs from the bundle alone, without a package index.

    Returns:
        The finished Bundle.

    Raises:
        EdgesegError: Missing model or description, bad settings, or ``output`` exists
            (and is not a bundle that ``force`` may replace).
    """
    model, out = Path(model), Path(output)
    settings = settings or BundleSettings()
    data, labels, source = read_bundle_description(model)
    if wheel is not None:
        wheel = Path(wheel)
        if not wheel.is_file() or wheel.suffix != ".whl":
            raise EdgesegError(
                f"--wheel {wheel}: no such .whl file; build one: pip wheel --no-deps .")
        _check_edgeseg_wheel(wheel)
    house: list[Path] = []
    if wheelhouse is not None:
        house = sorted(Path(wheelhouse).glob("*.whl")) if Path(wheelhouse).is_dir() else []
        if not house:
            raise EdgesegError(
                f"--wheelhouse {wheelhouse}: no .whl files there; fill it with: pip download "
                "--platform manylinux2014_aarch64 --python-version 3.11 --only-binary=:all: "
                f"-d {wheelhouse} numpy typer rich opencv-python-headless ai-edge-litert "
                "prometheus_client")
    if out.exists():
        _check_replaceable(out, model, force)
    if out.name in ("", ".."):
        out = out.resolve()  # "-o ." has no name to build the new folder beside
    templates = find_templates()
    delegate = settings.delegate if settings.delegate is not None else auto_delegate(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old: Path | None = None
    try:
        _build(tmp, model, data, labels, settings, delegate, templates, wheel, out.name,
               own=include_wheel and wheel is None, wheelhouse=house)
        tmp.chmod(0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('.', 1)[-1]}")
            out.rename(old)
            try:
                tmp.rename(out)
            except OSError:
                old.rename(out)  # put the previous bundle back
                old = None
                raise
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old is not None and old.exists():
            shutil.rmtree(old)
    files = tuple(sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()))
    notes = notes_for(model, data, delegate)
    if wheel is None and not include_wheel:
        notes.append("no edgeseg wheel in the bundle (--no-wheel): install-pi.sh will "
                     "pip-install edgeseg from the package index")
    return Bundle(path=out, model=model.name, files=files, sidecar_source=source,
                  notes=tuple(notes))
