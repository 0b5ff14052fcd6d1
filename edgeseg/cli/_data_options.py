"""The mask options shared by ``data check``, ``train``, ``evaluate`` and ``compare``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from edgeseg.data.readers import MaskEncoding

IgnoreIndex = Annotated[int, typer.Option(
    "--ignore-index", min=0, max=255,
    help="Mask id left out of the loss, the metrics and the id check (VOC/Cityscapes: 255).")]
Binary = Annotated[bool, typer.Option(
    "--binary", help="Masks are 0/255 black-and-white: read 255 as class 1 (not as 'ignore').")]
MaskColors = Annotated[Optional[Path], typer.Option(
    "--mask-colors", help="labelmap.txt (name:r,g,b per class id, as CVAT/VOC export it) to decode "
                          "colour-coded RGB masks (default: the dataset's own labelmap.txt, if any).",
    show_default=False)]
SkipBad = Annotated[bool, typer.Option(
    "--skip-bad", help="Leave out (and list) the pairs with errors instead of stopping.")]


def encoding(ignore_index: int = 255, binary: bool = False, mask_colors: Optional[Path] = None,
             *roots: Path) -> MaskEncoding:
    """The MaskEncoding of the options (a labelmap.txt in ``roots`` counts as --mask-colors)."""
    from edgeseg.data.readers import mask_encoding

    return mask_encoding(ignore_index, binary, mask_colors, [Path(r) for r in roots])


def binary_classes(binary: bool, classes: Optional[int]) -> Optional[int]:
    """``--classes`` as ``--binary`` implies it: 0/255 masks are 2 classes.

    Raises:
        EdgesegError: ``--binary`` with ``--classes`` other than 2.
    """
    if not binary:
        return classes
    if classes is not None and classes != 2:
        from edgeseg.errors import EdgesegError

        raise EdgesegError(f"--binary reads 0/255 masks as 2 classes (background and object); "
                           f"--classes {classes} contradicts it: leave --classes out (or leave "
                           "--binary out if the masks hold class ids).")
    return 2
