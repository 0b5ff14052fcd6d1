"""Build mobilenet_segnet models: the trainable one and batch-1 deployment copies."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeseg.config import ModelConfig

# Heads of a deployment copy: all 4-D, as MediaPipe and the Task Library want.
DEPLOY_HEADS = ("softmax", "logits", "argmax")


def _argmax_layer() -> Any:
    """A layer computing tf.argmax -> uint8 [.., 1]; keras.ops.argmax lowers to a
    BitwiseAnd the TFLite converter rejects. Only deployment copies use it."""
    import keras
    import tensorflow as tf

    class ArgmaxMask(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return tf.expand_dims(tf.cast(tf.argmax(x, axis=-1), tf.uint8), -1)

        def compute_output_shape(self, shape: Any) -> Any:
            return (*shape[:-1], 1)

    return ArgmaxMask(name="seg_argmax", dtype="float32")


def _softmax(pair_logistic: bool = False) -> Any:
    """The class softmax; with ``pair_logistic`` its two-class form, the logistic of the
    logits' difference (see :func:`deployment_copy`)."""
    from keras import layers

    if pair_logistic:
        return layers.Activation("sigmoid", name="seg_pair_logistic", dtype="float32")
    return layers.Softmax(name="seg_softmax", dtype="float32")


def _head(logits: Any, cfg: ModelConfig, head: str, pair_logistic: bool = False) -> Any:
    from keras import layers

    oh, ow = cfg.output_size
    if head == "flat":
        x = layers.Reshape((oh * ow, cfg.n_classes), name="seg_reshape")(logits)
        return _softmax()(x)
    if head in ("spatial", "softmax"):
        return _softmax(pair_logistic)(logits)
    if head in ("logits", "upsampled"):  # upsampled: the softmax ran at the decoder's resolution
        return logits
    if head == "argmax":
        # An in-graph uint8 class mask: the cheapest output to ship off the device.
        return _argmax_layer()(logits)
    raise ValueError(f"unknown head {head!r}")


def build_model(cfg: ModelConfig, batch_size: int | None = None, head: str | None = None,
                upsampling: str | bool = "tile", edgetpu: bool = False,
                pair_logistic: bool = False) -> Any:
    """Build mobilenet_segnet for ``cfg``.

    Args:
        cfg: The model configuration.
        batch_size: Fixed batch size; ``None`` for training, 1 for export (the
            TFLite converter fails on this graph with a dynamic batch).
        head: Override ``cfg.head``: ``flat``/``spatial``/``upsampled`` or a deployment
            head (``softmax``, ``logits``, ``argmax``). For an ``upsampled`` model the
            softmax and argmax heads keep the softmax before the resize (the trained
            function); ``logits`` resizes the logits.
        upsampling: How the decoder upsamples ×2 (same values, different TFLite
            ops; see ``edgeseg.model.decoder.UPSAMPLING``): ``tile`` (UpSampling2D,
            for training), ``resize`` (RESIZE_NEAREST_NEIGHBOR v2, the Edge TPU's)
            or ``concat_reshape`` (XNNPACK's); ``True``/``False`` mean resize/tile.
        edgetpu: The ``fast`` decoder's (and the instance heads') bilinear resize as
            RESIZE_BILINEAR version 2 (no half-pixel centres), which edgetpu_compiler maps.
        pair_logistic: Two classes only: the softmax as a sigmoid (LOGISTIC), for
            :func:`deployment_copy`, which makes ``seg_logits`` compute the logits' differences.

    Returns:
        A functional ``keras.Model`` named ``mobilenet_segnet``; for ``cfg.task ==
        "instance"`` its outputs are [class scores, centre heatmap N×h×w×1, offsets N×h×w×2].
    """
    import keras

    from edgeseg.model.decoder import fast_decoder, lite_decoder, seed_decoder
    from edgeseg.model.encoder import mobilenet_encoder

    inputs = keras.Input((cfg.height, cfg.width, 3), batch_size=batch_size, name="image")
    feats = mobilenet_encoder(inputs, cfg.alpha, cfg.encoder_level, cfg.stem)
    n_up = cfg.encoder_level
    if cfg.decoder == "seed":
        logits = seed_decoder(feats, cfg.n_classes, n_up, upsampling)
    elif cfg.decoder in ("fast", "fast_dw"):
        head = head or cfg.head
        softmax_first = cfg.head == "upsampled" and head in ("upsampled", "softmax", "argmax")
        if softmax_first and head == "softmax":  # class probabilities at the tap, resized
            head = "upsampled"
        before = _softmax(pair_logistic) if softmax_first else None
        logits = fast_decoder(feats, cfg.n_classes, n_up, cfg.decoder_width, edgetpu,
                              separable=cfg.decoder == "fast_dw", before_resize=before)
    else:
        logits = lite_decoder(feats, cfg.n_classes, n_up, cfg.decoder_width, upsampling)
    outputs = _head(logits, cfg, head or cfg.head, pair_logistic)
    if cfg.task == "instance":  # [class scores, centre heatmap, offsets]
        from edgeseg.model.instance_heads import instance_heads

        outputs = [outputs, *instance_heads(inputs, feats, cfg.encoder_level, cfg.output_size,
                                            cfg.decoder_width, edgetpu=edgetpu)]
    return keras.Model(inputs, outputs, name="mobilenet_segnet")


def deployment_copy(model: Any, cfg: ModelConfig, head: str = "softmax",
                    upsampling: str | bool = "tile", edgetpu: bool = False) -> Any:
    """A batch-1 copy of a trained model with a 4-D deployment head, weights copied by name.

    ``edgetpu``: build the Edge TPU's graph (see :func:`build_model`).

    With two classes the softmax head is computed as its two-class form, the same function:
    softmax(l)₁ = 1 / (1 + e^(l₀ − l₁)) = σ(l₁ − l₀). ``seg_logits`` gets the weights
    W·[[1, −1], [−1, 1]] (it then outputs l₀ − l₁, l₁ − l₀; linear, so the bilinear resize
    after it commutes) and a sigmoid replaces the softmax. In int8 that is LOGISTIC, which
    XNNPACK runs on all threads inside the model's one partition, where SOFTMAX (no int8
    kernel in XNNPACK) ran on LiteRT's one-thread builtin after it; the Edge TPU maps it too.
    """
    if head not in DEPLOY_HEADS:
        raise ValueError(f"head must be one of {DEPLOY_HEADS}, got {head!r}")
    pair = head == "softmax" and cfg.n_classes == 2
    copy = build_model(cfg, batch_size=1, head=head, upsampling=upsampling, edgetpu=edgetpu,
                       pair_logistic=pair)
    copy_weights_by_name(model, copy)
    if pair:
        logits = copy.get_layer("seg_logits")
        w, b = logits.get_weights()
        diff = np.array([[1.0, -1.0], [-1.0, 1.0]], dtype=w.dtype)
        logits.set_weights([w @ diff, b @ diff])
    return copy


def copy_weights_by_name(src: Any, dst: Any) -> int:
    """Copy weights layer-by-layer for every layer name both models share.

    Returns:
        The number of layers whose weights were copied.

    Raises:
        EdgesegError: A shared layer whose weights have other shapes (a model saved by a
            version of edgeseg that built that layer differently).
    """
    from edgeseg.errors import EdgesegError

    by_name = {layer.name: layer for layer in src.layers}
    n = 0
    for layer in dst.layers:
        other = by_name.get(layer.name)
        if other is not None and layer.weights:
            weights = other.get_weights()
            got, want = [w.shape for w in weights], [tuple(w.shape) for w in layer.weights]
            if got != want:
                raise EdgesegError(
                    f"layer {layer.name} holds weights of shapes {got} "
                    f"where this edgeseg builds {want}: the model was made with another layout of "
                    "that layer; convert it with the edgeseg that trained it, or retrain.")
            layer.set_weights(weights)
            n += 1
    return n


def count_params(model: Any) -> tuple[int, int, int]:
    """(total, trainable, non-trainable) parameter counts."""
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return trainable + non_trainable, trainable, non_trainable
