"""Benchmarks against the peers a Django team could pick instead (`bench_peers.py`)."""
