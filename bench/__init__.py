"""Benchmarks, each a script: ``python bench/<name>.py`` (or ``python -m bench.<name>``).

Run as a script, a benchmark has bench/ first on the import path, where bench/web.py would
stand in for the web package; so each puts the repository root there before its imports.
"""
