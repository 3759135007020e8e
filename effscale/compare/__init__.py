"""Compound scaling against single-dimension rules and other coefficient sets at equal
full-size FLOPs, on the same engine as a search."""
