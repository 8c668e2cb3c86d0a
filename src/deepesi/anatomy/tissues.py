"""The 10-tissue conductivity table, following SimNIBS CHARM's ``final_tissues`` numbering."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: SimNIBS CHARM ``final_tissues`` labels, names and standard isotropic conductivities (S/m).
#: 0 is "outside the head" (air) and is not a tissue.
CHARM_TISSUES: tuple[tuple[int, str, float], ...] = (
    (1, "WM", 0.126),
    (2, "GM", 0.275),
    (3, "CSF", 1.654),
    (4, "Bone", 0.010),
    (5, "Scalp", 0.465),
    (6, "Eye_balls", 0.5),
    (7, "Compact_bone", 0.008),
    (8, "Spongy_bone", 0.025),
    (9, "Blood", 0.6),
    (10, "Muscle", 0.16),
)

#: Alternative spellings accepted when users name tissues (case-insensitive).
TISSUE_ALIASES: dict[str, str] = {
    "white": "WM", "white_matter": "WM", "wm": "WM",
    "grey": "GM", "gray": "GM", "grey_matter": "GM", "gray_matter": "GM", "gm": "GM",
    "csf": "CSF",
    "bone": "Bone", "skull": "Bone",
    "scalp": "Scalp", "skin": "Scalp",
    "eyes": "Eye_balls", "eye": "Eye_balls", "eye_balls": "Eye_balls", "eyeballs": "Eye_balls",
    "compact_bone": "Compact_bone", "compact": "Compact_bone", "cortical_bone": "Compact_bone",
    "spongy_bone": "Spongy_bone", "spongy": "Spongy_bone", "cancellous_bone": "Spongy_bone",
    "diploe": "Spongy_bone",
    "blood": "Blood", "vessels": "Blood",
    "muscle": "Muscle",
}

#: Tissue names that belong to the skull.
SKULL_TISSUES = ("Bone", "Compact_bone", "Spongy_bone")
#: Tissue names that belong to the brain (sources live in GM).
BRAIN_TISSUES = ("WM", "GM")
#: Tissue names inside the skull (the inner-skull compartment): brain and CSF.
INTRACRANIAL_TISSUES = ("WM", "GM", "CSF")


@dataclass(frozen=True)
class Tissue:
    """One tissue: its integer label in the volume, its name and its conductivity in S/m."""

    label: int
    name: str
    conductivity: float


@dataclass(frozen=True)
class TissueTable:
    """Label → (name, conductivity) table of a head model.

    Parameters
    ----------
    tissues : iterable of Tissue
        One entry per label. Labels must be unique integers in 1..255, names unique, and
        conductivities finite and strictly positive (S/m).

    Notes
    -----
    The default, :meth:`charm`, follows SimNIBS CHARM's ``final_tissues`` numbering and SimNIBS's
    standard conductivities. Use :meth:`with_conductivities` to override any value.
    """

    tissues: tuple[Tissue, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        tissues = tuple(self.tissues)
        object.__setattr__(self, "tissues", tuple(sorted(tissues, key=lambda t: t.label)))
        labels = [t.label for t in tissues]
        names = [t.name for t in tissues]
        if len(set(labels)) != len(labels):
            raise ValueError(f"tissue labels must be unique, got {labels}.")
        if len(set(n.lower() for n in names)) != len(names):
            raise ValueError(f"tissue names must be unique, got {names}.")
        for t in tissues:
            if not isinstance(t.label, int | np.integer) or not 1 <= int(t.label) <= 255:
                raise ValueError(
                    f"tissue {t.name!r} has label {t.label!r}; labels must be integers in 1..255 "
                    "(0 means outside the head)."
                )
            c = float(t.conductivity)
            if not np.isfinite(c) or c <= 0:
                raise ValueError(
                    f"tissue {t.name!r} has conductivity {t.conductivity!r} S/m; conductivities "
                    "must be finite and > 0 (a zero-conductivity tissue makes the FEM singular)."
                )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def charm(cls, conductivities: Mapping[str, float] | None = None) -> TissueTable:
        """The SimNIBS CHARM 10-tissue table with standard conductivities, optionally overridden."""
        table = cls(tuple(Tissue(lab, name, cond) for lab, name, cond in CHARM_TISSUES))
        return table.with_conductivities(conductivities) if conductivities else table

    @classmethod
    def from_dict(cls, data: Mapping) -> TissueTable:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                tuple(
                    Tissue(int(t["label"]), str(t["name"]), float(t["conductivity"]))
                    for t in data["tissues"]
                )
            )
        except (KeyError, TypeError) as err:
            raise ValueError(
                "tissue table must look like {'tissues': [{'label': 1, 'name': 'WM', "
                f"'conductivity': 0.126}}, ...]}}; got {data!r:.200}"
            ) from err

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {
            "tissues": [
                {"label": t.label, "name": t.name, "conductivity": t.conductivity}
                for t in self.tissues
            ]
        }

    # ------------------------------------------------------------------ access
    def __iter__(self):
        return iter(self.tissues)

    def __len__(self) -> int:
        return len(self.tissues)

    @property
    def labels(self) -> np.ndarray:
        """Integer labels, sorted."""
        return np.array([t.label for t in self.tissues], dtype=int)

    @property
    def names(self) -> list[str]:
        """Tissue names, in label order."""
        return [t.name for t in self.tissues]

    def canonical_name(self, name: str) -> str:
        """Resolve ``name`` (any case, or an alias such as 'skull') to this table's tissue name."""
        lowered = {t.name.lower(): t.name for t in self.tissues}
        key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
        if key in lowered:
            return lowered[key]
        alias = TISSUE_ALIASES.get(key)
        if alias is not None and alias.lower() in lowered:
            return lowered[alias.lower()]
        raise KeyError(
            f"unknown tissue {name!r}; this head model has tissues {self.names} "
            f"(aliases such as 'skull', 'skin', 'gray_matter' are accepted)."
        )

    def __getitem__(self, key: int | str) -> Tissue:
        if isinstance(key, int | np.integer):
            for t in self.tissues:
                if t.label == int(key):
                    return t
            raise KeyError(f"no tissue with label {key}; labels are {self.labels.tolist()}.")
        name = self.canonical_name(key)
        return next(t for t in self.tissues if t.name == name)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def label_of(self, name: str) -> int:
        """Label of the tissue called ``name`` (aliases accepted)."""
        return self[name].label

    def absent_from(self, labels: np.ndarray) -> list[str]:
        """Names of this table's tissues that have no voxel in the label volume ``labels``."""
        counts = np.bincount(np.ravel(labels), minlength=256)
        return [t.name for t in self.tissues if counts[t.label] == 0]

    def conductivity_lut(self) -> np.ndarray:
        """Array ``lut`` of length 256, ``lut[label]`` the conductivity (0 outside or unknown)."""
        lut = np.zeros(256, dtype=float)
        for t in self.tissues:
            lut[t.label] = t.conductivity
        return lut

    # ------------------------------------------------------------------ changes
    def with_conductivities(self, conductivities: Mapping[str | int, float] | None) -> TissueTable:
        """Return a copy with some conductivities replaced.

        Parameters
        ----------
        conductivities : dict
            Maps a tissue name (or alias, or integer label) to its new conductivity in S/m.
        """
        if not conductivities:
            return self
        new = {t.label: t for t in self.tissues}
        for key, value in conductivities.items():
            tissue = self[key]
            new[tissue.label] = Tissue(tissue.label, tissue.name, float(value))
        return TissueTable(tuple(new.values()))

    def subset(self, labels: Iterable[int]) -> TissueTable:
        """Only the tissues whose labels are in ``labels``."""
        keep = {int(x) for x in labels}
        return TissueTable(tuple(t for t in self.tissues if t.label in keep))

    def hash(self) -> str:
        """Content hash (sha256 hex) of labels, names and conductivities."""
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

    def __repr__(self) -> str:
        body = ", ".join(f"{t.label}:{t.name}={t.conductivity:g}" for t in self.tissues)
        return f"TissueTable({body})"
