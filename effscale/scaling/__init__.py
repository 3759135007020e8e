"""Pure multipliers -> configs: compound scaling (``derive``), single-dimension rules, and
models solved to a target of measured FLOPs."""
