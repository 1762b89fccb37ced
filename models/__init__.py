"""Neural (and GP) solvers built on pdekit: one module per family, each its network and its loss on
top of :class:`pdekit.learning.task.Task`; :mod:`models.layers` holds what the networks share."""
