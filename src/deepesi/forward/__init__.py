"""Forward models: FEM EEG, MEG, lead fields and their MNE interchange."""

from .api import make_forward
from .io import leadfield_from_forward, leadfield_to_forward, read_forward, write_forward
from .leadfield import LeadField
from .meg import compute_meg_leadfield

__all__ = [
    "LeadField",
    "compute_meg_leadfield",
    "leadfield_from_forward",
    "leadfield_to_forward",
    "make_forward",
    "read_forward",
    "write_forward",
]
