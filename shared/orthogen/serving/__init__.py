"""Serving OrthoGen to OHIF users over DICOMweb: our own Orthanc (:mod:`orthogen.serving.orthanc_server`) and
our MONAI Label server of apps/orthogen_label (:mod:`orthogen.serving.label_server`), each a child process
with a pid file in a folder of ours (:mod:`orthogen.serving.server_process`); ``python -m
orthogen.serving.orthanc_server start|stop`` and ``python -m orthogen.serving.label_server start|stop``."""
