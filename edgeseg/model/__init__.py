"""MobileNet encoder + SegNet decoder (needs TensorFlow/Keras: ``pip install "edgeseg[full]"``)."""
