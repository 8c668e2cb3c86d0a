"""Forward models: FEM EEG, MEG, lead fields and their MNE interchange."""

from .leadfield import LeadField

__all__ = ["LeadField"]
