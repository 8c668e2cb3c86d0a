"""Head models: 10-tissue conductivity models from templates and segmentations."""

from .atlas import label_regions_from_mni, load_mni_region_atlas
from .brainweb import read_brainweb
from .charm import read_charm
from .freesurfer import read_freesurfer_subject
from .headmodel import HeadModel, read_head_model
from .load import load_head
from .nifti import read_labelled_nifti
from .regions import REGION_IDS, REGION_NAMES, SUBCORTICAL_REGIONS
from .template import load_template
from .tissues import CHARM_TISSUES, Tissue, TissueTable

__all__ = [
    "CHARM_TISSUES",
    "REGION_IDS",
    "REGION_NAMES",
    "SUBCORTICAL_REGIONS",
    "HeadModel",
    "Tissue",
    "TissueTable",
    "label_regions_from_mni",
    "load_head",
    "load_mni_region_atlas",
    "load_template",
    "read_brainweb",
    "read_charm",
    "read_freesurfer_subject",
    "read_head_model",
    "read_labelled_nifti",
]
