"""Head models: 10-tissue conductivity models from templates and segmentations."""

from .headmodel import HeadModel, read_head_model
from .regions import REGION_IDS, REGION_NAMES, SUBCORTICAL_REGIONS
from .tissues import CHARM_TISSUES, Tissue, TissueTable

__all__ = [
    "CHARM_TISSUES",
    "REGION_IDS",
    "REGION_NAMES",
    "SUBCORTICAL_REGIONS",
    "HeadModel",
    "Tissue",
    "TissueTable",
    "read_head_model",
]
