"""Claim criteria as judgements of measurements, one module per paper (unit-tested on planted data)."""
