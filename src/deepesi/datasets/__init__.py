"""Public data sets as deepesi uses them (read from a folder the user gives; nothing is
downloaded): :mod:`deepesi.datasets.mne_sample`."""
