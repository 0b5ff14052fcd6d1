"""``data check`` on the real VOC folders: one --classes for the whole dataset, --binary means
2 classes, and the classes named by a names file beside the data (labelme's class_names.txt)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.data.prepare import checked_split
from edgeseg.data.readers import MaskEncoding
from edgeseg.errors import EdgesegError

VOC = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "voc_labelme"
pytestmark = pytest.mark.skipif(not VOC.is_dir(), reason=f"{VOC} is absent (CI has it)")
# labelme2voc's class_names.txt for these masks: background first, one name per id
VOC_NAMES = ("_background_ aeroplane bicycle bird boat bottle bus car cat chair cow diningtable "
             "dog horse motorbike person pottedplant sheep sofa train tvmonitor").split()
WIDE = {"COLUMNS": "200"}


def voc_copy(tmp_path: Path) -> Path:
    root = tmp_path / "voc"
    for sub in ("images", "annotations"):
        shutil.copytree(VOC / sub, root / sub)
    return root


def check(*args: object) -> object:
    return CliRunner().invoke(app, ["data", "check", *map(str, args)], env=WIDE)


def test_ids_above_classes_get_one_value_for_the_whole_dataset(tmp_path: Path) -> None:
    ids = {p.name: set(np.unique(np.array(Image.open(p)))) - {255}
           for p in sorted((VOC / "annotations").glob("*.png"))}
    top = max(max(s) for s in ids.values())
    holders = sorted(n for n, s in ids.items() if top in s)
    r = check(VOC, "--classes", 10)
    assert r.exit_code == 1, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == sum(1 for s in ids.values() if max(s) >= 10)
    assert not any("pass --classes" in ln for ln in errors)  # no value per file
    hint = next(ln for ln in r.output.splitlines() if ln.startswith("hint:"))
    assert f"pass --classes {top + 1} for the whole dataset" in hint
    assert f"the highest id, {top}, + 1; it is in {', '.join('annotations/' + h for h in holders)}" \
        in hint
    assert r.output.count("pass --classes") == 1
    # training's check stops with the same single value
    with pytest.raises(EdgesegError) as e:
        checked_split(VOC, None, 10, MaskEncoding(), log=lambda s: None)
    assert f"pass --classes {top + 1} for the whole dataset" in str(e.value)
    assert str(e.value).count("pass --classes") == 1


def test_binary_means_two_classes_and_a_contradicting_classes_is_an_error(tmp_path: Path) -> None:
    root = voc_copy(tmp_path)
    for p in (root / "annotations").glob("*.png"):  # person masks, as a matting set has them
        ids = np.array(Image.open(p))
        Image.fromarray(np.where(ids == 15, 255, 0).astype(np.uint8)).save(p)
    r = check(root, "--binary")
    assert r.exit_code == 0, r.output
    assert "3 pairs in" in r.output and "2 classes: 0 error(s)" in r.output
    for args in (["data", "check", str(root), "--binary", "--classes", "3"],
                 ["train", "--data", str(root), "--binary", "--classes", "3", "-o",
                  str(tmp_path / "m.keras")]):
        bad = CliRunner().invoke(app, args, env=WIDE)
        assert bad.exit_code == 2, bad.output
        assert bad.output.strip().splitlines() == [
            "error: --binary reads 0/255 masks as 2 classes (background and object); --classes 3 "
            "contradicts it: leave --classes out (or leave --binary out if the masks hold class "
            "ids)."]
    assert check(root, "--binary", "--classes", 2).exit_code == 0


def test_labelme_class_names_txt_names_the_classes(tmp_path: Path) -> None:
    root = voc_copy(tmp_path)
    (root / "class_names.txt").write_text("\n".join(VOC_NAMES))  # as labelme2voc writes it
    counts = np.zeros(256, np.int64)
    masks = np.zeros(256, np.int64)
    for p in (root / "annotations").glob("*.png"):
        c = np.bincount(np.array(Image.open(p)).ravel(), minlength=256)
        counts += c
        masks += c > 0
    scored = counts[:21].sum()
    r = check(root)  # no --classes: the names file gives 21
    assert r.exit_code == 0, r.output
    assert "21 classes" in r.output
    rows = {cells[1]: cells for cells in
            ([c.strip() for c in ln.split("│")[1:-1]] for ln in r.output.splitlines()
             if ln.startswith("│"))}
    for i in np.flatnonzero(counts[:21]):
        name = VOC_NAMES[i]
        assert rows[name][0] == str(i), rows[name]
        assert rows[name][2] == f"{counts[i]:,}" and rows[name][4] == str(masks[i])
        assert rows[name][3] == f"{counts[i] / scored:.1%}"
    assert "1 (aeroplane)" in r.output  # never seen: said by name
    r = check(root, "--classes", 19)
    assert "class_names.txt: names 21 classes but the check is for 19 (--classes)" in r.output
