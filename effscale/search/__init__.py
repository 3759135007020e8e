"""The phi = 1 grid search: grid, candidates at equal full-size FLOPs, the run on the engine,
the ranking and verdict, follow-ups (repeat seeds, fidelity check), report and plot."""
