"""kinect-occlusion: live segmentation of occlusions over ICU patients (SOSS)."""

__version__ = "0.1.0"
