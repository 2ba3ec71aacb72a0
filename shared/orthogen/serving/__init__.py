"""Serving OrthoGen to OHIF users over DICOMweb: our own Orthanc (:mod:`orthogen.serving.orthanc_server`,
``OrthancServer`` and ``stop_from_pidfile``; ``python -m orthogen.serving.orthanc_server start|stop``)."""
