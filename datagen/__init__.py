"""Classical-solver data generation (Poisson, Navier–Stokes, Burgers) and the `datagen` command."""
