"""SinkBench: verify published claims about attention sinks in diffusion models on any checkpoint."""

__version__ = "0.1.0"
