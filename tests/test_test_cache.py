"""The test cache keeps only this edgeseg version's entries, each NAME at its current key."""

from __future__ import annotations

from pathlib import Path

import pip_cache
import pytest

from edgeseg import __version__


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGESEG_TEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pip_cache, "_pruned", set())
    return tmp_path / "cache"


def test_other_versions_and_unversioned_entries_are_deleted(root: Path) -> None:
    for old in ("edgeseg-0.0.9/venv-mediapipe-abc/bin", "venv-mediapipe/bin",
                "keras-segmentation-0.3.0/keras_segmentation"):
        (root / old).mkdir(parents=True)
    here = pip_cache.cache_dir()
    assert here == root / f"edgeseg-{__version__}"
    assert sorted(p.name for p in root.iterdir()) == [here.name]


def test_an_entry_is_built_once_and_replaced_when_its_inputs_change(root: Path,
                                                                     tmp_path: Path) -> None:
    builds: list[str] = []

    def build(text: str):  # noqa: ANN202
        def write(out: Path) -> None:
            builds.append(text)
            (out / "made").write_text(text)
        return write

    a = pip_cache.cached("thing", ["v1"], build("one"))
    assert pip_cache.cached("thing", ["v1"], build("again")) == a and builds == ["one"]
    b = pip_cache.cached("thing", ["v2"], build("two"))
    assert b != a and not a.exists() and (b / "made").read_text() == "two"
    assert sorted(p.name for p in b.parent.iterdir()) == [b.name]


def test_an_interrupted_build_leaves_no_entry(root: Path) -> None:
    def broken(out: Path) -> None:
        (out / "half").write_text("")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pip_cache.cached("thing", ["v1"], broken)
    assert list(pip_cache.cache_dir().iterdir()) == []
