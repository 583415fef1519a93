"""Benchmarks behind `latentsim bench ...`: each returns a JSON-serialisable dict."""
