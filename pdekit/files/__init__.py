"""Files: pdekit's HDF5 dataset schemas and validating readers (:mod:`~pdekit.files.dataset`),
atomic writes with the user's permissions (:mod:`~pdekit.files.atomic`) and figures
(:mod:`~pdekit.files.figures`)."""
