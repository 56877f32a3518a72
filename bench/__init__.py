"""Performance benchmark: `python -m bench [--quick|--full]` (see README "Benchmark")."""
