"""Keras model to deployable .tflite: quantization, metadata, target checks."""
