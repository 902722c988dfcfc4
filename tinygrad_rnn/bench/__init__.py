"""Benchmarks: `python -m tinygrad_rnn.bench --help`. See docs/performance.md."""
