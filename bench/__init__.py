"""The speed benchmark (bench/bench.py); a package so that it runs as `python -m bench.bench`."""
