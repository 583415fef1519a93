"""Tests of the Well-format data layer (writer, reader, stats, generation, CLI)."""
