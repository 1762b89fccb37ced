"""Learning: everything that trains, stores or runs a neural (or GP) solver, on top of the core.

* :mod:`~pdekit.learning.task` — the one base of every training task (set-up, data checks, the
  checkpoint record, the steps, optimizer and schedule from YAML); a model family in ``models/``
  adds its network and its loss. :mod:`~pdekit.learning.tasks` — the generic tasks (operator
  learning, autoregressive rollouts).
* :mod:`~pdekit.learning.datamodules` — data modules over dataset files and analytic problems.
* :mod:`~pdekit.learning.registry` and :mod:`~pdekit.learning.checkpoints` — the allow-list of
  classes built from names in files, and safe checkpoint loading.
* :mod:`~pdekit.learning.cli`, :mod:`~pdekit.learning.fit`, :mod:`~pdekit.learning.predict` — the
  ``pdekit`` command and its LightningCLI wrapper.
* :mod:`~pdekit.learning.solvers` — a trained solver as a preconditioner or an initial guess.
* :mod:`~pdekit.learning.evaluation` — metrics, static and rollout evaluation.
"""
