"""Test kits for plugin authors (see docs/testing.md); needs the ``test`` extra (pytest).

- :mod:`~logarchive.testing.record_sinks`: conformance kit for record sinks (aggregators);
- :mod:`~logarchive.testing.byte_sinks`: conformance kit for byte sinks (object stores);
- :mod:`~logarchive.testing.sources`: conformance kit for sources;
- :mod:`~logarchive.testing.servers`: loopback HTTP servers whose handler the test writes;
- :mod:`~logarchive.testing.fixtures`: pytest fixtures (moto S3, GCS emulator, loopback,
  ``storage``), loaded with ``-p logarchive.testing.fixtures``.
"""
