"""The bundles' prediction writers: the last postprocessing step, which writes what a user opens.

``x2ct_prediction_writer``: a generated CT as NIfTI, optionally a DICOM series joining the input's study,
a bone surface STL and a PNG montage beside the input radiographs; ``radiograph_prediction_writer``: a
generated radiograph as PNG / NumPy / DICOM. They sit above the pictures floor because a writer composes
the file writers of ``io`` with the montages of ``montage`` (docs/DESIGN.md).
"""
