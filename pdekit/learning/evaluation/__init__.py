"""Evaluation of trained solvers (``pdekit evaluate``): on dataset files (:mod:`~.fields`), on
analytic problems (:mod:`~.problems`), as autoregressive rollouts (:mod:`~.rollout`, with the
stability measures of :mod:`~.rollout_metrics`); per-sample error measures in :mod:`~.metrics`."""
