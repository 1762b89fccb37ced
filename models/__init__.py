"""Neural (and GP) solvers built on pdekit."""
