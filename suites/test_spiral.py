"""Paper B: Yang et al., "From a Spiral to a Sink: How Positional Encoding Shapes Attention Sinks in
Diffusion Transformers" (claims B01-B17).

One test per (claim, applicable model); criteria are registered here with `@criterion("Bxx")`.
"""
from benchmark.suite import claim_tests

globals().update(claim_tests("spiral"))
