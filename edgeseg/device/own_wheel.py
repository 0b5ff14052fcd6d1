"""A wheel of the edgeseg that is running, for ``edgeseg bundle`` (edgeseg is not on PyPI)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from edgeseg.errors import EdgesegError

_CHECKOUT = Path(__file__).resolve().parents[2]
# What a wheel built from a checkout doesn't need (and pip would copy first).
_IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".venv",
                                 "venv", "tests", "runs", "benchmarks", ".pytest_cache",
                                 ".ruff_cache", "*.keras", "*.tflite", "edgeseg-demo")
# Files pip writes at install time; a wheel must not carry them.
_INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def own_wheel(dest: str | Path) -> Path:
    """Write a wheel of the running edgeseg into ``dest`` and return its path.

    From a checkout (an editable install) it is built with ``pip wheel --no-deps
    --no-build-isolation`` from a copy of the tree (no index needed, nothing written
    into the checkout); from a regular install the installed files are packed back
    into a wheel, using the install's RECORD, so it works on a device too.

    Raises:
        EdgesegError: When pip can't build it, or the install has no RECORD.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "edgeseg").is_dir():
        return _build_from_checkout(dest)
    return repack_installed(dest)


def _build_from_checkout(dest: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="edgeseg-wheel-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(_CHECKOUT, src, ignore=_IGNORE)
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--disable-pip-version-check", "-q",
                            "-w", str(Path(tmp) / "out"), str(src)],
                           capture_output=True, text=True)
        built = sorted((Path(tmp) / "out").glob("edgeseg-*.whl"))
        if r.returncode or not built:
            last = (r.stderr.strip().splitlines() or ["no wheel written"])[-1]
            raise EdgesegError(f"building the edgeseg wheel from {_CHECKOUT} failed ({last}); "
                               "pass --wheel FILE, or --no-wheel to install from an index.")
        out = dest / built[0].name
        shutil.copyfile(built[0], out)
        return out


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def repack_installed(dest: Path, dist: metadata.Distribution | None = None,
                     prefix: str | Path | None = None) -> Path:
    """Pack the installed edgeseg distribution back into ``dest/edgeseg-V-py3-none-any.whl``.

    Args:
        dest: Folder for the wheel.
        dist: The installed distribution (default: the running edgeseg's).
        prefix: The install prefix its data files went under (default: ``sys.prefix``).
    """
    if dist is None:
        try:
            dist = metadata.distribution("edgeseg")
        except metadata.PackageNotFoundError as e:
            raise EdgesegError("edgeseg is not installed as a distribution; pass --wheel "
                               "FILE.") from e
    files = dist.files or []
    if not files:
        raise EdgesegError("the edgeseg install has no RECORD to pack a wheel from; pass "
                           "--wheel FILE.")
    version = dist.version
    data_dir = f"edgeseg-{version}.data/data"
    root = Path(prefix if prefix is not None else sys.prefix).resolve()
    entries: list[tuple[str, bytes]] = []
    for f in files:
        rel = str(f)
        path = Path(str(f.locate())).resolve()
        if "__pycache__" in rel or rel.endswith(".pyc") or not path.is_file():
            continue
        if ".dist-info/" in rel and Path(rel).name in _INSTALL_ONLY:
            continue
        if rel.startswith(".."):
            try:  # data files (share/edgeseg/deploy/...) live under the prefix
                arc = f"{data_dir}/{path.relative_to(root).as_posix()}"
            except ValueError:
                continue
            if arc.startswith(f"{data_dir}/bin/"):
                continue  # console scripts: pip writes them again from entry_points.txt
        else:
            arc = rel
        entries.append((arc, path.read_bytes()))
    info = next((a.split("/")[0] for a, _ in entries if a.endswith(".dist-info/METADATA")), None)
    if info is None:
        raise EdgesegError("the edgeseg install has no METADATA; pass --wheel FILE.")
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"edgeseg-{version}-py3-none-any.whl"
    record = [f"{a},{_record_hash(b)},{len(b)}" for a, b in entries] + [f"{info}/RECORD,,"]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, data in entries:
            zf.writestr(arc, data)
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return out
