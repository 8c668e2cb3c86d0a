"""The synthetic MEG helmet now lives in the library
(:func:`deepesi.simulation.sphere.helmet_info`); this module only re-exports it."""

from __future__ import annotations

from deepesi.simulation.sphere import helmet_info

__all__ = ["helmet_info"]
