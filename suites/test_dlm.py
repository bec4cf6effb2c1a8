"""Paper C: Rulli et al., "Attention Sinks in Diffusion Language Models" (claims C01-C07).

One test per (claim, applicable model); criteria are registered here with `@criterion("Cxx")`.
"""
from benchmark.suite import claim_tests

globals().update(claim_tests("dlm"))
