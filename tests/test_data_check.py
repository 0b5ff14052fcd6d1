"""``data check`` and ``train``'s check on datasets as people have them; the class-keeping split."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.data.check import check_dataset
from edgeseg.data.dataset import resolve_split
from edgeseg.data.prepare import checked_split
from edgeseg.data.readers import MaskEncoding
from edgeseg.errors import EdgesegError

runner = CliRunner()
REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


def _dataset(root: Path, masks: dict[str, np.ndarray], img_ext: str = ".png") -> Path:
    """One image per mask (same size, grey 90), masks written as grey PNGs."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for stem, m in masks.items():
        cv2.imwrite(str(root / "images" / f"{stem}{img_ext}"), np.full((*m.shape[:2], 3), 90, np.uint8))
        cv2.imwrite(str(root / "annotations" / f"{stem}.png"), m)
    return root


def _square(value: int, size: int = 16, border: int = 0) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    if border:
        m[2:size - 2, 2:size - 2] = border
    m[4:size - 4, 4:size - 4] = value
    return m


# --- data check -----------------------------------------------------------------------------


def test_binary_0_255_masks_are_an_error_with_the_fix(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {f"leaf{i}": _square(255) for i in range(3)})
    result = check_dataset(root, 2)
    assert [e.path for e in result.errors] == [root]
    assert "all 3 masks hold only 0 and 255" in result.errors[0].message
    assert "--binary" in result.errors[0].message
    fixed = check_dataset(root, 2, encoding=MaskEncoding(binary=True))
    assert fixed.ok and fixed.pixels == (3 * (256 - 64), 3 * 64) and fixed.ignored_pixels == 0


def test_some_0_255_masks_among_class_id_masks_are_a_warning(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {"a": _square(1), "b": _square(255)})
    result = check_dataset(root, 2)
    assert result.ok
    assert [w.message[:36] for w in result.warnings] == ["1 masks hold only 0 and 255 (b.png):"]


def test_void_border_is_ignored_and_counted_other_ids_are_errors(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {"a": _square(1, border=255), "b": _square(2, border=255)})
    result = check_dataset(root, 3)
    assert result.ok and result.ignored_pixels == 2 * (144 - 64) and result.invalid_pixels == 0
    assert result.pixels == (2 * (256 - 144), 64, 64)
    assert result.mask_classes == {root / "annotations" / "a.png": {0, 1},
                                   root / "annotations" / "b.png": {0, 2}}
    two = check_dataset(root, 2)
    assert [(e.path.name, e.message) for e in two.errors] == [(
        "b.png", "class ids 2 (64 px) are >= --classes 2.")]
    assert two.invalid_pixels == 64
    other = check_dataset(root, 3, encoding=MaskEncoding(ignore_index=254))
    assert [e.message for e in other.errors][0].startswith("class ids 255 (80 px) are >= --classes 3; 255 is")


def test_palette_masks_are_read_as_their_indices(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "voc", {})
    for i in range(2):
        cv2.imwrite(str(root / "images" / f"{i}.jpg"), np.full((16, 16, 3), 90, np.uint8))
        p = Image.fromarray(_square(1), mode="P")
        p.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
        p.save(root / "annotations" / f"{i}.png")
    result = check_dataset(root, 2)
    assert result.ok and not result.issues and result.images_per_class == (2, 2)


def test_colour_masks_error_then_decode_with_labelmap(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {})
    for i in range(2):
        cv2.imwrite(str(root / "images" / f"car{i}.jpg"), np.full((16, 16, 3), 60, np.uint8))
        m = np.zeros((16, 16, 3), np.uint8)
        m[4:12, 4:12] = (0, 0, 255)  # BGR: red
        cv2.imwrite(str(root / "annotations" / f"car{i}.png"), m)
    result = check_dataset(root, 2)
    assert len(result.errors) == 2 and all("--mask-colors" in e.message for e in result.errors)
    (root / "labelmap.txt").write_text("background:0,0,0::\ncar:255,0,0::\n")
    res = runner.invoke(app, ["data", "check", str(root)])  # labelmap found; --classes from it
    assert res.exit_code == 0, res.output
    assert re.search(r"1 │ car\s+│\s+128 ", res.output), res.output


def test_mixed_image_formats_pass_and_are_counted(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {f"p{i}": _square(1) for i in range(5)})
    rgb = Image.fromarray(np.full((16, 16, 3), (40, 160, 230), np.uint8))
    rgb.convert("L").save(root / "images" / "p0.png")
    rgb.convert("RGBA").save(root / "images" / "p1.png")
    rgb.convert("LA").save(root / "images" / "p2.png")
    (root / "images" / "p3.png").unlink()
    rgb.convert("CMYK").save(root / "images" / "p3.jpg")
    result = check_dataset(root, 2)
    assert result.ok and not result.warnings
    assert result.converted == {"grey": 1, "RGBA (alpha dropped)": 1, "grey+alpha": 1, "CMYK": 1}


def test_exif_rotated_photo_matches_its_upright_mask(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {"a": _square(1)})
    stored = Image.fromarray(np.full((16, 24, 3), 90, np.uint8))  # landscape as stored
    exif = stored.getexif()
    exif[0x0112] = 6  # shown turned 90°: portrait 16 wide x 24 high
    (root / "images" / "a.png").unlink()
    stored.save(root / "images" / "a.jpg", exif=exif.tobytes())
    cv2.imwrite(str(root / "annotations" / "a.png"), np.zeros((24, 16), np.uint8))
    result = check_dataset(root, 2)
    assert result.ok and result.converted == {"EXIF-rotated": 1}
    cv2.imwrite(str(root / "annotations" / "a.png"), np.zeros((16, 24), np.uint8))  # drawn on the raw pixels
    assert "size 16×24 (H×W) differs from its image's 24×16 (H×W)" in check_dataset(root, 2).errors[0].message


def test_jpeg_masks_and_renamed_masks_are_named(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {"g0": _square(1), "crack": _square(1)})
    (root / "annotations" / "g0.png").unlink()
    cv2.imwrite(str(root / "annotations" / "g0.jpg"), _square(1))
    (root / "annotations" / "crack.png").rename(root / "annotations" / "crack_mask.png")
    msgs = {(e.path.name, e.message) for e in check_dataset(root, 2).errors}
    assert ("g0.jpg", "JPEG mask: masks must be PNG (JPEG compression changes class ids at every edge); "
                      "save it as annotations/g0.png.") in msgs
    assert ("crack.png", "image without mask: no mask named annotations/crack.png "
                         "(crack_mask.png is there: rename it to crack.png).") in msgs
    assert len(msgs) == 3  # and crack_mask.png, a mask without image


@pytest.mark.skipif(not (REALDATA / "voc_labelme").is_dir(), reason="needs ../shared/realdata (CI has it)")
def test_cli_check_voc_grey_and_palette_give_identical_tables() -> None:
    outs = []
    for name in ("voc_labelme", "voc_labelme_palette"):
        res = runner.invoke(app, ["data", "check", str(REALDATA / name), "--classes", "21"])
        assert res.exit_code == 0, res.output
        outs.append(res.output.replace(str(REALDATA / name), "DIR"))
    assert outs[0] == outs[1]
    assert "OK 3 pairs in DIR, 21 classes: 0 error(s)" in outs[0]
    assert re.search(r"15 │ class15\s+│\s+67,691 │", outs[0])  # person, from the palette indices too
    assert re.search(r"255 │ ignored \(--ignore-index\)\s+│\s+10,369 │", outs[0])


# --- train's check and split ----------------------------------------------------------------


def test_checked_split_stops_on_errors_in_one_line_naming_files(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {f"{i:03d}": _square(1) for i in range(6)})
    (root / "images" / "005.png").write_bytes(b"")
    (root / "annotations" / "002.png").write_bytes(b"junk")
    with pytest.raises(EdgesegError) as e:
        checked_split(root, None, 2, MaskEncoding(), log=lambda s: None)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{root}: 2 data error(s): ")
    assert "images/005.png: empty (0 bytes)" in msg and "annotations/002.png: unreadable mask" in msg
    assert f"`edgeseg data check {root} --classes 2` lists them all" in msg and "--skip-bad" in msg


def test_checked_split_skip_bad_leaves_out_and_lists(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {f"crack_{i}": _square(1) for i in range(8)})
    for i in (5, 6, 7):
        (root / "annotations" / f"crack_{i}.png").rename(root / "annotations" / f"crack_{i}_mask.png")
    lines: list[str] = []
    train, val = checked_split(root, None, 2, MaskEncoding(), val_fraction=0.2, skip_bad=True, log=lines.append)
    assert len(train) + len(val) == 5 and len(val) == 1
    assert lines[:2] == ["left out 3 of 8 images (--skip-bad):",
                         "  images/crack_5.png: image without mask: no mask named annotations/crack_5.png "
                         "(crack_5_mask.png is there: rename it to crack_5.png)."]
    assert lines[4] == ("left out 3 mask(s) without an image (--skip-bad): annotations/crack_5_mask.png, "
                        "annotations/crack_6_mask.png, annotations/crack_7_mask.png")


def test_checked_split_skip_bad_names_the_image_of_a_bad_mask(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {f"{i}": _square(1) for i in range(4)})
    cv2.imwrite(str(root / "annotations" / "2.png"), _square(7))
    lines: list[str] = []
    train, val = checked_split(root, None, 2, MaskEncoding(), val_fraction=0.3, skip_bad=True, log=lines.append)
    assert sorted(i.stem for i, _ in train + val) == ["0", "1", "3"]
    assert lines == ["left out 1 of 4 images (--skip-bad):",
                     "  images/2.png: annotations/2.png: class ids 7 (64 px) are >= --classes 2.",
                     "hint: 1 mask(s) hold ids >= --classes 2; if they are classes, pass --classes "
                     "8 for the whole dataset (the highest id, 7, + 1; it is in annotations/2.png)."]


def test_checked_split_whole_set_error_is_not_skippable(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {f"leaf{i}": _square(255) for i in range(4)})
    with pytest.raises(EdgesegError, match="all 4 masks hold only 0 and 255.*--binary"):
        checked_split(root, None, 2, MaskEncoding(), skip_bad=True, log=lambda s: None)


def test_split_keeps_every_class_in_validation(tmp_path: Path) -> None:
    # 10 masks: class 2 in only two of them, class 3 in only two others.
    masks = {f"{i:02d}": _square(1) for i in range(10)}
    masks["03"], masks["07"], masks["05"], masks["08"] = _square(2), _square(2), _square(3), _square(3)
    root = _dataset(tmp_path / "d", masks)
    classes = check_dataset(root, 4).mask_classes
    for seed in range(6):
        train, val = resolve_split(root, val_fraction=0.3, seed=seed, classes=classes)
        seen_val = set().union(*(classes[m] for _, m in val))
        seen_train = set().union(*(classes[m] for _, m in train))
        assert len(val) == 3 and seen_val == seen_train == {0, 1, 2, 3}, (seed, val)
    assert resolve_split(root, val_fraction=0.2, seed=3, classes=classes) == \
        resolve_split(root, val_fraction=0.2, seed=3, classes=classes)


def test_split_never_takes_the_only_example_and_warns(tmp_path: Path) -> None:
    masks = {f"{i}": _square(1) for i in range(4)}
    masks["2"] = _square(2)  # the one picture of class 2 must stay in training
    root = _dataset(tmp_path / "d", masks)
    lines: list[str] = []
    train, val = checked_split(root, None, 3, MaskEncoding(), val_fraction=0.25, log=lines.append)
    assert root / "annotations" / "2.png" in {m for _, m in train}
    assert lines == ["warning: validation has no example of class 2 (class2): not measured, val mIoU averages "
                     "the other classes (add validation images that show them)."]


def test_split_fills_up_with_pairs_that_take_no_class_from_training(tmp_path: Path) -> None:
    # Real VOC-like: each picture has a class of its own, but two pictures hold only 0 and 1.
    masks = {"a": _square(2), "b": _square(3), **{k: _square(1) for k in "cdef"}}
    root = _dataset(tmp_path / "d", masks)
    classes = check_dataset(root, 4).mask_classes
    for seed in range(8):
        train, val = resolve_split(root, val_fraction=0.5, seed=seed, classes=classes)
        assert len(val) == 3 and {i.stem for i, _ in val} < set("cdef"), seed
        assert {i.stem for i, _ in train} > {"a", "b"}


def test_cli_train_stops_before_tensorflow_on_bad_data(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {f"s{i}": _square(1) for i in range(4)})
    cv2.imwrite(str(root / "annotations" / "s0.png"), np.zeros((12, 16), np.uint8))
    res = runner.invoke(app, ["train", "--data", str(root), "--classes", "2", "--height", "64",
                              "--width", "64", "--epochs", "1", "-o", str(tmp_path / "m.keras")])
    assert res.exit_code == 2
    assert "annotations/s0.png: size 12×16 (H×W) differs from its image's 16×16 (H×W)" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "m.keras").exists()


def test_checked_split_error_groups_files_with_the_same_problem(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {s: _square(1) for s in "abcd"})
    for s in "abc":
        (root / "annotations" / f"{s}.png").rename(root / "annotations" / f"{s}.jpg")
    with pytest.raises(EdgesegError) as e:
        checked_split(root, None, 2, MaskEncoding(), log=lambda s: None)
    assert str(e.value) == (
        f"{root}: 3 data error(s): annotations/a.jpg: JPEG mask: masks must be PNG (JPEG compression "
        "changes class ids at every edge); save it as annotations/a.png (the same in annotations/b.jpg, "
        f"annotations/c.jpg). `edgeseg data check {root} --classes 2` lists them all; fix them or pass "
        "--skip-bad to train on the good pairs.")


def test_masks_all_ignore_are_an_error_not_binary_masks(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "d", {f"{i}": np.full((16, 16), 255, np.uint8) for i in range(3)})
    result = check_dataset(root, 3)
    assert [(e.path, e.message) for e in result.errors] == [(root, (
        "no labelled pixels to score or learn: every pixel of the 3 masks is the ignore index 255; "
        "check the masks (or --ignore-index)."))]


def test_train_names_the_val_folder_its_error_is_in(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "D", {f"{i}": _square(1) for i in range(4)})
    val = _dataset(tmp_path / "ign", {f"{i}": np.full((16, 16), 255, np.uint8) for i in range(2)})
    with pytest.raises(EdgesegError) as e:
        checked_split(data, val, 2, MaskEncoding())
    assert str(e.value).startswith(f"{val}: no labelled pixels")
    cv2.imwrite(str(val / "annotations" / "0.png"), _square(7))
    cv2.imwrite(str(val / "annotations" / "1.png"), _square(1))
    with pytest.raises(EdgesegError) as e:
        checked_split(data, val, 2, MaskEncoding())
    assert str(e.value).startswith(f"{val}: 1 data error(s): annotations/0.png: class ids 7")
    assert f"edgeseg data check {val} --classes 2" in str(e.value)
