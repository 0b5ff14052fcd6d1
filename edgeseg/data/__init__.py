"""Datasets on disk: readers, checks, imports, synthetic scenes (numpy + Pillow + OpenCV, no TensorFlow)."""
