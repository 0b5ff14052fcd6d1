"""The one image reader and the one mask reader: every file layout people have."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edgeseg.data.readers import (
    MaskEncoding,
    mask_encoding,
    read_image,
    read_image_info,
    read_labelmap,
    read_mask,
)
from edgeseg.errors import EdgesegError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REALDATA = SHARED / "realdata"

RGB = (40, 160, 230)


def _rgb_image() -> Image.Image:
    return Image.fromarray(np.full((6, 8, 3), RGB, np.uint8))


# --- images ---------------------------------------------------------------------------------


def _save_grey(p: Path) -> tuple[int, int, int]:
    Image.new("L", (8, 6), 77).save(p)
    return (77, 77, 77)


def _save_grey_alpha(p: Path) -> tuple[int, int, int]:
    Image.new("LA", (8, 6), (120, 30)).save(p)
    return (120, 120, 120)


def _save_rgba(p: Path) -> tuple[int, int, int]:
    Image.new("RGBA", (8, 6), (*RGB, 0)).save(p)  # fully transparent: alpha is dropped, not blended
    return RGB


def _save_palette(p: Path) -> tuple[int, int, int]:
    img = Image.new("P", (8, 6), 3)
    img.putpalette([0, 0, 0] * 3 + list(RGB) + [0, 0, 0] * 252)
    img.save(p)
    return RGB


def _save_cmyk_jpeg(p: Path) -> tuple[int, int, int]:
    _rgb_image().convert("CMYK").save(p, quality=100)
    return RGB


def _save_grey_16(p: Path) -> tuple[int, int, int]:
    cv2.imwrite(str(p), np.full((6, 8), 50000, np.uint16))
    return (195, 195, 195)  # 50000 / 256


def _save_rgb_16(p: Path) -> tuple[int, int, int]:
    cv2.imwrite(str(p), (np.full((6, 8, 3), RGB[::-1], np.uint16) * 257))  # BGR on disk
    return RGB


def _save_one_bit(p: Path) -> tuple[int, int, int]:
    Image.new("1", (8, 6), 1).save(p)
    return (255, 255, 255)


@pytest.mark.parametrize("save, name, mode", [
    (_save_grey, "g.png", "L"), (_save_grey_alpha, "la.png", "LA"), (_save_rgba, "a.png", "RGBA"),
    (_save_palette, "p.png", "P"), (_save_cmyk_jpeg, "c.jpg", "CMYK"), (_save_grey_16, "g16.png", "I;16"),
    (_save_rgb_16, "c16.png", "RGB"), (_save_one_bit, "b.png", "1"),
])
def test_read_image_converts_every_mode_to_rgb_uint8(tmp_path: Path, save, name: str, mode: str) -> None:
    expected = save(tmp_path / name)
    rgb, info = read_image_info(tmp_path / name)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - expected).max() <= 2, rgb[0, 0]
    assert info.mode.startswith(mode[:4]) and not info.rotated


# The displayed image for each EXIF orientation, from the stored one (EXIF 2.32, table of tag 0x0112).
EXIF_VIEW = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.rot90(a, k=-1)[::-1, :],
    8: lambda a: np.rot90(a, k=1),
}


def _blocks() -> np.ndarray:
    """2×3 blocks of 8 px, each its own colour: any turn or flip moves them."""
    colours = np.array([[(255, 0, 0), (0, 255, 0), (0, 0, 255)],
                        [(255, 255, 0), (0, 255, 255), (255, 0, 255)]], np.uint8)
    return np.repeat(np.repeat(colours, 8, axis=0), 8, axis=1)


@pytest.mark.parametrize("orientation", sorted(EXIF_VIEW))
def test_read_image_applies_exif_orientation(tmp_path: Path, orientation: int) -> None:
    stored = _blocks()
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"phone{orientation}.jpg"
    img.save(path, quality=98, exif=exif.tobytes())
    rgb, info = read_image_info(path)
    expected = EXIF_VIEW[orientation](stored)
    assert info.rotated and rgb.shape == expected.shape
    centres = rgb[4::8, 4::8].astype(int)  # block centres, away from JPEG's blurred edges
    assert np.abs(centres - expected[4::8, 4::8]).max() < 40, (centres.tolist(), orientation)


def test_read_image_without_orientation_tag_is_as_stored(tmp_path: Path) -> None:
    Image.fromarray(_blocks()).save(tmp_path / "plain.png")
    rgb, info = read_image_info(tmp_path / "plain.png")
    assert not info.rotated and np.array_equal(rgb, _blocks())


@pytest.mark.parametrize("content, words", [
    (b"", "0 bytes"), (b"not an image at all", "unreadable image"), (None, "no such image"),
])
def test_read_image_errors_name_the_file(tmp_path: Path, content, words: str) -> None:
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EdgesegError, match=f"bad.png.*{words}|{words}.*bad.png"):
        read_image(path)


def test_truncated_png_is_one_error_naming_it(tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "t.png")
    (tmp_path / "t.png").write_bytes((tmp_path / "t.png").read_bytes()[:300])
    with pytest.raises(EdgesegError, match=r"t\.png: unreadable image"):
        read_image(tmp_path / "t.png")


# --- masks ----------------------------------------------------------------------------------


IDS = np.array([[0, 0, 1, 1], [2, 2, 255, 0], [1, 0, 2, 2]], np.uint8)


def _palette_png(path: Path, ids: np.ndarray, palette: list[int]) -> None:
    img = Image.fromarray(ids, mode="P")
    img.putpalette(palette + [0] * (768 - len(palette)))
    img.save(path)


VOC_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0, 0, 0] * 252 + [224, 224, 192]
# The same indices shown with other colours, one of them repeated: only indices count.
ODD_PALETTE = [255, 255, 255, 0, 0, 0, 0, 0, 0] + [9, 9, 9] * 253


@pytest.mark.parametrize("palette", [VOC_PALETTE, ODD_PALETTE, [0, 0, 0, 200, 10, 10, 10, 200, 10]])
def test_palette_mask_gives_its_indices(tmp_path: Path, palette: list[int]) -> None:
    _palette_png(tmp_path / "m.png", IDS, palette)
    assert np.array_equal(read_mask(tmp_path / "m.png"), IDS)


def test_palette_mask_with_transparency_gives_its_indices(tmp_path: Path) -> None:
    img = Image.fromarray(IDS, mode="P")
    img.putpalette(VOC_PALETTE)
    img.save(tmp_path / "t.png", transparency=0)
    assert np.array_equal(read_mask(tmp_path / "t.png"), IDS)


def test_grey_and_equal_channel_masks_give_their_values(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "l.png"), IDS)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.dstack([IDS] * 3))
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([IDS] * 3 + [np.full_like(IDS, 255)]))
    Image.fromarray(IDS).convert("LA").save(tmp_path / "la.png")
    for name in ("l.png", "rgb.png", "rgba.png", "la.png"):
        ids = read_mask(tmp_path / name)
        assert ids.dtype == np.uint8 and np.array_equal(ids, IDS), name


def test_one_bit_mask_reads_as_0_and_1(tmp_path: Path) -> None:
    Image.fromarray(IDS == 1).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    assert np.array_equal(read_mask(tmp_path / "b.png"), (IDS == 1).astype(np.uint8))


def test_sixteen_bit_masks(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "small.png"), IDS.astype(np.uint16))
    cv2.imwrite(str(tmp_path / "scaled.png"), IDS.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "big.png"), np.array([[0, 300]], np.uint16))
    assert np.array_equal(read_mask(tmp_path / "small.png"), IDS)
    assert np.array_equal(read_mask(tmp_path / "scaled.png"), IDS)
    with pytest.raises(EdgesegError, match=r"big\.png holds class ids above 255 \(up to 300\)"):
        read_mask(tmp_path / "big.png")


def _colour_mask(path: Path) -> None:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 1] = (255, 0, 0)
    rgb[1, 2] = (0, 0, 255)
    rgb[1, 0] = (224, 224, 192)
    Image.fromarray(rgb).save(path)


def test_colour_mask_without_a_map_is_one_error_naming_file_and_option(tmp_path: Path) -> None:
    _colour_mask(tmp_path / "c.png")
    with pytest.raises(EdgesegError) as e:
        read_mask(tmp_path / "c.png")
    msg = str(e.value)
    assert "c.png" in msg and "--mask-colors" in msg and "(255,0,0)" in msg and "\n" not in msg


def test_colour_mask_decoded_with_a_cvat_labelmap(tmp_path: Path) -> None:
    (tmp_path / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:0,0,255::\nvoid:224,224,192::\n"
        "person:255,0,0::\n")  # void anywhere: it does not take an id
    _colour_mask(tmp_path / "c.png")
    enc = mask_encoding(roots=[tmp_path])  # found in the dataset folder
    assert enc.class_names == ("background", "car", "person") and enc.colors_source.endswith("labelmap.txt")
    assert read_mask(tmp_path / "c.png", enc).tolist() == [[0, 2, 0], [255, 0, 1]]


def test_colour_mask_with_a_colour_missing_from_the_map(tmp_path: Path) -> None:
    _colour_mask(tmp_path / "c.png")
    enc = MaskEncoding(colors=(("background", (0, 0, 0)), ("person", (255, 0, 0))), colors_source="lm.txt")
    with pytest.raises(EdgesegError, match=r"c\.png: 2 pixels have colours .*\(0,0,255\).* not in lm\.txt"):
        read_mask(tmp_path / "c.png", enc)


def test_labelmap_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("background:0,0,0::\ncar:red::\n")
    with pytest.raises(EdgesegError, match="line 2"):
        read_labelmap(tmp_path / "bad.txt")
    with pytest.raises(EdgesegError, match="no such file"):
        read_labelmap(tmp_path / "none.txt")


@pytest.mark.parametrize("values, expected", [
    ([0, 255], [0, 1]), ([0, 1, 255], [0, 1, 1]), ([0, 1], [0, 1]),
])
def test_binary_masks(tmp_path: Path, values: list[int], expected: list[int]) -> None:
    cv2.imwrite(str(tmp_path / "b.png"), np.array([values], np.uint8))
    assert read_mask(tmp_path / "b.png", MaskEncoding(binary=True)).tolist() == [expected]
    assert read_mask(tmp_path / "b.png").tolist() == [values]  # without --binary: as stored


def test_binary_mask_with_antialiased_edge_is_an_error(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "soft.png"), np.array([[0, 128, 255, 128]], np.uint8))
    with pytest.raises(EdgesegError, match=r"soft\.png: values 128 \(2 pixels\) in a --binary mask"):
        read_mask(tmp_path / "soft.png", MaskEncoding(binary=True))


@pytest.mark.parametrize("name", ["m.jpg", "m.jpeg", "disguised.png"])
def test_jpeg_masks_are_refused(tmp_path: Path, name: str) -> None:
    Image.fromarray(IDS).save(tmp_path / name, format="JPEG")
    with pytest.raises(EdgesegError, match=f"{name} is a JPEG mask; masks must be PNG"):
        read_mask(tmp_path / name)


def test_ids_checked_against_classes_with_counts_and_ignore_index(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "m.png"), IDS)
    assert np.array_equal(read_mask(tmp_path / "m.png", n_classes=3), IDS)  # 255 is ignored
    with pytest.raises(EdgesegError, match=r"m\.png: class ids 2 \(4 px\) are >= --classes 2"):
        read_mask(tmp_path / "m.png", n_classes=2)
    with pytest.raises(EdgesegError, match=r"class ids 255 \(1 px\) are >= --classes 3; 255 is usually"):
        read_mask(tmp_path / "m.png", MaskEncoding(ignore_index=254), n_classes=3)
    with pytest.raises(EdgesegError, match="--ignore-index 1 must be in 3..255"):
        read_mask(tmp_path / "m.png", MaskEncoding(ignore_index=1), n_classes=3)


@pytest.mark.skipif(not (REALDATA / "voc_labelme").is_dir(), reason="needs ../shared/realdata (CI has it)")
def test_voc_grey_and_palette_masks_read_identically() -> None:
    grey = sorted((REALDATA / "voc_labelme" / "annotations").glob("*.png"))
    assert len(grey) == 3
    void = 0
    for g in grey:
        p = REALDATA / "voc_labelme_palette" / "annotations" / g.name
        assert Image.open(p).mode == "P" and Image.open(g).mode == "L"
        a, b = read_mask(g, n_classes=21), read_mask(p, n_classes=21)
        assert a.dtype == b.dtype == np.uint8 and np.array_equal(a, b)
        assert set(np.unique(a)) - {255} <= set(range(21))
        void += int((a == 255).sum())
    assert void == 10_369  # VOC's void border, kept as the ignore index
    # The person (15) of 2011_000003 is there, read from the palette indices.
    ids = read_mask(REALDATA / "voc_labelme_palette" / "annotations" / "2011_000003.png")
    assert set(np.unique(ids).tolist()) == {0, 5, 15, 255}


def test_readers_import_no_tensorflow_and_no_other_edgeseg_module() -> None:
    """edgeseg.runtime reads image folders with this module: it must stay numpy + Pillow."""
    import ast

    import edgeseg.data.readers as readers

    tree = ast.parse(Path(readers.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {n.split(".")[0] for n in names} <= {"__future__", "re", "collections", "dataclasses",
                                                "pathlib", "typing", "numpy", "PIL", "edgeseg"}
    assert {n for n in names if n.startswith("edgeseg")} == {"edgeseg.errors"}
    package = ast.parse((Path(readers.__file__).parent / "__init__.py").read_text())
    assert not [n for n in ast.walk(package) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_ids_over_classes_name_the_classes_that_fit() -> None:
    from edgeseg.data.readers import MaskEncoding, invalid_ids_message

    msg = invalid_ids_message({2: 10, 4: 3}, 2, MaskEncoding())
    assert msg == "class ids 2 (10 px), 4 (3 px) are >= --classes 2; pass --classes 5 if they are classes."
    msg = invalid_ids_message({3: 10}, 3, MaskEncoding(), model=True)
    assert msg == "class ids 3 (10 px) are >= 3 (the model predicts 3 classes)."
    assert "--classes" not in msg
