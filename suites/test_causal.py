"""Paper A: Wu & Summa, "Attention Sinks in Diffusion Transformers: A Causal Analysis" (claims A01-A31).

One test per (claim, applicable model). A claim's criterion is registered here with
`@criterion("Axx")`; claims whose measurements are not built yet are SKIPPED with what they need.
"""
from benchmark.suite import claim_tests

globals().update(claim_tests("causal"))
