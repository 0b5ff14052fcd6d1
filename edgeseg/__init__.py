"""edgeseg: MobileNet-SegNet segmentation from Keras to the Raspberry Pi."""

__version__ = "0.1.0"
