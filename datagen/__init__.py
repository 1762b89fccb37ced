"""Classical-solver data generation and the ``datagen`` command.

:mod:`datagen.kinds` holds one module per dataset kind (Poisson, Navier–Stokes, Burgers,
Feynman–Kac labels), registered with the command; the solvers they call live beside it
(:mod:`datagen.poisson`, :mod:`datagen.ns_channel`, ...); :mod:`datagen.runner` runs any kind over
workers and shards with resume and atomic output."""
