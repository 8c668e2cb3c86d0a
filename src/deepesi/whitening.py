"""Noise whitening of sensor data: one definition for the simulator, the networks and benchmarks.

A noise covariance ``C`` (channels × channels, SI units²) is matched to a channel list, loaded on
its diagonal per sensor type (``reg`` × that type's mean noise variance, as MNE's
``mne.cov.regularize`` does with its default 0.1), projected like the data (average reference
for EEG, and by the data's SSP projectors when it has them) and turned into the symmetric ("ZCA")
whitener

    W = U diag(λ⁻½) Uᵀ D P   over the eigenpairs (λ, U) of (D P D⁻¹)(D C D)(D P D⁻¹)ᵀ with
                             λ > rtol · λmax, D = diag(1 / RMS noise of the channel's type),

so ``W x`` has unit noise variance in every direction the data can have, zero in the projected-out
ones, and **row i of W x is still channel i** (a spatially sharpened version of it). The scaling
D keeps EEG (V²) and MEG (T²) on one numerical footing: without it their eigenvalues differ by
~10¹⁵ and every MEG direction would fall under ``rtol``. Networks need
that: their input layer draws topographic images from channel positions. MNE's ``pca=True`` form
``diag(λ⁻½) Uᵀ`` has the same norms (it differs by the rotation U) and is what the classical
methods use; SNRs computed with either are identical.

Whitening is what makes magnetometers (fT), gradiometers (fT/cm) and EEG (µV) commensurate: at a
whitened SNR of 10 dB on the MNE sample recording, the raw gradiometer SNR is −3 dB, since the
covariance's condition number is 10⁶ (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Diagonal loading per sensor type, as a fraction of that type's mean noise variance.
DEFAULT_REG = 0.1


def noise_cov_matrix(cov, ch_names: Sequence[str]) -> np.ndarray:
    """The noise covariance on ``ch_names``, in that order, as a checked (n, n) float array.

    Parameters
    ----------
    cov : mne.Covariance | ndarray
        An ``mne.Covariance`` (channels matched by name; diagonal ones expanded) or an (n, n)
        array already in ``ch_names`` order.
    ch_names : sequence of str

    Returns
    -------
    ndarray, shape (n, n)
        Symmetric positive semi-definite.
    """
    ch_names = list(ch_names)
    if hasattr(cov, "ch_names") and hasattr(cov, "data"):
        names = list(cov.ch_names)
        missing = [n for n in ch_names if n not in names]
        if missing:
            raise ValueError(
                f"noise_cov lacks {len(missing)} of the {len(ch_names)} channel(s), e.g. "
                f"{missing[:5]}; compute it on the same channels (mne.compute_covariance on a "
                "baseline or empty-room recording with these sensors)."
            )
        idx = [names.index(n) for n in ch_names]
        c = np.asarray(cov.data, dtype=float)
        c = np.diag(c) if c.ndim == 1 else c
        c = c[np.ix_(idx, idx)]
    else:
        c = np.asarray(cov, dtype=float)
        if c.shape != (len(ch_names),) * 2:
            raise ValueError(
                f"noise_cov array must be ({len(ch_names)},)*2 in the lead field's channel "
                f"order, got {c.shape}."
            )
    if not np.isfinite(c).all():
        raise ValueError("noise_cov contains NaN/Inf.")
    if not np.allclose(c, c.T, rtol=1e-6, atol=0):
        raise ValueError("noise_cov must be symmetric.")
    evals = np.linalg.eigvalsh(c)
    if evals.min() < -1e-6 * max(evals.max(), 0):
        raise ValueError("noise_cov must be positive semi-definite.")
    return 0.5 * (c + c.T)


def regularize_cov(c: np.ndarray, ch_types: Sequence[str], reg: float = DEFAULT_REG) -> np.ndarray:
    """``c`` with ``reg`` × (mean diagonal of each sensor type) added to that type's diagonal.

    Makes a rank-deficient covariance (SSP projectors, few samples) invertible without changing
    the well-estimated directions much; 0 returns ``c`` unchanged.
    """
    if not (np.isfinite(reg) and reg >= 0):
        raise ValueError(f"reg must be >= 0, got {reg!r}.")
    types = np.asarray(list(ch_types))
    if len(types) != len(c):
        raise ValueError(f"{len(types)} channel types for a {len(c)}-channel covariance.")
    out = np.array(c, dtype=float, copy=True)
    for t in dict.fromkeys(types.tolist()):
        idx = np.flatnonzero(types == t)
        out[idx, idx] += reg * float(np.mean(np.diag(c)[idx]))
    return out


def reference_projector(ch_types: Sequence[str], average_reference: bool = True) -> np.ndarray:
    """(n, n) projector of the data's reference: the EEG rows re-referenced to their average
    (identity on the other channels, and everywhere if ``average_reference`` is False)."""
    types = np.asarray(list(ch_types))
    proj = np.eye(len(types))
    eeg = np.flatnonzero(types == "eeg")
    if average_reference and len(eeg):
        proj[np.ix_(eeg, eeg)] -= 1.0 / len(eeg)
    return proj


def ssp_projector(projs, ch_names: Sequence[str]) -> np.ndarray | None:
    """(n, n) projector that removes SSP vectors from data on ``ch_names`` (MNE's own projector).

    Parameters
    ----------
    projs : list of mne.Projection | ndarray | None
        Signal-space projection vectors (e.g. ``raw.info['projs']``, active or not; an
        average-reference projector among them is harmless), or a ready (n, n) projector in
        ``ch_names`` order.
    ch_names : sequence of str

    Returns
    -------
    ndarray, shape (n, n) | None
        None when there is nothing to project (no vectors, or none on these channels).
    """
    ch_names = list(ch_names)
    if projs is None:
        return None
    if isinstance(projs, np.ndarray):
        p = np.asarray(projs, dtype=float)
        if p.shape != (len(ch_names),) * 2 or not np.isfinite(p).all():
            raise ValueError(
                f"an SSP projector array must be finite and ({len(ch_names)},)*2 in the lead "
                f"field's channel order, got shape {p.shape}."
            )
        if not np.allclose(p @ p, p, atol=1e-8):
            raise ValueError("the SSP projector array is not a projector (P @ P != P).")
        return p
    import mne

    projs = list(projs)
    bad = [type(q).__name__ for q in projs if not isinstance(q, mne.Projection)]
    if bad:
        raise TypeError(
            f"projs must be mne.Projection objects (e.g. info['projs']) or an array, got {bad}."
        )
    vectors = []
    for q in projs:
        cols = list(q["data"]["col_names"])
        idx = np.array([cols.index(n) if n in cols else -1 for n in ch_names])
        for row in np.atleast_2d(np.asarray(q["data"]["data"], dtype=float)):
            v = np.where(idx >= 0, row[np.maximum(idx, 0)], 0.0)  # the vector on our channels
            norm = np.linalg.norm(v)
            if norm > 0:
                vectors.append(v / norm)
    if not vectors:
        return None
    # an orthonormal basis of the vectors' span (near-duplicates dropped, as MNE does)
    u, sv, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    u = u[:, sv > 1e-2 * sv[0]]
    return np.eye(len(ch_names)) - u @ u.T


def zca_whitener(
    c: np.ndarray,
    proj: np.ndarray | None = None,
    rtol: float = 1e-10,
    ch_types: Sequence[str] | None = None,
) -> np.ndarray:
    """Whitener (n, n) of the covariance ``proj @ c @ proj.T`` (see the module text).

    Eigen-directions with eigenvalue below ``rtol`` × the largest (the average reference's null
    direction, SSP-projected ones) get weight 0. With ``ch_types``, every channel is first
    divided by the RMS noise of its type (``D``), the symmetric whitener ``W_s`` is computed in
    those units and ``W = W_s D`` is returned: without it, EEG (V², ~1e-11) and MEG (T², ~1e-26)
    eigenvalues are 15 orders of magnitude apart and the MEG directions would fall under
    ``rtol``. ``W`` then whitens exactly as well (``W P C Pᵀ Wᵀ`` is the identity on the data's
    space, ``W P = W``) and row i of ``W x`` is still channel i (of the type-scaled data).
    """
    c = np.asarray(c, dtype=float)
    scale = np.ones(len(c))
    if ch_types is not None:
        types = np.asarray(list(ch_types))
        if len(types) != len(c):
            raise ValueError(f"{len(types)} channel types for a {len(c)}-channel covariance.")
        diag = np.diag(c)
        for t in dict.fromkeys(types.tolist()):
            idx = types == t
            rms = float(np.sqrt(np.mean(diag[idx])))
            scale[idx] = rms if rms > 0 else 1.0
    d = 1.0 / scale
    c = c * np.outer(d, d)
    if proj is not None:
        p = np.asarray(proj, dtype=float) * np.outer(d, scale)  # D P D⁻¹: P on scaled data
        c = p @ c @ p.T
    evals, evecs = np.linalg.eigh(0.5 * (c + c.T))
    if not evals.max() > 0:
        raise ValueError("the noise covariance is zero; it cannot whiten anything.")
    keep = evals > rtol * evals.max()
    u = evecs[:, keep]
    w = ((u / np.sqrt(evals[keep])) @ u.T) * d[None, :]
    # W P: the projected-out directions get weight 0 also when P is oblique in scaled units
    # (an SSP over magnetometers and gradiometers)
    return w if proj is None else w @ np.asarray(proj, dtype=float)


def make_whitener(
    cov,
    ch_names: Sequence[str],
    ch_types: Sequence[str],
    *,
    average_reference: bool = True,
    reg: float = DEFAULT_REG,
    projector: np.ndarray | None = None,
) -> np.ndarray:
    """Whitener (n, n) for data on ``ch_names`` from a noise covariance.

    Parameters
    ----------
    cov : mne.Covariance | ndarray
        Noise covariance (see :func:`noise_cov_matrix`).
    ch_names, ch_types : sequence of str
        The data's channels, in row order.
    average_reference : bool
        The data's EEG is average-referenced (its covariance is projected the same way).
    reg : float
        Diagonal loading per sensor type (:func:`regularize_cov`).
    projector : ndarray, shape (n, n) | None
        The data's SSP projector (:func:`ssp_projector`), applied after the reference.

    Returns
    -------
    ndarray, shape (n, n)
        ``W`` with ``W P C Pᵀ Wᵀ`` the identity on the data's space and ``W P = W``: it also
        removes what the projectors remove. Computed per-type scaled (see :func:`zca_whitener`),
        so EEG+MEG keep all their directions.
    """
    c = regularize_cov(noise_cov_matrix(cov, ch_names), ch_types, reg)
    proj = reference_projector(ch_types, average_reference)
    if projector is not None:
        proj = np.asarray(projector, dtype=float) @ proj
    return zca_whitener(c, proj, ch_types=ch_types)


def only_rereferences(projs, ch_names: Sequence[str], ch_types: Sequence[str]) -> bool:
    """True when the projectors remove nothing but what the average EEG reference removes.

    By the algebra, not the description: with ``P`` their projector on ``ch_names`` and ``R``
    the average reference (:func:`reference_projector`), ``P R = R``. Nothing to project counts
    as True.
    """
    p = ssp_projector(projs, ch_names)
    if p is None:
        return True
    ref = reference_projector(list(ch_types))
    return bool(np.allclose(p @ ref, ref, atol=1e-6))


def has_average_reference(info) -> bool:
    """Whether ``info`` has an average-EEG-reference projector (active or not).

    A projector counts when, on the EEG channels, it is the average reference exactly (its
    vectors span the all-ones vector and nothing else), whatever its description says. False
    when ``info`` has no EEG channel.
    """
    import mne

    picks = mne.pick_types(info, meg=False, eeg=True, exclude=[])
    if len(picks) == 0:
        return False
    eeg = [info["ch_names"][i] for i in picks]
    ref = reference_projector(["eeg"] * len(eeg))
    for q in info["projs"]:
        p = ssp_projector([q], eeg)
        if p is not None and np.allclose(p, ref, atol=1e-6):
            return True
    return False
