"""A batch of simulated samples (:class:`SimulatedBatch`) and its HDF5 file format.

The file holds one extendible, gzip-compressed dataset per array of the batch (``data``,
``sources``, ``centres``, ``regions``, ``amplitudes``, ``extent_mm``, ``n_active``, ``snr_db``,
``good``) and the attributes ``format``, ``format_version``, ``ch_names``, ``ch_types`` and
``config`` (JSON); :func:`read_simulation` reads it back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_path
from .._validation import check_file
from ..anatomy.regions import REGION_NAMES, SUBCORTICAL_REGIONS
from .config import SimulationConfig

__all__ = ["FORMAT_VERSION", "SimulatedBatch", "load_simulation", "read_simulation"]

#: Version of the HDF5 simulation file format.
FORMAT_VERSION = 1


@dataclass
class SimulatedBatch:
    """A batch of simulated samples.

    Attributes
    ----------
    data : ndarray, float32, shape (n, n_channels, n_times)
        Sensor data in SI units (V, T, T/m), EEG average-referenced, bad channels zeroed.
    sources : ndarray, float32, shape (n, n_sources_total, n_times)
        True source map: dipole-moment norm (A·m) of every source point.
    centres : ndarray of int, shape (n, K)
        Source point index of each source's centre (-1 where the sample has fewer sources).
    regions : ndarray of int, shape (n, K)
        Region id of each centre (0 where absent).
    amplitudes : ndarray, shape (n, K)
        Total dipole moment (A·m) of each source (sum over its patch).
    extent_mm : ndarray, shape (n, K)
        Patch radius along the graph.
    n_active : ndarray of int, shape (n,)
        Number of sources per sample.
    snr_db : ndarray, shape (n,)
        Requested (and achieved) SNR in dB.
    good : ndarray of bool, shape (n, n_channels)
        False for bad/missing channels.
    ch_names, ch_types : list of str
        Channels, in row order.
    """

    data: np.ndarray
    sources: np.ndarray
    centres: np.ndarray
    regions: np.ndarray
    amplitudes: np.ndarray
    extent_mm: np.ndarray
    n_active: np.ndarray
    snr_db: np.ndarray
    good: np.ndarray
    ch_names: list[str]
    ch_types: list[str]

    def __len__(self) -> int:
        return len(self.data)

    @property
    def has_deep(self) -> np.ndarray:
        """True for samples with at least one deep-structure source."""
        return np.isin(self.regions, list(SUBCORTICAL_REGIONS)).any(axis=1)

    def region_names(self, i: int) -> list[str]:
        """Region names of the sources of sample ``i``."""
        return [REGION_NAMES.get(int(r), "unknown") for r in self.regions[i, : self.n_active[i]]]

    def save(
        self,
        path: str | os.PathLike,
        overwrite: bool = False,
        config: SimulationConfig | None = None,
    ) -> Path:
        """Write to HDF5 (needs ``h5py``), atomically; :func:`read_simulation` reads it back.

        Parameters
        ----------
        path : path-like
            Destination ``.h5`` file.
        overwrite : bool
            Replace an existing file (otherwise FileExistsError).
        config : SimulationConfig | None
            The configuration to record with the samples.

        Returns
        -------
        Path
            The written file.
        """
        h5py = _import_h5py()
        with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
            _h5_init(
                f,
                self.data.shape[1:],
                self.sources.shape[1:],
                self.centres.shape[1],
                self.ch_names,
                self.ch_types,
                config,
            )
            _h5_append(f, self)
        return Path(path)


_ARRAYS = (
    "data",
    "sources",
    "centres",
    "regions",
    "amplitudes",
    "extent_mm",
    "n_active",
    "snr_db",
    "good",
)


def _import_h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - optional dependency
        raise ImportError("HDF5 export needs h5py: pip install 'deepesi[hdf5]'.") from err
    return h5py


def _h5_init(f, data_shape, src_shape, k, ch_names, ch_types, config) -> None:
    f.attrs["format"] = "deepesi-simulation"
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["ch_names"] = json.dumps(list(ch_names))
    f.attrs["ch_types"] = json.dumps(list(ch_types))
    f.attrs["config"] = json.dumps(config.to_dict() if config is not None else None)
    shapes = {
        "data": data_shape,
        "sources": src_shape,
        "centres": (k,),
        "regions": (k,),
        "amplitudes": (k,),
        "extent_mm": (k,),
        "n_active": (),
        "snr_db": (),
        "good": (len(ch_names),),
    }
    dtypes = {
        "data": "f4",
        "sources": "f4",
        "centres": "i4",
        "regions": "i4",
        "amplitudes": "f8",
        "extent_mm": "f4",
        "n_active": "i4",
        "snr_db": "f4",
        "good": "?",
    }
    for name in _ARRAYS:
        shape = tuple(shapes[name])
        f.create_dataset(
            name,
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=dtypes[name],
            chunks=(64, *shape),
            compression="gzip",
            compression_opts=4,
        )


def _h5_append(f, batch: SimulatedBatch) -> None:
    for name in _ARRAYS:
        ds = f[name]
        n0 = ds.shape[0]
        arr = getattr(batch, name)
        ds.resize(n0 + len(arr), axis=0)
        ds[n0:] = arr


def read_simulation(path: str | os.PathLike) -> tuple[SimulatedBatch, SimulationConfig | None]:
    """Read an HDF5 file written by :meth:`SimulatedBatch.save` or
    :func:`~deepesi.simulation.simulate_to_hdf5`.

    Parameters
    ----------
    path : path-like
        The ``.h5`` file.

    Returns
    -------
    batch : SimulatedBatch
        Every sample of the file.
    config : SimulationConfig | None
        The configuration it was simulated with (``noise_cov`` and ``projs`` not restored), if
        the file records one.
    """
    h5py = _import_h5py()
    path = check_file(path, "simulation file")
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != "deepesi-simulation":
            raise ValueError(f"{path} is not a deepesi simulation file (HDF5 'format' attribute).")
        arrays = {name: f[name][()] for name in _ARRAYS}
        cfg = json.loads(f.attrs["config"])
        batch = SimulatedBatch(
            **arrays,
            ch_names=json.loads(f.attrs["ch_names"]),
            ch_types=json.loads(f.attrs["ch_types"]),
        )
    return batch, (SimulationConfig.from_dict(cfg) if cfg else None)


#: Former name of :func:`read_simulation` (kept as an alias).
load_simulation = read_simulation
