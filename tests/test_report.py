"""The demo report's overlays.png: input, ground truth and both models' predictions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tflite_fixtures
from test_runtime import colour_frame

from edgeseg.demo.report import GRID_TITLES, TILE, overlay_grid
from edgeseg.runtime.overlay import Overlay


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def test_overlays_png_has_a_ground_truth_column_that_shows_where_models_are_wrong(
        models: Path, tmp_path: Path) -> None:
    val = tmp_path / "val"
    (val / "images").mkdir(parents=True)
    (val / "annotations").mkdir()
    frame, truth = colour_frame(TILE, TILE)  # bands: red 1, green 2, blue 3, black 0
    truth = truth.copy()
    truth[:, : TILE // 4] = 2  # the truth says the red band is class 2: both models are "wrong"
    truth[:8, :8] = 255  # an ignored corner
    cv2.imwrite(str(val / "images" / "a.png"), frame)
    cv2.imwrite(str(val / "annotations" / "a.png"), truth)
    tfl = {"float32": str(models / "float_softmax.tflite"),
           "int8": str(models / "int8_softmax.tflite")}
    png = overlay_grid(tfl, val, tmp_path / "overlays.png", n=1)
    grid = cv2.imread(str(png))
    assert grid.shape == (28 + TILE, len(GRID_TITLES) * TILE, 3)
    assert GRID_TITLES[1] == "ground truth"
    tiles = [grid[28:, i * TILE:(i + 1) * TILE].astype(int) for i in range(4)]
    ov = Overlay(("background", "red", "green", "blue"), alpha=0.55)
    # mid-band pixel of the red band (no legend there): truth column shows class 2's colour,
    # the model columns class 1's
    y, x = TILE // 2, TILE // 8
    want = {c: cv2.addWeighted(frame[y:y + 1, x:x + 1], 0.45,
                               ov.colors[c].reshape(1, 1, 3), 0.55, 0)[0, 0].astype(int)
            for c in (1, 2)}
    assert np.abs(tiles[1][y, x] - want[2]).max() <= 2
    for model_tile in tiles[2:]:
        assert np.abs(model_tile[y, x] - want[1]).max() <= 2
    assert (tiles[1][2, 2] == 128).all()  # the ignored corner is grey
    np.testing.assert_array_equal(tiles[0], frame.astype(int))  # the input column is the image
