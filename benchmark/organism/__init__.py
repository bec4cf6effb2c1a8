"""The model organism's world: a procedural captioned-shapes domain, its detector, (later) its trained DiTs."""
