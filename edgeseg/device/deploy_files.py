"""The device's deploy files: where their templates live, and the systemd env file they share."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from edgeseg.errors import EdgesegError

# What install-pi.sh needs beside it; all live in deploy/ of the source tree.
TEMPLATES = ("install-pi.sh", "edgeseg-service.sh", "edgeseg.service", "edgeseg.env")
EXECUTABLES = ("install-pi.sh", "edgeseg-service.sh")
_ENV_LINE = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$")


def find_templates() -> Path:
    """The folder holding the deploy templates (``deploy/`` of a checkout, or installed data).

    Raises:
        EdgesegError: When no folder has all of them.
    """
    import site

    # A checkout (or editable install), then a wheel's data files (venv, then pip --user).
    candidates = [
        Path(__file__).resolve().parents[2] / "deploy",
        Path(sys.prefix) / "share" / "edgeseg" / "deploy",
        Path(site.getuserbase()) / "share" / "edgeseg" / "deploy",
    ]
    for d in candidates:
        if all((d / name).is_file() for name in TEMPLATES):
            return d
    raise EdgesegError(
        "the deploy templates (" + ", ".join(TEMPLATES) + ") were not found in "
        + " or ".join(str(d) for d in candidates)
        + "; reinstall edgeseg, or run edgeseg bundle from a checkout (pip install -e .)."
    )


def parse_env(text: str) -> dict[str, str]:
    """Read ``KEY=value`` lines as systemd's EnvironmentFile does (comments and quotes dropped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _ENV_LINE.match(line.strip())
        if m:
            value = m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out[m.group(1)] = value
    return out


def _env_value(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@%+,=-]*", value):
        return value
    if '"' in value or "\\" in value or "\n" in value:
        raise EdgesegError(f"{value!r} cannot go into edgeseg.env: avoid quotes and backslashes.")
    return f'"{value}"'


def fill_env(template: str, values: dict[str, str]) -> str:
    """Replace the value of each ``KEY=`` line of ``template``, keeping comments and order.

    Raises:
        ValueError: When the template lacks one of the keys (a broken install).
    """
    lines = template.splitlines()
    for key, value in values.items():
        idx = [i for i, line in enumerate(lines) if line.startswith(f"{key}=")]
        if not idx:
            raise ValueError(f"edgeseg.env template has no {key}= line")
        lines[idx[-1]] = f"{key}={_env_value(value)}"
    return "\n".join(lines) + "\n"
