"""Datasets on disk, synthetic scenes and dataset checks (numpy + OpenCV, no TensorFlow)."""
