"""Analytic EEG of a current dipole in a multi-shell sphere, voxelised spheres, and error metrics.

The potential on the outer surface of ``N`` concentric shells (piecewise constant isotropic
conductivity, source in the innermost shell) is the Legendre series of de Munck & Peters (1993) /
Zhang (1995): in each shell the degree-``n`` part of the potential is ``(a_k r^n + b_k r^-(n+1))
Y_n``; the source fixes ``b_1``, continuity of potential and normal current fixes the rest, and
the outer surface carries no current. The coefficients are propagated shell by shell with 2x2
transfer matrices, written in radius-scaled variables so that no power of a radius in metres
appears. The series is summed until its terms fall below ``tol`` relative to the largest
partial sum (geometric convergence with ratio ``r0 / R_outer``).

References
----------
de Munck J.C., Peters M.J. (1993) IEEE TBME 40:1166-1174.
Zhang Z. (1995) Phys. Med. Biol. 40:335-349.
Mosher J.C., Leahy R.M., Lewis P.S. (1999) IEEE TBME 46:245-259.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import check_finite
from ..anatomy.headmodel import HeadModel
from ..anatomy.tissues import TissueTable

#: The validation sphere of deepesi's FEM benchmark: radii (m) and conductivities (S/m),
#: outermost first (scalp, skull, CSF, brain).
FOUR_SHELL_RADII_M = (0.092, 0.086, 0.080, 0.078)
FOUR_SHELL_SIGMA = (0.43, 0.01, 1.79, 0.33)
#: CHARM labels used for the four shells (scalp, bone, CSF, GM).
FOUR_SHELL_LABELS = (5, 4, 3, 2)

_MAX_TERMS = 3000


def _check_shells(radii: Sequence[float], sigmas: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    radii = np.asarray(radii, dtype=float).ravel()
    sigmas = np.asarray(sigmas, dtype=float).ravel()
    if radii.size == 0 or radii.shape != sigmas.shape:
        raise ValueError(
            f"radii and conductivities must be non-empty and of equal length, got {radii.size} "
            f"radii and {sigmas.size} conductivities."
        )
    check_finite(radii, "sphere radii")
    check_finite(sigmas, "sphere conductivities")
    if np.any(radii <= 0) or np.any(np.diff(radii) >= 0):
        raise ValueError(
            "radii must be positive and strictly decreasing (outermost first), got "
            f"{radii.tolist()}."
        )
    if np.any(sigmas <= 0):
        raise ValueError(f"conductivities must be > 0 S/m, got {sigmas.tolist()}.")
    return radii, sigmas


def shell_coefficients(
    n_max: int, radii: Sequence[float], sigmas: Sequence[float]
) -> np.ndarray:
    """Surface-potential factors ``g_n`` (n = 1..n_max) of a multi-shell sphere.

    For a source in the innermost shell (radius ``R_1``, conductivity ``s_1``) the surface
    potential is ``1/(4 pi s_1 R_1^2) sum_n g_n (r0/R_1)^(n-1) Y_n``; for a single homogeneous
    sphere ``g_n = (2n+1)/n``.

    Parameters
    ----------
    n_max : int
        Highest degree.
    radii, sigmas : sequence of float
        Shell radii (m) and conductivities (S/m), outermost first.

    Returns
    -------
    g : ndarray, shape (n_max,)
    """
    radii, sigmas = _check_shells(radii, sigmas)
    r_in = radii[::-1]  # innermost first
    s_in = sigmas[::-1]
    n = np.arange(1, n_max + 1, dtype=float)
    # state (x, y) = (a R^n, b R^-(n+1)) at the current interface, for the two basis starts
    x = np.stack([np.ones_like(n), np.zeros_like(n)])  # basis (1, 0): reflected part
    y = np.stack([np.zeros_like(n), np.ones_like(n)])  # basis (0, 1): source part
    for k in range(len(r_in) - 1):
        pot = x + y
        flux = s_in[k] * (n * x - (n + 1) * y) / s_in[k + 1]
        x = ((n + 1) * pot + flux) / (2 * n + 1)
        y = (n * pot - flux) / (2 * n + 1)
        ratio = r_in[k + 1] / r_in[k]
        x = x * ratio**n
        y = y * ratio ** (-(n + 1))
    # outer surface: n x - (n+1) y = 0 fixes the reflected amplitude alpha
    cond = n * x - (n + 1) * y
    alpha = -cond[1] / cond[0]
    return (x[0] + y[0]) * alpha + (x[1] + y[1])


def _legendre_terms(
    u: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``sum_n w_n n P_n(u)`` and ``sum_n w_n P_n'(u)`` for n = 1..len(weights)."""
    p_prev = np.ones_like(u)  # P_0
    p = u.copy()  # P_1
    dp_prev = np.zeros_like(u)  # P_0'
    dp = np.ones_like(u)  # P_1'
    s_p = np.zeros_like(u)
    s_dp = np.zeros_like(u)
    n_max = weights.shape[0]
    for n in range(1, n_max + 1):
        w = weights[n - 1]
        s_p += w * n * p
        s_dp += w * dp
        # advance to n+1
        p_next = ((2 * n + 1) * u * p - n * p_prev) / (n + 1)
        dp_next = dp_prev + (2 * n + 1) * p
        p_prev, p = p, p_next
        dp_prev, dp = dp, dp_next
    return s_p, s_dp


def sphere_potential(
    dipole_pos: np.ndarray,
    dipole_moment: np.ndarray,
    electrodes: np.ndarray,
    radii: Sequence[float] = FOUR_SHELL_RADII_M,
    sigmas: Sequence[float] = FOUR_SHELL_SIGMA,
    *,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    tol: float = 1e-10,
) -> np.ndarray:
    """Potential (V) on the outer sphere surface of current dipoles in a multi-shell sphere.

    Parameters
    ----------
    dipole_pos : ndarray, shape (n_dip, 3)
        Dipole positions (m); each must lie inside the innermost shell.
    dipole_moment : ndarray, shape (n_dip, 3)
        Dipole moments (A·m).
    electrodes : ndarray, shape (n_el, 3)
        Measurement points (m). They are projected radially onto the outer surface.
    radii, sigmas : sequence of float
        Shell radii (m) and conductivities (S/m), outermost first. Default: the 4-shell
        validation sphere (92/86/80/78 mm; 0.43/0.01/1.79/0.33 S/m).
    center : sequence of 3 float
        Sphere centre (m).
    tol : float
        Series truncation: stop when ``(r0/R_outer)^n`` times the degree growth falls below
        ``tol`` for the most eccentric dipole.

    Returns
    -------
    v : ndarray, shape (n_el, n_dip)
        Potential in volts against infinity (no re-referencing).
    """
    radii, sigmas = _check_shells(radii, sigmas)
    center = np.asarray(center, dtype=float).reshape(3)
    pos = check_finite(np.atleast_2d(np.asarray(dipole_pos, float)), "dipole positions") - center
    mom = check_finite(np.atleast_2d(np.asarray(dipole_moment, float)), "dipole moments")
    el = check_finite(np.atleast_2d(np.asarray(electrodes, float)), "electrode positions") - center
    if pos.shape[1] != 3 or mom.shape != pos.shape or el.shape[1] != 3:
        raise ValueError(
            f"dipole_pos and dipole_moment must both be (n, 3) and electrodes (m, 3); got "
            f"{pos.shape}, {mom.shape}, {el.shape}."
        )
    r0 = np.linalg.norm(pos, axis=1)
    r_inner = radii[-1]
    if np.any(r0 >= r_inner):
        bad = int(np.argmax(r0 >= r_inner))
        raise ValueError(
            f"dipole {bad} is at radius {r0[bad] * 1e3:.2f} mm, not inside the innermost shell "
            f"(radius {r_inner * 1e3:.2f} mm)."
        )
    r_el = np.linalg.norm(el, axis=1)
    if np.any(r_el == 0):
        raise ValueError("an electrode is at the sphere centre; electrodes must be on the surface.")
    e_hat = el / r_el[:, None]
    safe_r0 = np.where(r0 > 0, r0, 1.0)
    d_hat = np.where(r0[:, None] > 0, pos / safe_r0[:, None], np.array([0.0, 0.0, 1.0]))

    t_max = float(r0.max() / radii[0])
    if t_max == 0:
        n_max = 1
    else:
        cand = np.arange(1, _MAX_TERMS + 1)
        ok = cand * np.log(t_max) + 2 * np.log(cand) < np.log(tol)
        ok &= cand > 2
        if not ok.any():
            raise ValueError(
                f"the series does not converge within {_MAX_TERMS} terms for a dipole at "
                f"{t_max:.4f} of the outer radius; move it away from the surface."
            )
        n_max = int(cand[np.argmax(ok)])
    g = shell_coefficients(n_max, radii, sigmas)
    t = r0 / r_inner  # (n_dip,)
    degrees = np.arange(n_max)  # exponent n-1
    weights = g[:, None, None] * (t[None, None, :] ** degrees[:, None, None])  # (n, 1, n_dip)

    u = np.clip(e_hat @ d_hat.T, -1.0, 1.0)  # (n_el, n_dip)
    a = (mom * d_hat).sum(axis=1)[None, :]  # q.r0_hat
    b = e_hat @ mom.T  # q.r_hat
    s_p, s_dp = _legendre_terms(u, weights)
    return (s_p * a + s_dp * (b - u * a)) / (4 * np.pi * sigmas[-1] * r_inner**2)


def homogeneous_sphere_potential(
    dipole_pos: np.ndarray, dipole_moment: np.ndarray, electrodes: np.ndarray,
    radius: float, sigma: float,
) -> np.ndarray:
    """Closed-form surface potential (V) of dipoles in a homogeneous sphere, shape (n_el, n_dip).

    Summing the Legendre series with the generating function ``1/D = sum t^n P_n(u)``,
    ``D = sqrt(1 - 2 u t + t^2)``, ``t = r0/R`` gives

    ``V = [a ((1-t^2)/D^3 - 1) + (b - u a)(2t/D^3 + ((t-u)/D + u)/(1-u^2))] / (4 pi sigma R^2 t)``

    with ``a = q.r0_hat`` and ``b = q.r_hat``. It is an independent check of the series
    (singular for ``u = +-1`` and ``t = 0``, which callers avoid).
    """
    pos = np.atleast_2d(np.asarray(dipole_pos, float))
    mom = np.atleast_2d(np.asarray(dipole_moment, float))
    el = np.atleast_2d(np.asarray(electrodes, float))
    r0 = np.linalg.norm(pos, axis=1)
    d_hat = pos / r0[:, None]
    e_hat = el / np.linalg.norm(el, axis=1)[:, None]
    t = (r0 / radius)[None, :]
    u = e_hat @ d_hat.T
    a = (mom * d_hat).sum(axis=1)[None, :]
    b = e_hat @ mom.T
    dd = np.sqrt(1 - 2 * u * t + t**2)
    term1 = a * ((1 - t**2) / dd**3 - 1)
    term2 = (b - u * a) * (2 * t / dd**3 + ((t - u) / dd + u) / (1 - u**2))
    return (term1 + term2) / (4 * np.pi * sigma * radius**2 * t)


# ---------------------------------------------------------------------- metrics
def rdm(numeric: np.ndarray, reference: np.ndarray, axis: int = 0) -> np.ndarray:
    """Relative difference measure ``|| u/||u|| - v/||v|| ||`` (0 = same topography, max 2).

    Both inputs are average-referenced along ``axis`` first.
    """
    u = np.asarray(numeric, float)
    v = np.asarray(reference, float)
    u = u - u.mean(axis=axis, keepdims=True)
    v = v - v.mean(axis=axis, keepdims=True)
    un = u / np.linalg.norm(u, axis=axis, keepdims=True)
    vn = v / np.linalg.norm(v, axis=axis, keepdims=True)
    return np.linalg.norm(un - vn, axis=axis)


def mag(numeric: np.ndarray, reference: np.ndarray, axis: int = 0) -> np.ndarray:
    """Magnitude ratio ``||u|| / ||v||`` (1 = same amplitude) after average referencing."""
    u = np.asarray(numeric, float)
    v = np.asarray(reference, float)
    u = u - u.mean(axis=axis, keepdims=True)
    v = v - v.mean(axis=axis, keepdims=True)
    return np.linalg.norm(u, axis=axis) / np.linalg.norm(v, axis=axis)


# ---------------------------------------------------------------------- geometry helpers
def fibonacci_sphere_points(n: int, radius: float, *, upper_only: bool = False) -> np.ndarray:
    """``n`` nearly uniform points on a sphere of ``radius`` (m) centred at 0, shape (n, 3).

    With ``upper_only`` the points cover the cap ``z > -0.2 R`` as an EEG cap would.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    i = np.arange(n) + 0.5
    z_lo = -0.2 if upper_only else -1.0
    z = 1 - (1 - z_lo) * i / n
    phi = np.pi * (1 + 5**0.5) * i
    rho = np.sqrt(1 - z**2)
    return radius * np.column_stack([rho * np.cos(phi), rho * np.sin(phi), z])


def make_sphere_head(
    voxel_mm: float = 2.0,
    radii_m: Sequence[float] = FOUR_SHELL_RADII_M,
    sigmas: Sequence[float] = FOUR_SHELL_SIGMA,
    labels: Sequence[int] = FOUR_SHELL_LABELS,
    *,
    margin_vox: int = 2,
    name: str = "sphere",
) -> HeadModel:
    """Voxelise concentric spheres into a :class:`~deepesi.anatomy.HeadModel` centred at 0.

    A voxel gets the label of the innermost shell that contains its centre. Conductivities
    enter through the CHARM :class:`~deepesi.anatomy.TissueTable` with overrides for the
    labels used, so the head behaves like any other head model.

    Parameters
    ----------
    voxel_mm : float
        Voxel edge (mm).
    radii_m, sigmas : sequence of float
        Radii (m) and conductivities (S/m), outermost first.
    labels : sequence of int
        CHARM label of each shell, outermost first (default scalp, bone, CSF, GM).
    margin_vox : int
        Air voxels around the outer sphere.
    name : str
        Head model name.
    """
    radii, sig = _check_shells(radii_m, sigmas)
    labels = [int(x) for x in labels]
    if len(labels) != radii.size:
        raise ValueError(f"need one label per shell ({radii.size}), got {len(labels)}.")
    if not voxel_mm > 0:
        raise ValueError(f"voxel_mm must be > 0, got {voxel_mm}.")
    h = float(voxel_mm)
    n = int(np.ceil(2 * radii[0] * 1e3 / h)) + 2 * margin_vox
    centres = (np.arange(n) - (n - 1) / 2.0) * h  # mm
    vol = np.zeros((n, n, n), np.uint8)
    r2 = centres[:, None, None] ** 2 + centres[None, :, None] ** 2 + centres[None, None, :] ** 2
    for rad, lab in zip(radii * 1e3, labels, strict=True):
        vol[r2 <= rad**2] = lab
    affine = np.diag([h, h, h, 1.0])
    affine[:3, 3] = centres[0]
    table = TissueTable.charm().with_conductivities(dict(zip(labels, sig.tolist(), strict=True)))
    meta = {
        "reader": "deepesi.forward.sphere.make_sphere_head",
        "radii_m": radii.tolist(),
        "conductivities": sig.tolist(),
        "labels": labels,
    }
    return HeadModel(vol, affine, table, name=name, meta=meta)
