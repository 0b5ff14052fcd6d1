"""Verification: score models on data and compare a quantized model with its float source."""
