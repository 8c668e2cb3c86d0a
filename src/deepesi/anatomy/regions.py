"""Region names for source points: FreeSurfer-style names for deep structures, lobes for cortex.

Region ids for the deep structures are FreeSurfer's ``FreeSurferColorLUT`` numbers, so that
volumes written by deepesi read naturally next to an ``aseg``. Cortical lobes, which have no
single FreeSurfer number, use 1101-1106 (left) and 2101-2106 (right).
"""

from __future__ import annotations

#: The deep (subcortical) structures every source space must cover, FreeSurfer ids.
SUBCORTICAL_REGIONS: dict[int, str] = {
    10: "Left-Thalamus",
    11: "Left-Caudate",
    12: "Left-Putamen",
    13: "Left-Pallidum",
    16: "Brain-Stem",
    17: "Left-Hippocampus",
    18: "Left-Amygdala",
    26: "Left-Accumbens-area",
    49: "Right-Thalamus",
    50: "Right-Caudate",
    51: "Right-Putamen",
    52: "Right-Pallidum",
    53: "Right-Hippocampus",
    54: "Right-Amygdala",
    58: "Right-Accumbens-area",
}

#: Cerebellar cortex (FreeSurfer ids): grey matter, treated as cortex-like superficial sources.
CEREBELLAR_REGIONS: dict[int, str] = {
    8: "Left-Cerebellum-Cortex",
    47: "Right-Cerebellum-Cortex",
}

#: Cerebral cortex by hemisphere and lobe. 3/42 are FreeSurfer's "cortex, lobe unknown".
CORTICAL_REGIONS: dict[int, str] = {
    3: "Left-Cerebral-Cortex",
    42: "Right-Cerebral-Cortex",
    1101: "ctx-lh-frontal",
    1102: "ctx-lh-parietal",
    1103: "ctx-lh-temporal",
    1104: "ctx-lh-occipital",
    1105: "ctx-lh-insula",
    1106: "ctx-lh-cingulate",
    2101: "ctx-rh-frontal",
    2102: "ctx-rh-parietal",
    2103: "ctx-rh-temporal",
    2104: "ctx-rh-occipital",
    2105: "ctx-rh-insula",
    2106: "ctx-rh-cingulate",
}

#: Every region id deepesi knows, with its name.
REGION_NAMES: dict[int, str] = {**CORTICAL_REGIONS, **CEREBELLAR_REGIONS, **SUBCORTICAL_REGIONS}

#: Name → id.
REGION_IDS: dict[str, int] = {name: rid for rid, name in REGION_NAMES.items()}


def is_subcortical(region_id: int) -> bool:
    """True for the deep structures (thalamus, basal ganglia, hippocampus, amygdala, brainstem)."""
    return int(region_id) in SUBCORTICAL_REGIONS


def region_name(region_id: int) -> str:
    """Name of ``region_id`` ('unknown' for 0 or ids deepesi does not know)."""
    return REGION_NAMES.get(int(region_id), "unknown")


def hemisphere(region_id: int) -> str:
    """'lh', 'rh' or 'mid' (brainstem, unknown)."""
    name = region_name(region_id)
    if name.startswith(("Left", "ctx-lh")):
        return "lh"
    if name.startswith(("Right", "ctx-rh")):
        return "rh"
    return "mid"
