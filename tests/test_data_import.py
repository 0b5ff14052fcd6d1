"""``edgeseg data import voc|coco`` on small generated exports."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.data.check import check_dataset
from edgeseg.data.importers import VOC_CLASSES, import_coco, import_voc
from edgeseg.data.readers import read_mask
from edgeseg.errors import EdgesegError

runner = CliRunner()
VOC_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0, 0, 0] * 251 + [224, 224, 192]


def _voc(root: Path, stems: dict[str, int], splits: dict[str, list[str]] | None) -> dict[str, np.ndarray]:
    """VOCdevkit/VOC2012 with palette masks: class ``stems[s]`` in a square, a 255 border round it."""
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    masks = {}
    for stem, cls in stems.items():
        ids = np.zeros((20, 30), np.uint8)
        ids[3:17, 5:25] = 255
        ids[5:15, 7:23] = cls
        cv2.imwrite(str(voc / "JPEGImages" / f"{stem}.jpg"), np.full((20, 30, 3), 100, np.uint8))
        img = Image.fromarray(ids, mode="P")
        img.putpalette(VOC_PALETTE)
        img.save(voc / "SegmentationClass" / f"{stem}.png")
        masks[stem] = ids
    for name, listed in (splits or {}).items():
        (voc / "ImageSets" / "Segmentation" / f"{name}.txt").write_text("\n".join(listed) + "\n")
    return masks


def test_import_voc_with_imagesets(tmp_path: Path) -> None:
    masks = _voc(tmp_path, {"2007_000032": 1, "2007_000039": 2, "2007_000063": 3},
                 {"train": ["2007_000032", "2007_000039"], "val": ["2007_000063", "2007_009999"],
                  "trainval": ["2007_000032", "2007_000039", "2007_000063"]})
    out = tmp_path / "ours"
    report = import_voc(tmp_path / "VOCdevkit", out)
    assert report.splits == {"train": 2, "val": 1}
    assert report.left_out == (("2007_009999", "no JPEGImages/2007_009999.jpg"),)
    assert (out / "labels.txt").read_text().split() == list(VOC_CLASSES)
    assert sorted(p.name for p in (out / "val" / "images").iterdir()) == ["2007_000063.jpg"]
    written = out / "train" / "annotations" / "2007_000039.png"
    assert Image.open(written).mode == "L"  # class ids, readable by any tool
    assert np.array_equal(np.asarray(Image.open(written)), masks["2007_000039"])
    assert (out / "train" / "images" / "2007_000032.jpg").read_bytes() == \
        (tmp_path / "VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg").read_bytes()
    result = check_dataset(out, 21)
    assert result.ok and result.n_pairs == 3 and result.ignored_pixels == 3 * (14 * 20 - 10 * 16)
    assert result.images_per_class[:4] == (3, 1, 1, 1)


def test_import_voc_without_imagesets_is_flat_and_refuses_existing_out(tmp_path: Path) -> None:
    _voc(tmp_path, {"a": 1, "b": 2}, None)
    report = import_voc(tmp_path / "VOCdevkit" / "VOC2012", tmp_path / "out")
    assert report.splits == {"": 2} and (tmp_path / "out" / "images" / "a.jpg").is_file()
    with pytest.raises(EdgesegError, match="already exists"):
        import_voc(tmp_path / "VOCdevkit", tmp_path / "out")
    with pytest.raises(EdgesegError, match="not a PASCAL VOC folder"):
        import_voc(tmp_path / "out", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_import_voc_cvat_export_with_labelmap_and_colour_masks(tmp_path: Path) -> None:
    voc = tmp_path / "cvat"
    for sub in ("JPEGImages", "SegmentationClass"):
        (voc / sub).mkdir(parents=True)
    (voc / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                      "weed:250,50,83::\ncrop:51,221,255::\n")
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[2:5, 2:5] = (250, 50, 83)
    rgb[6:9, 6:11] = (51, 221, 255)
    Image.fromarray(rgb).save(voc / "SegmentationClass" / "f1.png")
    cv2.imwrite(str(voc / "JPEGImages" / "f1.jpg"), np.zeros((10, 12, 3), np.uint8))
    report = import_voc(voc, tmp_path / "out")
    assert report.labels == ("background", "weed", "crop")
    ids = read_mask(tmp_path / "out" / "annotations" / "f1.png")
    assert ids[3, 3] == 1 and ids[7, 8] == 2 and (ids == 0).sum() == 120 - 9 - 15


def _coco(root: Path) -> Path:
    """Three images: a polygon cat and an RLE dog (overlapping), a crowd, one without annotations."""
    from pycocotools import mask as mask_utils

    (root / "imgs").mkdir(parents=True)
    for name in ("a.jpg", "b.png", "c.jpg"):
        cv2.imwrite(str(root / "imgs" / name), np.full((40, 50, 3), 80, np.uint8))
    dog = np.zeros((40, 50), np.uint8, order="F")
    dog[10:20, 10:30] = 1
    rle = mask_utils.encode(dog)
    rle["counts"] = rle["counts"].decode()
    crowd = np.zeros((40, 50), np.uint8, order="F")
    crowd[30:38, 0:50] = 1
    crle = mask_utils.encode(crowd)
    crle["counts"] = crle["counts"].decode()
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 50},
                   {"id": 2, "file_name": "b.png", "height": 40, "width": 50},
                   {"id": 3, "file_name": "c.jpg", "height": 40, "width": 50},
                   {"id": 4, "file_name": "missing.jpg", "height": 40, "width": 50}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}],
        "annotations": [
            # a small cat polygon (x, y pairs) on top of the larger dog
            {"id": 1, "image_id": 1, "category_id": 17, "iscrowd": 0, "area": 36.0,
             "segmentation": [[12, 12, 18, 12, 18, 18, 12, 18]], "bbox": [12, 12, 6, 6]},
            {"id": 2, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 200.0,
             "segmentation": rle, "bbox": [10, 10, 20, 10]},
            {"id": 3, "image_id": 2, "category_id": 17, "iscrowd": 1, "area": 400.0,
             "segmentation": crle, "bbox": [0, 30, 50, 8]},
        ],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def test_import_coco_polygons_rle_crowd(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    report = import_coco(ann, tmp_path / "imgs", tmp_path / "out")
    assert report.labels == ("background", "cat", "dog")  # categories in id order: 17, 18
    assert report.left_out == (("missing.jpg", f"not in {tmp_path / 'imgs'}"),)
    assert report.notes == ("1 image(s) without annotations written as all background",
                            "1 image(s) with crowd regions, written as ignore index 255")
    a = read_mask(tmp_path / "out" / "annotations" / "a.png")
    assert a[15, 25] == 2 and a[14, 14] == 1 and a[5, 5] == 0  # dog, cat on top, background
    assert (a == 2).sum() == 200 - (a == 1).sum() and 25 <= (a == 1).sum() <= 49
    b = read_mask(tmp_path / "out" / "annotations" / "b.png")
    assert (b == 255).sum() == 8 * 50 and set(np.unique(b)) == {0, 255}
    assert not read_mask(tmp_path / "out" / "annotations" / "c.png").any()
    assert check_dataset(tmp_path / "out", 3).ok


def test_cli_import_coco_and_voc(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    res = runner.invoke(app, ["data", "import", "coco", str(ann), "--images", str(tmp_path / "imgs"),
                              "-o", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "Wrote 3 pairs" in res.output and "left out 1 image(s):" in res.output
    res = runner.invoke(app, ["data", "import", "coco", str(tmp_path / "none.json"), "--images",
                              str(tmp_path / "imgs"), "-o", str(tmp_path / "d")])
    assert res.exit_code == 2 and "no such COCO annotation file" in res.output
    _voc(tmp_path / "v", {"x": 4}, None)
    res = runner.invoke(app, ["data", "import", "voc", str(tmp_path / "v"), "-o", str(tmp_path / "vo")])
    assert res.exit_code == 0 and "Wrote 1 pairs" in res.output and "21 classes" in res.output


def test_import_coco_with_no_pairs_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    res = runner.invoke(app, ["data", "import", "coco", str(ann), "--images", str(tmp_path / "nonexist"),
                              "-o", str(tmp_path / "co3")])
    assert res.exit_code == 2, res.output
    assert f"{ann}: no image/mask pairs to import (4 left out, e.g. a.jpg: not in" in res.output
    assert not (tmp_path / "co3").exists() and not list(tmp_path.glob(".co3.*"))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}]}))
    with pytest.raises(EdgesegError, match=r"no image/mask pairs to import \(no images listed\)"):
        import_coco(empty, tmp_path / "imgs", tmp_path / "co4")
    assert not (tmp_path / "co4").exists()


def test_import_coco_unknown_category_names_the_id_and_file(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    doc = json.loads(ann.read_text())
    doc["annotations"][0]["category_id"] = 7
    ann.write_text(json.dumps(doc))
    with pytest.raises(EdgesegError) as e:
        import_coco(ann, tmp_path / "imgs", tmp_path / "out")
    assert str(e.value) == (f"{ann}: annotation 1 of a.jpg has category_id 7, which 'categories' does "
                            "not list; add it or fix the id.")
    assert not (tmp_path / "out").exists()


def test_import_voc_colour_mask_without_labelmap_gives_a_fix_that_exists(tmp_path: Path) -> None:
    voc = tmp_path / "voc"
    for sub in ("JPEGImages", "SegmentationClass"):
        (voc / sub).mkdir(parents=True)
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[2:5, 2:5] = (128, 0, 0)
    Image.fromarray(rgb).save(voc / "SegmentationClass" / "f1.png")
    cv2.imwrite(str(voc / "JPEGImages" / "f1.jpg"), np.zeros((10, 12, 3), np.uint8))
    res = runner.invoke(app, ["data", "import", "voc", str(voc), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "--mask-colors" not in res.output
    assert "put a labelmap.txt (lines name:r,g,b" in " ".join(res.output.split())
    assert not (tmp_path / "out").exists()


def test_import_coco_writes_instances_with_crowd_as_ignore(tmp_path: Path) -> None:
    from edgeseg.data.instances import check_instances, read_instances

    ann = _coco(tmp_path)
    import_coco(ann, tmp_path / "imgs", tmp_path / "out")
    a = read_instances(tmp_path / "out" / "instances" / "a.png")
    # The dog (class 2, object 1) with the cat (class 1, object 1) on top of it.
    assert a[15, 25] == 2001 and a[14, 14] == 1001 and a[5, 5] == 0
    b = read_instances(tmp_path / "out" / "instances" / "b.png")
    assert set(np.unique(b)) == {0, 255}  # the crowd: ignore, no object
    found = check_instances((tmp_path / "out",), read_mask)
    assert found is not None and not found.problems and found.instances == {1: 1, 2: 1}


def test_import_coco_with_too_many_categories_says_it_wrote_no_instances(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    doc = json.loads(ann.read_text())
    doc["categories"] += [{"id": 100 + i, "name": f"c{i}"} for i in range(70)]
    ann.write_text(json.dumps(doc))
    report = import_coco(ann, tmp_path / "imgs", tmp_path / "out")
    assert not (tmp_path / "out" / "instances").exists()
    assert any("no instances/ written: 72 categories" in n for n in report.notes)


def test_import_cityscapes_maps_train_ids_and_renumbers_objects(tmp_path: Path) -> None:
    from edgeseg.data.instances import check_instances, read_instances

    root = tmp_path / "cs"
    (root / "leftImg8bit" / "val" / "ulm").mkdir(parents=True)
    (root / "gtFine" / "val" / "ulm").mkdir(parents=True)
    label = np.full((20, 30), 7, np.uint8)  # road
    label[0:5] = 0  # unlabeled -> ignore
    label[5:15, 0:10] = 26  # two cars side by side
    label[5:15, 10:20] = 26
    label[5:15, 20:25] = 24  # a person
    inst = label.astype(np.uint16)
    inst[5:15, 0:10], inst[5:15, 10:20], inst[5:15, 20:25] = 26000, 26001, 24000
    cv2.imwrite(str(root / "leftImg8bit" / "val" / "ulm" / "ulm_000_000019_leftImg8bit.png"),
                np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(root / "gtFine" / "val" / "ulm" / "ulm_000_000019_gtFine_labelIds.png"), label)
    cv2.imwrite(str(root / "gtFine" / "val" / "ulm" / "ulm_000_000019_gtFine_instanceIds.png"), inst)
    res = runner.invoke(app, ["data", "import", "cityscapes", str(root), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out" / "val"
    classes = read_mask(out / "annotations" / "ulm_000_000019.png")
    assert classes[0, 0] == 255 and classes[18, 0] == 0 and classes[8, 3] == 13 and classes[8, 22] == 11
    got = read_instances(out / "instances" / "ulm_000_000019.png")
    assert got[8, 3] == 13001 and got[8, 13] == 13002 and got[8, 22] == 11001 and got[18, 0] == 0
    found = check_instances((out,), read_mask)
    assert found is not None and not found.problems and found.instances == {11: 1, 13: 2}
