"""Model configuration: a frozen dataclass saved as JSON beside every artifact."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError
from edgeseg.preprocess import DEFAULT_MEAN, DEFAULT_STD, Preprocessing

ALPHAS = (0.25, 0.5, 0.75, 1.0)
HEADS = ("flat", "spatial", "upsampled")
DECODERS = ("seed", "lite", "fast", "fast_dw")
STEMS = ("mobilenet", "lean")
TASKS = ("semantic", "instance")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and feed it. Maps 1:1 to ``edgeseg build``.

    Attributes:
        n_classes: Number of classes, background included.
        height: Input height (a multiple of 32).
        width: Input width (a multiple of 32).
        alpha: MobileNet width multiplier.
        encoder_level: Encoder tap for the decoder: 1 (1/4) … 4 (1/32); 3 is the seed's.
        head: ``flat`` (seed: Reshape + Softmax), ``spatial`` (4-D softmax at the output
            resolution) or ``upsampled`` (``fast`` decoders: softmax at the decoder's
            resolution, the class probabilities resized bilinearly to the output; 1/16 of
            the softmax work at a 1/8 tap, and softmax runs outside XNNPACK).
        decoder: ``seed`` (the published SegNet decoder), ``lite`` (depthwise, ReLU6) or
            ``fast`` (one conv at the tap, logits resized once: the realtime preset's).
        decoder_width: Width multiplier of the ``lite``/``fast``/``fast_dw`` decoder's filters.
        stem: ``mobilenet`` (Keras' MobileNet: ``conv1`` and block 1 at 1/2) or ``lean``
            (``conv1`` at half the filters and block 1 downsampling to 1/4, block 2 not:
            the same later shapes, ~15 M fewer Cortex-A72 instructions at 320²).
        labels: One name per class.
        mean: Per-channel normalization mean (RGB).
        std: Per-channel normalization std (RGB).
        task: ``semantic`` (class scores) or ``instance`` (also a class-agnostic object-centre
            heatmap and per-pixel centre offsets, Panoptic-DeepLab style).
        things: Class ids that are countable objects (instance task), e.g. ``(1, 2, 3)``.
    """

    n_classes: int = 2
    height: int = 416
    width: int = 416
    alpha: float = 1.0
    encoder_level: int = 3
    head: str = "flat"
    decoder: str = "seed"
    decoder_width: float = 1.0
    stem: str = "mobilenet"
    labels: tuple[str, ...] = ()
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD
    task: str = "semantic"
    things: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.n_classes < 2:
            raise EdgesegError(f"--classes must be at least 2 (got {self.n_classes}); "
                               "background counts as a class.")
        for name, v in (("height", self.height), ("width", self.width)):
            if v < 32 or v % 32:
                raise EdgesegError(
                    f"input {name} {v} is not a positive multiple of 32 "
                    f"(MobileNet downsamples 5 times); try {max(32, round(v / 32) * 32)}."
                )
        if self.alpha not in ALPHAS:
            raise EdgesegError(f"--alpha {self.alpha} is not one of {', '.join(map(str, ALPHAS))}.")
        if self.encoder_level not in (1, 2, 3, 4):
            raise EdgesegError(f"--encoder-level {self.encoder_level} must be 1, 2, 3 or 4.")
        if self.head not in HEADS:
            raise EdgesegError(f"--head {self.head!r} must be one of {', '.join(HEADS)}.")
        if self.decoder not in DECODERS:
            raise EdgesegError(f"--decoder {self.decoder!r} must be one of {', '.join(DECODERS)}.")
        if self.head == "upsampled" and self.decoder not in ("fast", "fast_dw"):
            raise EdgesegError(f"--head upsampled needs a fast decoder (the {self.decoder} decoder "
                               "ends at the output resolution); use --head spatial.")
        if self.stem not in STEMS:
            raise EdgesegError(f"--stem {self.stem!r} must be one of {', '.join(STEMS)}.")
        if not 0 < self.decoder_width <= 2:
            raise EdgesegError(f"--decoder-width {self.decoder_width} must be in (0, 2].")
        if self.task not in TASKS:
            raise EdgesegError(f"--task {self.task!r} must be one of {', '.join(TASKS)}.")
        bad = [t for t in self.things if not 0 < t < self.n_classes]
        if bad:
            raise EdgesegError(f"thing classes {bad} are not class ids 1..{self.n_classes - 1}.")
        if self.labels and len(self.labels) != self.n_classes:
            raise EdgesegError(
                f"{len(self.labels)} labels given for {self.n_classes} classes; "
                "pass one name per class, background first."
            )

    @property
    def class_names(self) -> tuple[str, ...]:
        """Labels, or ``class0 … classN`` when none were given."""
        return self.labels or tuple(f"class{i}" for i in range(self.n_classes))

    @property
    def output_size(self) -> tuple[int, int]:
        """The label resolution the model predicts: half the input size."""
        return self.height // 2, self.width // 2

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.height, self.width, self.mean, self.std)

    def with_(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d["labels"] = list(self.class_names)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["things"] = list(self.things)
        d["output_size"] = list(self.output_size)
        d["preprocessing"] = self.preprocessing.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("labels", "mean", "std", "things"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)


# Named model configurations shared by build, train, demo and the README. Each maps
# ModelConfig fields to values; explicit CLI options override them.
PRESETS: dict[str, dict[str, Any]] = {
    # keras_segmentation's mobilenet_segnet, layer for layer (at the size you pass).
    "seed": {"alpha": 1.0, "encoder_level": 3, "decoder": "seed", "decoder_width": 1.0,
             "head": "flat", "stem": "mobilenet"},
    # 4.7× faster int8 than "seed" at 416² on this Xeon with 2 classes, 3.9× with 4 (5.9× with
    # `--stem lean --head upsampled`, which cost 7-10 points of mIoU on 128² scenes of small
    # touching objects: benchmarks/RESULTS.md §6e, §6f); its 1/8 tap also learns from scratch
    # on a CPU, where the seed's 1/16 tap plateaus on background.
    "realtime": {"alpha": 0.5, "encoder_level": 2, "decoder": "fast", "decoder_width": 0.5,
                 "head": "spatial", "stem": "mobilenet"},
    # realtime with the lean stem, a depthwise-separable decoder conv and the softmax at the tap:
    # the whole camera loop at 320² (640×480 frames, the default softmax head) in 54-55 M A72
    # instructions, ~30 fps on one Pi 4 core by the calibrated estimate (RESULTS.md §6e, §6f).
    "realtime_1core": {"alpha": 0.5, "encoder_level": 2, "decoder": "fast_dw",
                       "decoder_width": 0.5, "head": "upsampled", "stem": "lean"},
}
# Peak learning rate `train` uses with each preset unless --lr is given. realtime_1core's
# depthwise-separable decoder learns faster with a larger step: at 4 CPU-minutes on the demo's
# synthetic scenes (2 seeds) 0.633 mean val mIoU at 2e-3, 0.682 at 5e-3, 0.690 at 1e-2; on
# VOC 0.355 at 2e-3 (3 seeds), 0.417 at 5e-3 (benchmarks/RESULTS.md §6g).
PRESET_LR: dict[str, float] = {"seed": 2e-3, "realtime": 2e-3, "realtime_1core": 5e-3}
# An instance model (`--task instance`) trains at 5e-3 whatever the preset: on the instance
# benchmark (9 CPU-min, realtime) int8 PQ things 0.532 / 0.522 at 5e-3 against 0.488-0.507 at
# 2e-3, val mIoU 0.825 / 0.820 against 0.787-0.815 (benchmarks/instances.md).
TASK_LR: dict[str, float] = {"instance": 5e-3}


def train_lr(preset_name: str, task: str = "semantic") -> float:
    """The peak learning rate `train` uses unless --lr is given: the task's, else the preset's."""
    return TASK_LR.get(task, PRESET_LR[preset_name])
ARCHITECTURE = ("alpha", "encoder_level", "decoder", "decoder_width", "head", "stem", "task")


def preset(name: str) -> dict[str, Any]:
    """The ModelConfig fields of preset ``name``.

    Raises:
        EdgesegError: For an unknown name.
    """
    if name not in PRESETS:
        raise EdgesegError(f"--preset {name!r} must be one of {', '.join(PRESETS)}.")
    return dict(PRESETS[name])


def architecture_changes(saved: ModelConfig, wanted: ModelConfig) -> list[str]:
    """``field saved -> wanted`` for each field that changes the layers or their shapes."""
    fields = ("n_classes", "height", "width", *ARCHITECTURE)
    return [f"{f} {getattr(saved, f)} -> {getattr(wanted, f)}" for f in fields
            if getattr(saved, f) != getattr(wanted, f)]


def sidecar_path(model_path: str | Path) -> Path:
    """The JSON file that describes ``model_path`` (``model.keras`` -> ``model.keras.json``).

    The full file name is kept so ``model.keras`` and ``model.tflite`` side by side
    each keep their own description.
    """
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (the model a sidecar belongs to)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_sidecar(model_path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as the model's JSON sidecar, atomically, naming the model's hash.

    Call it after the model file is in place: the model and its sidecar are two
    renames, and ``model_sha256`` lets a reader detect a sidecar left from another
    model (an interrupted save) instead of acting on it.
    """
    from edgeseg.atomic import write_json

    model_path = Path(model_path)
    return write_json(sidecar_path(model_path),
                      {**data, "model_sha256": file_sha256(model_path)})


def read_sidecar(model_path: str | Path) -> dict[str, Any] | None:
    """The model's sidecar JSON when it exists and belongs to this model, else None.

    A sidecar whose ``model_sha256`` names other bytes (the model was replaced and
    the sidecar was not, or the reverse) is ignored with a warning: the caller
    falls back to the description embedded in the model.

    Raises:
        EdgesegError: The sidecar exists but is not a JSON object (one line, with the fix).
    """
    import warnings

    side = sidecar_path(model_path)
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise EdgesegError(f"{side} is not valid JSON ({e}); delete it (the model's embedded "
                           "description is then used) or re-run the command that wrote it."
                           ) from None
    if not isinstance(data, dict):
        raise EdgesegError(f"{side} is not an edgeseg sidecar (a JSON object); delete it or "
                           "re-run the command that wrote it.")
    want = data.get("model_sha256")
    if want and Path(model_path).is_file() and want != file_sha256(model_path):
        warnings.warn(f"{side.name} belongs to another version of {Path(model_path).name} "
                      "(its model_sha256 differs); ignoring it and using the model's own "
                      "description.", RuntimeWarning, stacklevel=2)
        return None
    return data


def save_config(cfg: ModelConfig, model_path: str | Path, **more: Any) -> Path:
    """Write the model's config (plus ``more`` keys) as JSON beside it, atomically."""
    return save_sidecar(model_path, {"edgeseg": cfg.to_dict(), **more})


def load_config(model_path: str | Path) -> ModelConfig | None:
    """Read the config saved beside a model; None when there is none or it is another model's.

    Raises:
        EdgesegError: A corrupt sidecar or an invalid config in it (one line).
    """
    data = read_sidecar(model_path)
    if data is None:
        return None
    try:
        return ModelConfig.from_dict(data.get("edgeseg", data))
    except (ValueError, TypeError, AttributeError) as e:
        raise EdgesegError(f"{sidecar_path(model_path)} is not a valid edgeseg config ({e}); "
                           "delete it or rebuild.") from None
