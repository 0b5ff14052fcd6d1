"""The .tflite file: its flatbuffer, its TFLite metadata and edgeseg's embedded description.

The bottom layer: it imports nothing of edgeseg above ``errors``, ``config``,
``preprocess`` and ``labels``, so the converter, the runtime, ``inspect``, ``export``
and ``bundle`` all read and write a model file through it.
"""

from edgeseg.tflite.description import ModelMetadata, read_description
from edgeseg.tflite.flatbuffer import OpInfo, TensorInfo, TfliteModel, read_model_bytes, read_tflite
from edgeseg.tflite.metadata import (
    associated_files,
    embed_metadata,
    model_schema,
    pack_model,
    read_standard_metadata,
)

__all__ = ["model_schema", "pack_model",
    "ModelMetadata", "OpInfo", "TensorInfo", "TfliteModel", "associated_files", "embed_metadata",
    "read_description", "read_model_bytes", "read_standard_metadata", "read_tflite",
]
