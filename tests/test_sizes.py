"""Sizes are written height×width everywhere, as --height/--width order them (issue 25, item 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.sizes import hw

PACKAGE = Path(__file__).resolve().parents[1] / "edgeseg"
# Two format fields joined by an ASCII x, as "{w}x{h}" or "{shape[1]}x{shape[0]}" wrote them.
ASCII_SIZE = re.compile(r"\}x\{")


def test_no_message_joins_two_numbers_with_an_ascii_x() -> None:
    found = [f"{p.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
             for p in sorted(PACKAGE.rglob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1) if ASCII_SIZE.search(line)]
    assert not found, "write sizes with edgeseg.sizes.hw (H×W):\n" + "\n".join(found)


def test_hw_puts_height_first_and_says_so() -> None:
    assert hw(144, 256) == "144×256 (H×W)"


LANDSCAPE = PACKAGE.parents[1] / "shared/realdata/models/selfie_segmentation_landscape.tflite"


@pytest.mark.skipif(not LANDSCAPE.is_file(), reason=f"{LANDSCAPE} is absent (CI has it)")
def test_inspect_writes_the_tensor_sizes_height_first() -> None:
    r = CliRunner().invoke(app, ["inspect", str(LANDSCAPE)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    rows = [ln for ln in r.output.splitlines() if "[1, 144, 256," in ln]
    assert len(rows) >= 2 and all("144×256 (H×W)" in ln for ln in rows), rows  # input, mask
    assert "256×144" not in r.output
