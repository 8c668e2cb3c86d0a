"""Linear maps between sensor spaces through the forward, so that a net reads data as it was
trained to see them: SSP restoration, and mapping one head position's field to another's.

SSP restoration
---------------
Recordings often carry signal-space projectors (MEGIN/Neuromag empty-room PCA vectors, ECG/EOG
projectors): the data lack those field directions. A network trained on unprojected fields
(every shipped template net) then sees a distorted topography: on the template, the three
empty-room projectors of the MNE sample recording remove a fifth of a cortical source's field
power and a third of a deep one's (per-type scaled). Retraining with the recording's
projectors (``SimulationConfig(projs=...)``) is exact but needs a training; this module fills
the removed directions in instead, with their expected value given the rest of the data under
the forward model (a Gaussian conditional, i.e. the minimum-norm field restoration used for
virtual channels):

    d_full = C P^T (P C P^T)^+ d_p,   C = S + I / snr,   S = G G^T (trace = n_channels),

on channels scaled per type (``P`` the projector in those units, ``G`` the gain, ``snr`` the
signal-to-noise power ratio assumed). ``P d_full = d_p``: only the removed directions are
added; a field the forward explains is restored up to the noise.

Field mapping
-------------
A net trained at one sensor geometry (a template MEG net's nominal head position) reads a
recording made at another (its ``dev_head_t``) through the field the nominal geometry would
have measured from the same sources: ``M = G_to G_from^T (G_from G_from^T + I / snr)^+``
(:func:`field_mapping_matrix`), the minimum-norm estimate of the sources mapped forward again,
as MNE maps MEG fields between helmets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..whitening import ssp_projector

__all__ = ["MappedInputModel", "field_mapping_matrix", "restoration_matrix"]


def restoration_matrix(projs: Any, gain: np.ndarray, ch_names: list[str],
                       channel_scale: np.ndarray, *, snr: float = 10.0) -> np.ndarray | None:
    """The (n, n) matrix ``R`` with ``R @ d_projected ≈ d_unprojected`` (module docstring).

    Parameters
    ----------
    projs : list of mne.Projection | ndarray
        The recording's projectors (an (n, n) projector in ``ch_names`` order is accepted).
    gain : ndarray, shape (n_channels, n_sources, 3) or (n_channels, n_columns)
        The forward of ``ch_names``.
    ch_names : list of str
    channel_scale : ndarray, shape (n_channels,)
        Typical amplitude per channel (e.g. a model's ``channel_scale``), so that magnetometers
        and gradiometers weigh alike.
    snr : float
        Signal-to-noise power ratio assumed for the restoration (10: 10 dB).

    Returns
    -------
    ndarray | None
        None when the projectors remove nothing on these channels.
    """
    p = ssp_projector(projs, ch_names)
    if p is None:
        return None
    n = len(ch_names)
    if np.allclose(p, np.eye(n), atol=1e-10):
        return None
    scale = np.asarray(channel_scale, float)
    g = np.asarray(gain, float).reshape(n, -1) / scale[:, None]
    s = g @ g.T
    s *= n / np.trace(s)  # signal covariance of the scaled channels, mean variance 1
    c = s + np.eye(n) / float(snr)  # + the noise: what the net was trained on
    p_scaled = p * (1.0 / scale)[:, None] * scale[None, :]  # the projector on scaled channels
    obs = p_scaled @ c @ p_scaled.T
    gain_matrix = c @ p_scaled.T @ np.linalg.pinv(obs, rcond=1e-10, hermitian=True)
    return scale[:, None] * gain_matrix / scale[None, :]


def field_mapping_matrix(gain_from: np.ndarray, gain_to: np.ndarray, scale_from: np.ndarray,
                         scale_to: np.ndarray, *, snr: float = 10.0) -> np.ndarray:
    """The (n_to, n_from) matrix that maps data of one sensor geometry to the field another
    geometry would have measured, through a source space both gains share (minimum-norm field
    mapping; the same Gaussian conditional as :func:`restoration_matrix`):

        M = G_to G_from^T (G_from G_from^T + I / snr')^+,

    on channels scaled per type, ``snr'`` making the noise ``1 / snr`` of the mean signal
    variance. Used to read a recording made at one head position with a net trained at another
    (:func:`deepesi.inverse.helmet.bind_meg_recording`).

    Parameters
    ----------
    gain_from, gain_to : ndarray, shape (n_from, ...) and (n_to, ...)
        Gains of the same sources (the trailing dimensions flattened, in the same order).
    scale_from, scale_to : ndarray
        Typical amplitude per channel (per type) of each geometry.
    snr : float
        Signal-to-noise power ratio assumed.
    """
    n_from, n_to = len(gain_from), len(gain_to)
    a = np.asarray(gain_from, float).reshape(n_from, -1) / np.asarray(scale_from, float)[:, None]
    b = np.asarray(gain_to, float).reshape(n_to, -1) / np.asarray(scale_to, float)[:, None]
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two gains have {a.shape[1]} and {b.shape[1]} source columns; "
                         "they must share the source space.")
    norm = n_from / np.einsum("ij,ij->", a, a)  # mean signal variance 1 on the 'from' side
    cov = norm * (a @ a.T) + np.eye(n_from) / float(snr)
    m = norm * (b @ a.T) @ np.linalg.inv(cov)
    return np.asarray(scale_to, float)[:, None] * m / np.asarray(scale_from, float)[None, :]


class MappedInputModel:
    """A network that reads its data through a linear map: ``predict(data)`` →
    ``base.predict(matrix @ data)`` (an SSP restoration, :func:`restoration_matrix`; a field
    mapping, :func:`field_mapping_matrix`; or both, multiplied). Everything else (channels,
    source space, Info, ...) is the base model's.

    Parameters
    ----------
    base : TrainedModel
    matrix : ndarray, shape (n_channels, n_channels)
        Rows and columns in the order of ``base.ch_names``.
    """

    def __init__(self, base: Any, matrix: np.ndarray) -> None:
        self.base = base
        self.matrix = np.asarray(matrix, float)
        n = len(base.ch_names)
        if self.matrix.shape != (n, n):
            raise ValueError(f"restoration matrix must be ({n}, {n}), got {self.matrix.shape}.")

    def __getattr__(self, name: str) -> Any:  # ch_names, source_space, info, ... of the net
        if name in ("base", "matrix"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def predict(self, data: np.ndarray, *, ch_names: list[str] | None = None,
                **kwargs: Any) -> np.ndarray:
        data = np.asarray(data, float)
        if ch_names is not None:
            data = data[[list(ch_names).index(c) for c in self.base.ch_names]]
        return self.base.predict(self.matrix @ data, **kwargs)

    def __repr__(self) -> str:
        return f"<MappedInputModel of {self.base!r}>"
