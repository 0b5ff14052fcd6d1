"""Train keras_segmentation's own mobilenet_segnet briefly and record its predictions.

Run in a subprocess by tests/test_keras_segmentation.py (keras_segmentation needs
``keras`` to be tf_keras, which must not leak into the test process):

    python keras_segmentation_reference.py KS_SITE OUT STEPS IMAGE [IMAGE ...]

Writes OUT/data (224x224 colour-block scenes, 4 classes), OUT/checkpoints/mobilenet_segnet.{0,1}
(+ _config.json) by its ``model.train``, OUT/weights.h5 by ``save_weights`` (HDF5), and
OUT/reference.npz: ``predict_segmentation`` of each IMAGE (path) as ``mask<i>``.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path


def _tf_keras_as_keras() -> None:
    """keras_segmentation 0.3.0 imports Keras 2 names; tf_keras provides them."""
    import tf_keras

    sys.modules["keras"] = tf_keras
    for sub in ("models", "layers", "utils", "callbacks", "losses", "optimizers"):
        sys.modules[f"keras.{sub}"] = importlib.import_module(f"tf_keras.{sub}")
    sys.modules["keras.backend"] = tf_keras.backend


def _scenes(out: Path, count: int, size: int = 224) -> None:
    """Colour blocks labelled dark / red / green / blue (as tests/conftest.py, at 224 px)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(7)
    (out / "images").mkdir(parents=True)
    (out / "annotations").mkdir()
    for i in range(count):
        small = rng.integers(0, 256, (7, 7, 3)).astype(np.uint8)
        rgb = cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)
        mask = np.where(rgb.max(-1) < 96, 0, 1 + rgb.argmax(-1)).astype(np.uint8)
        noisy = np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(out / "images" / f"{i:03d}.png"), noisy[..., ::-1])
        cv2.imwrite(str(out / "annotations" / f"{i:03d}.png"), mask)


def main(site: str, out_dir: str, steps: str, *images: str) -> None:
    import numpy as np

    sys.path.insert(0, site)
    _tf_keras_as_keras()
    import tf_keras
    from keras_segmentation.models import mobilenet, segnet

    # No ImageNet download offline: the encoder starts from random weights.
    segnet.get_mobilenet_encoder = functools.partial(mobilenet.get_mobilenet_encoder, pretrained=None)
    tf_keras.utils.set_random_seed(0)
    out = Path(out_dir)
    _scenes(out / "data", 16)
    (out / "checkpoints").mkdir()
    model = segnet.mobilenet_segnet(n_classes=4, input_height=224, input_width=224)
    for layer in model.layers:
        # BatchNormalization's moving statistics follow the batches within a few steps
        # (default momentum 0.99 needs hundreds), so the short run gives a model whose
        # masks depend on the image instead of one constant mask.
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = 0.5
    model.train(train_images=str(out / "data/images"), train_annotations=str(out / "data/annotations"),
                checkpoints_path=str(out / "checkpoints/mobilenet_segnet"), epochs=2,
                steps_per_epoch=int(steps), batch_size=4, optimizer_name="adam")
    model.save_weights(str(out / "weights.h5"))
    masks = {f"mask{i}": model.predict_segmentation(inp=p) for i, p in enumerate(images)}
    np.savez(out / "reference.npz", **masks)


if __name__ == "__main__":
    main(*sys.argv[1:])
