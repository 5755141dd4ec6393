"""Benchmarks: oxide against raw redis-py and the peer job queues, on one Redis. See docs/performance.md."""
