"""The sphere-model test lead field now lives in the library (:mod:`deepesi.simulation.sphere`);
this module only re-exports it for tests that still import it from here."""

from __future__ import annotations

from deepesi.simulation.sphere import make_sphere_leadfield, make_sphere_source_space

__all__ = ["make_sphere_leadfield", "make_sphere_source_space"]
