"""Source spaces: cortical and subcortical source points with regions, orientations, neighbours.

- :class:`SourceSpace` (:mod:`.space`): the container; :meth:`SourceSpace.save` and
  :func:`read_source_space` (``SourceSpace.load`` calls it);
- :func:`make_source_space` (:mod:`.build`): builds one from a :class:`~deepesi.anatomy.HeadModel`.
"""

from .build import CORTICAL_MIN_NORMAL_DOT, DEEP_REGION_LINKS, make_source_space
from .space import FORMAT_VERSION, SourceSpace, read_source_space

__all__ = [
    "CORTICAL_MIN_NORMAL_DOT",
    "DEEP_REGION_LINKS",
    "FORMAT_VERSION",
    "SourceSpace",
    "make_source_space",
    "read_source_space",
]
