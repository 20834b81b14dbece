"""`make bench`: control-plane and data-plane figures, each beside a baseline measured in the
same run (python -m benchmarks --help)."""
