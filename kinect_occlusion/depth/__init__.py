"""Depth and colour geometry of the Azure Kinect without the SDK: calibration, projections, depth→colour.

Re-implemented from reading the Azure Kinect Sensor SDK's source (``src/calibration``,
``src/transformation``: MIT); no code copied. The SDK itself (pyk4a-bundle) is the reference in
``tests/reference``.
"""
