"""Training's progress bar knows the batches per epoch from the first batch and keeps it."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # fits Keras models


def test_batch_progress_total_is_known_in_the_first_epoch_when_keras_does_not_know_it() -> None:
    import keras
    import tensorflow as tf

    from edgeseg.train.loop import BatchProgress

    x = np.random.default_rng(66).normal(size=(20, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    # a filter hides the dataset's size, as sharding for several workers does
    ds = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(4)
    assert int(ds.cardinality()) < 0
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy")
    seen: list[tuple[int, int, int, float | None]] = []
    keras_steps: list[object] = []

    class KerasKnows(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            keras_steps.append(self.params.get("steps"))

    model.fit(ds, epochs=2, verbose=0,
              callbacks=[KerasKnows(), BatchProgress(5, lambda *a: seen.append(a))])
    assert keras_steps[0] is None  # Keras' own bar would say "Unknown" in epoch 1
    assert seen[0] == (1, 0, 5, None) and {total for _, _, total, _ in seen} == {5}
    for epoch in (1, 2):
        done = [d for e, d, _, _ in seen if e == epoch]
        assert done == [0, 1, 2, 3, 4, 5], (epoch, done)
    assert all(loss is not None and loss > 0 for _, d, _, loss in seen if d)


def test_train_reports_a_constant_total_from_the_first_batch(synth_data, tmp_path) -> None:
    from conftest import shipped_configs

    from edgeseg.train import TrainConfig, train

    seen: list[tuple[int, int, int, float | None]] = []
    tcfg = TrainConfig(data=str(synth_data), output=str(tmp_path / "m.keras"), epochs=2,
                       batch_size=32, augment=False, seed=0, backbone_weights="none")
    train(shipped_configs()["seed"], tcfg, log=lambda s: None, progress=lambda *a: seen.append(a))
    train_images = 256  # synth_data: train/ holds 256 pairs (val/ is its own split)
    assert {total for _, _, total, _ in seen} == {train_images // 32}
    assert [d for e, d, _, _ in seen if e == 1][-1] == train_images // 32
    assert [e for e, d, _, _ in seen if d == 0] == [1, 2]


def test_the_epoch_line_gives_a_fixed_total_only_when_it_is_fixed() -> None:
    from edgeseg.train.loop import TimeBudget, epoch_label

    assert epoch_label(3, TimeBudget(None, 30, 30)) == "epoch 3/30"
    budget = TimeBudget(540.0, 40, 40)
    budget.after_epoch(1, 30.0, 30.0)  # 30 s an epoch: 17 more fit the 9 minutes
    assert budget.planned == 18
    assert epoch_label(1, budget) == "epoch 1 (of about 18 in 9 min)"
    assert epoch_label(18, budget) == "epoch 18/18"  # the last one is known
