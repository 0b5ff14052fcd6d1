"""``edgeseg import``: models trained elsewhere, rebuilt as edgeseg models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli import _model_options as mo
from edgeseg.cli._common import console, handle_errors

import_app = typer.Typer(help="Bring a model trained elsewhere into edgeseg.", no_args_is_help=True)


@import_app.command("keras-segmentation")
@handle_errors
def keras_segmentation(
    source: Annotated[Path, typer.Argument(
        help="checkpoints/NAME (newest NAME.N is taken), one NAME.N checkpoint, or an .h5 file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .keras model to write.")],
    config: Annotated[Optional[Path], typer.Option(
        help="keras_segmentation's NAME_config.json (default: beside the checkpoint).")] = None,
    labels: mo.Labels = None,
) -> None:
    """Import a keras_segmentation mobilenet_segnet checkpoint (TF or HDF5) as a .keras model."""
    from edgeseg.model.keras_segmentation import import_keras_segmentation

    import_keras_segmentation(source, output, mo.parse_labels(labels), config,
                              log=lambda s: console.print(s, markup=False))
    console.print("preprocessing: keras_segmentation's sub_mean (RGB mean 123.68, 116.779, 103.939; "
                  "std 1; bilinear resize), recorded in the sidecar", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
