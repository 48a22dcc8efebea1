"""Benchmarks: each module runs as a script (``python bench/<name>.py``)."""
