"""The one image reader and the one mask reader (numpy + Pillow, no TensorFlow)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.errors import EdgesegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MASK_SUFFIX = ".png"
JPEG_SUFFIXES = (".jpg", ".jpeg")
LABELMAP = "labelmap.txt"
# Labelmap names whose colour marks pixels to leave out of loss and metrics (VOC's border).
IGNORE_NAMES = ("void", "ignore", "ignored", "border")
IGNORE_INDEX = 255  # PASCAL VOC / Cityscapes: pixels left out of training and scoring

Color = tuple[int, int, int]


@dataclass(frozen=True)
class MaskEncoding:
    """How mask pixel values become class ids.

    Attributes:
        ignore_index: Id of pixels left out of the loss, the metrics and the id check
            (255 by the PASCAL VOC / Cityscapes convention); None for no such id.
        binary: Masks hold 0 (background) and 255 (object, as editors paint it): 255
            reads as class 1. Values 1 also read as class 1; any other value is an error.
        colors: ``(name, (r, g, b))`` per class id, in id order, for colour-coded RGB
            masks (CVAT/VOC ``labelmap.txt``); a class named ``void``/``ignore`` maps
            to ``ignore_index``. None: RGB masks are refused unless grey.
        colors_source: The file the colours came from (quoted in messages).
    """

    ignore_index: Optional[int] = IGNORE_INDEX
    binary: bool = False
    colors: Optional[tuple[tuple[str, Color], ...]] = None
    colors_source: Optional[str] = None

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names of the colour map, ignore entries left out ((): no map)."""
        return tuple(n for n, _ in self.colors or () if n.lower() not in IGNORE_NAMES)

    def to_dict(self) -> dict[str, Any]:
        return {"ignore_index": self.ignore_index, "binary": self.binary,
                "colors": [[n, list(c)] for n, c in self.colors] if self.colors else None,
                "colors_source": self.colors_source}


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`read_image_info` did to a file to make it RGB.

    Attributes:
        mode: Pillow mode of the file as stored (``RGB``, ``L``, ``RGBA``, ``I;16``, ``CMYK``, ``P``...).
        rotated: The EXIF Orientation tag turned or flipped the pixels.
    """

    mode: str
    rotated: bool


def _open(path: Path, what: str) -> Any:
    """Open a file with Pillow, or raise an EdgesegError naming it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise EdgesegError(f"{path}: no such {what} file; check the path.") from None
    except OSError as e:
        raise EdgesegError(f"cannot read {path}: {e.strerror or e}; check the file.") from None
    if size == 0:
        raise EdgesegError(f"{path} is empty (0 bytes); replace or delete it.")
    try:
        img = Image.open(path)
        img.load()
    except UnidentifiedImageError:
        raise EdgesegError(f"{path}: unreadable {what} (not an image format Pillow decodes); "
                           "replace or delete it.") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data
        reason = str(e).replace(str(path), path.name)
        raise EdgesegError(f"{path}: unreadable {what} ({reason}); replace or delete it.") from None
    return img


def _upright(img: Any) -> tuple[Any, bool]:
    """Apply the EXIF Orientation tag (as phones and `edgeseg run` show the photo)."""
    from PIL import ImageOps

    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a corrupt EXIF block must not make the pixels unreadable
        return img, False
    if orientation in (None, 1):
        return img, False
    return ImageOps.exif_transpose(img), True


def _sixteen_to_8(arr: np.ndarray) -> np.ndarray:
    return (np.clip(arr, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)


def read_image_info(path: Path) -> tuple[np.ndarray, ImageInfo]:
    """Like :func:`read_image`, also saying what was converted (for ``data check``)."""
    img = _open(path, "image")
    mode = img.mode
    img, rotated = _upright(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: Pillow's convert('RGB') would clip at 255; scale to 8 bits instead.
        grey = _sixteen_to_8(np.asarray(img))
        rgb = np.repeat(grey[..., None], 3, axis=2)
    elif img.mode == "F":
        grey = np.clip(np.asarray(img), 0, 255).astype(np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=2)
    else:
        # Alpha is dropped (not composited), palette / grey / CMYK / YCbCr converted.
        rgb = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(rgb, dtype=np.uint8), ImageInfo(mode, rotated)


def read_image(path: Path) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB, upright.

    The EXIF Orientation tag is applied (``PIL.ImageOps.exif_transpose``); grey,
    grey+alpha, RGBA (alpha dropped), palette, CMYK and 16-bit images (scaled to
    8 bits) are converted to RGB — the same for training, calibration, evaluation
    and ``edgeseg run --source DIR``.

    Raises:
        EdgesegError: The file is missing, empty (0 bytes) or not a readable image.
    """
    return read_image_info(path)[0]


def _color_error(path: Path, arr: np.ndarray, encoding: MaskEncoding) -> EdgesegError:
    colors = np.unique(arr.reshape(-1, 3), axis=0)[:4]
    shown = ", ".join(f"({r},{g},{b})" for r, g, b in colors.tolist())
    return EdgesegError(
        f"{path} is a colour mask (colours {shown}), not class ids; pass --mask-colors "
        f"{LABELMAP} (lines name:r,g,b, one per class id, as CVAT/VOC export it) or save "
        "single-channel PNGs of class ids.")


def _decode_colors(path: Path, arr: np.ndarray, encoding: MaskEncoding) -> np.ndarray:
    """Map each pixel's colour to its class id by the labelmap; unknown colours are an error."""
    assert encoding.colors is not None
    table, next_id = {}, 0
    for name, c in encoding.colors:
        if name.lower() in IGNORE_NAMES:  # ids count the classes only (as class_names does)
            cid = encoding.ignore_index
        else:
            cid, next_id = next_id, next_id + 1
        if cid is not None:
            table[(c[0] << 16) | (c[1] << 8) | c[2]] = cid
    rgb = arr.astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    values, inverse = np.unique(packed, return_inverse=True)
    unknown = [int(v) for v in values if int(v) not in table]
    if unknown:
        n = int(np.isin(packed, unknown).sum())
        shown = ", ".join(f"({v >> 16},{(v >> 8) & 255},{v & 255})" for v in unknown[:4])
        raise EdgesegError(
            f"{path}: {n:,} pixels have colours {shown} that are not in "
            f"{encoding.colors_source or 'the colour map'}; add them (name:r,g,b) or fix the mask.")
    ids = np.array([table[int(v)] for v in values], np.uint8)
    return ids[inverse.reshape(packed.shape)]


def _binary(path: Path, ids: np.ndarray, encoding: MaskEncoding) -> np.ndarray:
    ok = (ids == 0) | (ids == 1) | (ids == 255)
    if encoding.ignore_index not in (None, 0, 1, 255):
        ok |= ids == encoding.ignore_index
    if not ok.all():
        bad = np.unique(ids[~ok])
        shown = ", ".join(str(int(v)) for v in bad[:6])
        raise EdgesegError(
            f"{path}: values {shown} ({int((~ok).sum()):,} pixels) in a --binary mask, which holds "
            "0 (background) and 255 or 1 (object); re-export it without anti-aliasing.")
    out = ids.copy()
    out[ids == 255] = 1
    return out


def read_mask(path: Path, encoding: Optional[MaskEncoding] = None,
              n_classes: Optional[int] = None) -> np.ndarray:
    """Read a mask as H×W uint8 class ids.

    Palette ("P") PNGs give their palette indices (as PASCAL VOC stores class ids);
    grey PNGs and RGB PNGs whose three channels are equal give their values;
    colour-coded RGB masks are decoded with ``encoding.colors``; 16-bit masks keep
    their values when they fit in 8 bits (or are 8-bit values scaled by 257).
    Pixels equal to ``encoding.ignore_index`` are returned as they are.

    Args:
        path: A PNG mask.
        encoding: How values map to ids (default: ``MaskEncoding()``, ignore 255).
        n_classes: When given, ids ``>= n_classes`` other than the ignore index
            are an error (with their pixel counts).

    Raises:
        EdgesegError: The file is missing, empty, unreadable or a JPEG (masks must
            be PNG: JPEG compression invents ids at edges); a colour mask without
            a colour map or with colours not in it; ids above 255 or ``>= n_classes``.
    """
    path = Path(path)
    enc = encoding or MaskEncoding()
    if path.suffix.lower() in JPEG_SUFFIXES:
        raise EdgesegError(_jpeg_message(path))
    img = _open(path, "mask")
    if img.format == "JPEG":
        raise EdgesegError(_jpeg_message(path))
    img, _ = _upright(img)
    mode = img.mode
    if mode in ("P", "PA"):
        ids = np.asarray(img.getchannel(0) if mode == "PA" else img)
    elif mode in ("RGB", "RGBA"):
        arr = np.asarray(img)[..., :3]
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            ids = arr[..., 0]
        elif enc.colors:
            ids = _decode_colors(path, arr, enc)
        else:
            raise _color_error(path, arr, enc)
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        ids = _from_16_bit(path, np.asarray(img))
    elif mode in ("L", "LA", "1"):
        ids = np.asarray(img.getchannel(0) if mode == "LA" else img).astype(np.uint8)
    else:
        raise EdgesegError(f"{path} is a {mode} image; masks are single-channel PNGs of class ids.")
    ids = np.ascontiguousarray(ids, dtype=np.uint8)
    if enc.binary:
        ids = _binary(path, ids, enc)
    if n_classes is not None:
        check_ids(path, ids, n_classes, enc)
    return ids


def _from_16_bit(path: Path, arr: np.ndarray) -> np.ndarray:
    if arr.size == 0 or int(arr.max()) <= 255:
        return arr.astype(np.uint8)
    if not (arr % 257).any():  # an 8-bit mask saved at 16 bits (v * 257), as converters do
        return (arr // 257).astype(np.uint8)
    raise EdgesegError(f"{path} holds class ids above 255 (up to {int(arr.max())}); masks are 8-bit "
                       "class ids (save them as 8-bit PNGs).")


def _jpeg_message(path: Path) -> str:
    return (f"{path} is a JPEG mask; masks must be PNG (JPEG compression changes class ids at "
            f"every edge): save it as {path.with_suffix(MASK_SUFFIX).name}.")


def invalid_ids(ids: np.ndarray, n_classes: int, encoding: MaskEncoding) -> dict[int, int]:
    """Pixel count of each id ``>= n_classes`` that is not the ignore index."""
    counts = np.bincount(ids.ravel(), minlength=256)
    return {v: int(counts[v]) for v in range(n_classes, counts.size)
            if counts[v] and v != encoding.ignore_index}


def check_ids(path: Path, ids: np.ndarray, n_classes: int, encoding: MaskEncoding) -> None:
    """Raise when ``ids`` holds ids ``>= n_classes`` other than the ignore index.

    Raises:
        EdgesegError: Naming the file and each bad id with its pixel count.
    """
    check_ignore_index(encoding, n_classes)
    bad = invalid_ids(ids, n_classes, encoding)
    if bad:
        raise EdgesegError(f"{path}: {invalid_ids_message(bad, n_classes, encoding)}")


def check_ignore_index(encoding: MaskEncoding, n_classes: int) -> None:
    """Raise when the ignore index is a class id or outside 0..255."""
    ii = encoding.ignore_index
    if ii is not None and not n_classes <= ii <= 255:
        raise EdgesegError(f"--ignore-index {ii} must be in {n_classes}..255 (ids below --classes "
                           f"{n_classes} are classes).")


def invalid_ids_message(bad: dict[int, int], n_classes: int, encoding: MaskEncoding,
                        model: bool = False, suggest: bool = True) -> str:
    """``class ids 5 (1,234 px), 7 (3 px) are >= --classes 3 ...`` with the likely fix.

    With ``model`` the limit is what a model predicts (``evaluate`` has no ``--classes``).
    Without ``suggest`` no ``--classes`` value is offered (a dataset check gives one value
    for all files: :func:`edgeseg.data.check.classes_hint`).
    """
    shown = ", ".join(f"{v} ({n:,} px)" for v, n in list(bad.items())[:6])
    more = ", ..." if len(bad) > 6 else ""
    limit = f"{n_classes} (the model predicts {n_classes} classes)" if model else f"--classes {n_classes}"
    hint = ""
    if 255 in bad and encoding.ignore_index != 255:
        hint = "; 255 is usually the 'ignore' label: drop --ignore-index or pass --ignore-index 255"
    elif not model and suggest:
        hint = f"; pass --classes {max(bad) + 1} if they are classes"
    return f"class ids {shown}{more} are >= {limit}{hint}."


def read_labelmap(path: Path) -> tuple[tuple[str, Color], ...]:
    """Parse a CVAT/PASCAL VOC ``labelmap.txt``: ``name:r,g,b:parts:actions`` per class id.

    Lines starting with ``#`` are comments; the order of the lines is the class id.

    Raises:
        EdgesegError: The file is missing or a line has no ``r,g,b`` colour.
    """
    path = Path(path)
    if not path.is_file():
        raise EdgesegError(f"--mask-colors {path}: no such file; give a labelmap.txt "
                           "with lines name:r,g,b.")
    out: list[tuple[str, Color]] = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        m = re.fullmatch(r"\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*", rest.split(":")[0])
        if not name or m is None or any(int(v) > 255 for v in m.groups()):
            raise EdgesegError(f"{path} line {n}: {line!r} is not name:r,g,b (e.g. person:192,128,128::).")
        r, g, b = (int(v) for v in m.groups())
        out.append((name.strip(), (r, g, b)))
    if not out:
        raise EdgesegError(f"{path} holds no name:r,g,b lines.")
    return tuple(out)


def find_labelmap(roots: Sequence[Path]) -> Optional[Path]:
    """The ``labelmap.txt`` of a dataset folder (or its parent, as CVAT exports lay it out)."""
    for root in roots:
        for folder in (Path(root), Path(root).parent):
            if (folder / LABELMAP).is_file():
                return folder / LABELMAP
    return None


def mask_encoding(ignore_index: Optional[int] = 255, binary: bool = False,
                  mask_colors: Optional[Path] = None,
                  roots: Sequence[Path] = ()) -> MaskEncoding:
    """The encoding for the CLI options; a ``labelmap.txt`` in ``roots`` is used when
    ``mask_colors`` is not given.

    Raises:
        EdgesegError: The labelmap is unreadable, or ``--binary`` is combined with colours.
    """
    path = Path(mask_colors) if mask_colors else find_labelmap(roots)
    colors = read_labelmap(path) if path else None
    if binary and mask_colors:
        raise EdgesegError("--binary and --mask-colors exclude each other; binary masks are 0/255.")
    if binary:
        colors, path = None, None
    return MaskEncoding(ignore_index=ignore_index, binary=binary, colors=colors,
                        colors_source=str(path) if path else None)
