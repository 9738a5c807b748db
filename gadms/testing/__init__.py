"""Test and benchmark helpers: loopback servers for the corpus stages,
command-line tools run from a fork server, resident memory from ``/proc``.

The product never imports this package (``tests/test_imports.py`` checks);
tests and ``benchmarks/`` do, as MMEngine's own ``mmengine.testing``.
"""
