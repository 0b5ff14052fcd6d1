"""Data layer: synthetic scenes, pairing and splits, readers, dataset checks, ``edgeseg data``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.data.check import check_dataset
from edgeseg.data.dataset import list_images, list_pairs, resolve_split
from edgeseg.data.readers import read_image, read_mask
from edgeseg.data.synth import class_names, synthesize
from edgeseg.errors import EdgesegError

runner = CliRunner()


def _tree(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _pair(root: Path, stem: str, size=(8, 10), ids=(0, 1), img_ext=".png") -> None:
    """A small image/mask pair: the mask holds ``ids`` in stripes."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    h, w = size
    cv2.imwrite(str(root / "images" / f"{stem}{img_ext}"), np.full((h, w, 3), 90, np.uint8))
    mask = np.zeros((h, w), np.uint8)
    for k, v in enumerate(ids):
        mask[k * h // len(ids):, :] = v
    cv2.imwrite(str(root / "annotations" / f"{stem}.png"), mask)


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    for stem in ("a", "b", "c"):
        _pair(root, stem, ids=(0, 1, 2))
    return root


# --- synthetic data -------------------------------------------------------------------------


def test_synth_is_deterministic_per_seed(tmp_path: Path) -> None:
    kw = dict(n_classes=4, count=5, height=64, width=64)
    synthesize(tmp_path / "a", seed=3, **kw)
    synthesize(tmp_path / "b", seed=3, **kw)
    synthesize(tmp_path / "c", seed=4, **kw)
    a, b, c = (_tree(tmp_path / x) for x in "abc")
    assert len(a) == 2 * 5 + 1 and a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.startswith("images/"))


def test_synth_every_class_appears_and_masks_match_images(tmp_path: Path) -> None:
    report = synthesize(tmp_path, n_classes=8, count=7, height=64, width=96, seed=1)
    seen: set[int] = set()
    for img, mask in list_pairs(tmp_path):
        rgb, ids = read_image(img), read_mask(mask)
        assert rgb.shape == (64, 96, 3) and ids.shape == (64, 96)
        assert rgb.std() > 10  # a real scene, not a flat fill
        seen |= set(np.unique(ids).tolist())
    assert seen == set(range(8))
    assert (tmp_path / "labels.txt").read_text().split() == list(class_names(8))
    assert len(report.class_share) == 8 and abs(sum(report.class_share) - 1) < 1e-6
    assert 0.3 < report.class_share[0] < 0.95  # objects are neither tiny nor everywhere


def test_synth_video_has_the_asked_frame_count(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    report = synthesize(tmp_path / "ds", n_classes=3, count=1, height=64, width=96,
                        video=clip, frames=9)
    assert report.video == clip and report.frames == 9
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 9 and frames[0].shape == (64, 96, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # things move


def test_synth_progress_and_refusals(tmp_path: Path) -> None:
    seen: list[int] = []
    synthesize(tmp_path / "ds", n_classes=2, count=3, height=32, width=32, progress=seen.append)
    assert seen == [1, 2, 3]
    (tmp_path / "ds" / "images" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(EdgesegError, match="mine.jpg"):
        synthesize(tmp_path / "ds", n_classes=2, count=3, height=32, width=32)
    with pytest.raises(EdgesegError, match="2 to 8 classes"):
        synthesize(tmp_path / "other", n_classes=9, count=1)


# --- pairs, splits, readers -----------------------------------------------------------------


def test_list_pairs_sorted_and_unpaired_left_out(tmp_path: Path) -> None:
    for stem in ("b", "a", "c"):
        _pair(tmp_path, stem, img_ext=".jpg" if stem == "b" else ".png")
    (tmp_path / "annotations" / "c.png").unlink()
    pairs = list_pairs(tmp_path)
    assert [(i.name, m.name) for i, m in pairs] == [("a.png", "a.png"), ("b.jpg", "b.png")]


def test_list_pairs_errors_name_the_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(EdgesegError, match="annotations/"):
        list_pairs(tmp_path)
    (tmp_path / "annotations").mkdir()
    with pytest.raises(EdgesegError, match=f"no image/mask pairs in {tmp_path}"):
        list_pairs(tmp_path)
    with pytest.raises(EdgesegError, match="does not exist"):
        list_pairs(tmp_path / "nope")


def test_resolve_split_prefers_val_folder_then_train_val(tmp_path: Path) -> None:
    for stem in "abcd":
        _pair(tmp_path / "main", stem)
    _pair(tmp_path / "other", "z")
    train, val = resolve_split(tmp_path / "main", tmp_path / "other")
    assert len(train) == 4 and [p[0].stem for p in val] == ["z"]
    for stem in "abc":
        _pair(tmp_path / "split" / "train", stem)
    _pair(tmp_path / "split" / "val", "v")
    train, val = resolve_split(tmp_path / "split")
    assert [p[0].stem for p in train] == ["a", "b", "c"] and [p[0].stem for p in val] == ["v"]


def test_resolve_split_random_is_seeded_and_keeps_one_val(tmp_path: Path) -> None:
    for i in range(20):
        _pair(tmp_path, f"{i:02d}")
    t1, v1 = resolve_split(tmp_path, val_fraction=0.25, seed=5)
    t2, v2 = resolve_split(tmp_path, val_fraction=0.25, seed=5)
    _, v3 = resolve_split(tmp_path, val_fraction=0.25, seed=6)
    assert (t1, v1) == (t2, v2) and v1 != v3
    assert len(v1) == 5 and len(t1) == 15 and not set(t1) & set(v1)
    small = tmp_path / "small"
    for stem in "ab":
        _pair(small, stem)
    train, val = resolve_split(small, val_fraction=0.1)
    assert len(train) == 1 and len(val) == 1
    assert resolve_split(small, val_fraction=0)[1] == []


def test_read_image_is_rgb_and_converts_grey_and_rgba(tmp_path: Path) -> None:
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    rgb = read_image(tmp_path / "blue.png")
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8 and rgb[0, 0].tolist() == [0, 0, 200]
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((4, 5), 77, np.uint8))
    assert read_image(tmp_path / "grey.png")[0, 0].tolist() == [77, 77, 77]
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([bgr, np.full((4, 5), 9, np.uint8)]))
    assert read_image(tmp_path / "rgba.png")[0, 0].tolist() == [0, 0, 200]


def test_readers_name_broken_files(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    for reader in (read_image, read_mask):
        with pytest.raises(EdgesegError, match="empty.png.*0 bytes"):
            reader(tmp_path / "empty.png")
        with pytest.raises(EdgesegError, match="junk.png"):
            reader(tmp_path / "junk.png")
        with pytest.raises(EdgesegError, match="missing.png"):
            reader(tmp_path / "missing.png")


def test_list_images_flat_or_dataset(tmp_path: Path, good: Path) -> None:
    assert [p.name for p in list_images(good)] == ["a.png", "b.png", "c.png"]
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("z.JPG", "y.jpeg", "notes.txt"):
        (flat / name).write_bytes(b"x")
    assert [p.name for p in list_images(flat)] == ["y.jpeg", "z.JPG"]
    (tmp_path / "none").mkdir()
    with pytest.raises(EdgesegError, match=r"no images \(.*\.webp.*\) in"):
        list_images(tmp_path / "none")


# --- checks ---------------------------------------------------------------------------------


def test_check_clean_dataset(good: Path) -> None:
    result = check_dataset(good, 3)
    assert result.ok and not result.issues and result.n_pairs == 3
    assert result.images_per_class == (3, 3, 3)
    assert abs(sum(result.class_share) - 1) < 1e-9 and min(result.class_share) > 0.2


def _break_missing_mask(root: Path) -> str:
    (root / "annotations" / "b.png").unlink()
    return "images/b.png"


def _break_extra_mask(root: Path) -> str:
    cv2.imwrite(str(root / "annotations" / "x.png"), np.zeros((8, 10), np.uint8))
    return "annotations/x.png"


def _break_size(root: Path) -> str:
    cv2.imwrite(str(root / "annotations" / "b.png"), np.zeros((8, 12), np.uint8))
    return "annotations/b.png"


def _break_class_id(root: Path) -> str:
    _pair(root, "b", ids=(0, 5))
    return "annotations/b.png"


def _break_empty(root: Path) -> str:
    (root / "images" / "c.png").write_bytes(b"")
    return "images/c.png"


def _break_unreadable(root: Path) -> str:
    (root / "annotations" / "a.png").write_bytes(b"garbage")
    return "annotations/a.png"


@pytest.mark.parametrize("breaker, words", [
    (_break_missing_mask, "without mask"),
    (_break_extra_mask, "without image"),
    (_break_size, "differs"),
    (_break_class_id, ">= --classes 3"),
    (_break_empty, "0 bytes"),
    (_break_unreadable, "unreadable"),
])
def test_check_finds_each_error(good: Path, breaker, words: str) -> None:
    rel = breaker(good)
    result = check_dataset(good, 3)
    assert not result.ok
    hits = [i for i in result.errors if i.path == good / rel]
    assert hits and words in hits[0].message, result.issues


def test_check_counts_grey_image_conversion_and_passes(good: Path) -> None:
    cv2.imwrite(str(good / "images" / "a.png"), np.full((8, 10), 50, np.uint8))
    result = check_dataset(good, 3)
    assert result.ok and not result.warnings
    assert result.converted == {"grey": 1}


def test_check_train_val_layout_and_missing_class(tmp_path: Path) -> None:
    _pair(tmp_path / "train", "a", ids=(0, 1))
    _pair(tmp_path / "val", "b", ids=(0, 1))
    result = check_dataset(tmp_path, 3)
    assert result.ok and result.n_pairs == 2
    assert result.folders == (tmp_path / "train", tmp_path / "val")
    assert any("class 2 never appears" in i.message for i in result.warnings)


# --- CLI ------------------------------------------------------------------------------------


def test_cli_synth_then_check(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    res = runner.invoke(app, ["data", "synth", "--out", str(out), "--classes", "3", "--count", "4",
                              "--height", "32", "--width", "48", "--video", str(tmp_path / "c.mp4"),
                              "--frames", "3"])
    assert res.exit_code == 0, res.output
    assert "Wrote 4 image/mask pairs" in res.output and "3-frame clip" in res.output
    assert len(list((out / "images").iterdir())) == 4
    res = runner.invoke(app, ["data", "check", str(out)])  # --classes from labels.txt
    assert res.exit_code == 0, res.output
    assert "OK 4 pairs" in res.output and "background" in res.output


def test_cli_check_exit_codes(good: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["data", "check", str(good), "--classes", "3"])
    assert res.exit_code == 0 and "0 error(s)" in res.output
    _break_size(good)
    res = runner.invoke(app, ["data", "check", str(good), "--classes", "3"])
    assert res.exit_code == 1 and "annotations/b.png" in res.output and "FAILED" in res.output
    res = runner.invoke(app, ["data", "check", str(good)])
    assert res.exit_code == 2 and "--classes" in res.output
    res = runner.invoke(app, ["data", "check", str(tmp_path / "nope"), "--classes", "3"])
    assert res.exit_code == 2 and "error:" in res.output and "does not exist" in res.output
