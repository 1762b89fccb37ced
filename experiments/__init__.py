"""pdekit's experiments: the benchmarks (``experiments.benchmarks``) and studies
(``experiments.studies``) behind the documentation's tables and figures, the configs they train
from (``experiments/configs/``) and the level specs (``experiments/specs/``).  Run a script as a
module from the repository root: ``python -m experiments.benchmarks.bench_krylov --help``.  Nothing
in pdekit, datagen or models imports this package."""
