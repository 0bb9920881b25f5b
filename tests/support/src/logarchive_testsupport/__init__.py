"""Test helpers of this repository only; not part of the ``logarchive`` wheel.

Installed for development by requirements-dev.txt (``-e tests/support``). What a third-party
plugin author uses (kits, loopback servers, fixtures) is :mod:`logarchive.testing` instead.

- :mod:`~logarchive_testsupport.report`: pytest plugin writing docs/reliability.md;
- :mod:`~logarchive_testsupport.processes`: real ``logarchive export`` processes and archive checks;
- :mod:`~logarchive_testsupport.workspace`, :mod:`~logarchive_testsupport.archives`: log folders,
  configs and aged archives for core and plugin tests.
"""
