"""Heart sensors, heart-signal processing and LSL/XDF output.

The rest of vrex sees only the records in :mod:`biofeedback.records`, the
:class:`biofeedback.sensor.HeartSensor` protocol and the pipeline's
:class:`biofeedback.records.HeartState`; device libraries stay inside the one
module that wraps each of them.
"""
