"""Airlock's benchmarks: `make bench` (python -m bench); never part of `make test`."""
