"""Learning: everything that trains or runs a neural (or GP) solver on top of the numerical core.

:mod:`~pdekit.learning.task` is the one base of every training task (set-up, data checks, the
checkpoint record, the steps, optimizer and schedule from YAML); a model family in ``models/`` adds
its network and its loss.
"""
