"""Developer tools that are not part of the served app or the engine (`python -m tools.X`)."""
