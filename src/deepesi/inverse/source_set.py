"""A set of sources, not one map: find the strongest, explain it away with the forward, repeat.

A map (a network's or any method's) says where activity is likely; users want the sources
themselves: how many, where (not quantised to the grid), how strong. :func:`fit_source_set`
turns a map into that list on the whitened data:

1. **Propose** candidate points: the peaks of the proposal map (for a network, its map of the
   *residual* data, so a source already explained no longer hides a weaker one), and the best
   grid point of a single-dipole scan of the residual.
2. **Choose** the candidate whose dipole, fitted jointly with the sources found so far
   (free orientation, least-squares moments), explains the data best, and re-place every
   source by alternating projection (each in turn moves to the grid point that best explains
   what the others leave). A second search takes the proposal's K strongest peaks together.
3. **Refine off the grid**, once, the chosen set: every source's position moves continuously
   (one source at a time with the others projected out: a 3×3×3 lattice around it evaluated
   at once, a quadratic fitted to the explained energies, its maximum the next centre, the
   lattice halved five times from half a grid step), the gain at any position interpolated
   from the grid by a moving least-squares quadratic (:class:`LocalGain`).

Speed: each point's gain is orthonormalised once, so a scan of the whole grid is one float32
matrix product and a 3×3 adjugate per point; every set of other sources is scanned once per
fit (the two paths and the rounds of alternating projection ask for the same sets again).
4. **Count** (on the grid, before step 3): stop when the next source does not pay for
   itself: on whitened data (unit noise variance per channel and sample) the residual energy
   must drop by more than
   ``penalty·(3 + n_orient·n_times) + 2·ln(n_grid)`` (an information criterion: 2 per
   parameter as Akaike's, plus the search over the grid) and by at least ``min_gain`` of the
   data's energy. Measured on simulations under a realistic forward mismatch (EEG-64, 20
   samples): a spurious extra source absorbs 5-14 % of the noise energy (the mismatch adds
   little: the first dipole's position absorbs it), a real second source at 5-10 dB explains
   12-60 % of it and more; Bayes' criterion (``ln(n_w·n_times)`` ≈ 7 per parameter) rejected
   half of the real second sources.

The result is a :class:`SourceSet`: positions (m, the source space's frame), moments (A·m),
each source's share of the fit, and the order criterion, as a table or an :class:`mne.Dipole`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .offgrid import LocalGain, _refine_positions
from .peaks import find_peaks
from .scan import _fit, _Scanner

__all__ = ["FittedSource", "LocalGain", "SourceSet", "SourceSetFitter", "effective_samples",
           "equivalent_extent_mm", "fit_source_set", "network_proposal",
           "signal_subspace_dimension"]

#: 99th percentile of the Tracy-Widom law of order 1 (real data; Tracy & Widom 1996).
TW_99 = 2.02
#: Share of the price a source within the data's signal-subspace dimension pays.
SUBSPACE_PRICE = 0.3
#: Candidate peaks taken from each proposal map.
N_CANDIDATES = 6
#: The network's proposal reads the residual at this many of its strongest samples.
PROPOSAL_SAMPLES = 4
#: Typical moment densities that turn a fitted moment into an equivalent extent: the geometric
#: means of the simulator's ranges (docs/network.md), cortex 0.5 nA·m/mm² (A·m/m²), deep
#: structures 0.05 nA·m/mm³ (A·m/m³).
CORTICAL_DENSITY = 0.5e-3
DEEP_DENSITY = 0.05


def equivalent_extent_mm(amplitude: float, deep: bool, *,
                         cortical_density: float = CORTICAL_DENSITY,
                         deep_density: float = DEEP_DENSITY) -> float:
    """Radius (mm) of the cortical disc, or deep-structure ball, whose moment at a typical
    density is ``amplitude`` (A·m).

    The data's topography says little about a source's extent (a 5-20 mm patch and a dipole
    give nearly the same field: ``benchmarks/extent_information.py``); its moment says how
    much tissue is needed at a given current density (area = moment / density). The answer is
    only as good as the density: a factor 2 in density is a factor √2 in a cortical radius.

    Parameters
    ----------
    amplitude : float
        Moment (A·m).
    deep : bool
        A deep-structure source (a ball at ``deep_density``) or a cortical one (a disc at
        ``cortical_density``).
    cortical_density, deep_density : float
        Moment per cortical area (A·m/m²) and per deep volume (A·m/m³).

    Returns
    -------
    float
    """
    if not np.isfinite(amplitude) or amplitude < 0:
        raise ValueError(f"amplitude must be a finite moment >= 0 (A·m), got {amplitude!r}.")
    if deep:
        return 1e3 * float(np.cbrt(3.0 * amplitude / (4.0 * np.pi * deep_density)))
    return 1e3 * float(np.sqrt(amplitude / (np.pi * cortical_density)))


@dataclass
class FittedSource:
    """One source of a :class:`SourceSet`.

    Attributes
    ----------
    position : ndarray, shape (3,)
        Metres, in the source space's frame (MRI for deepesi's source spaces); off the grid.
    moment : ndarray, shape (n_orient, n_times)
        Dipole moment (A·m) in the gain's orientation basis, per fitted time sample.
    grid_index : int
        The nearest grid point (region, compartment).
    seed : str
        What proposed it: 'map' (the proposal map's peak) or 'scan' (the residual's best dipole).
    gof_share : float
        Fraction of the data's energy lost when this source is left out and the others refitted.
    """

    position: np.ndarray
    moment: np.ndarray
    grid_index: int
    seed: str
    gof_share: float = 0.0

    @property
    def amplitude(self) -> float:
        """RMS over time of the moment's norm (A·m)."""
        return float(np.sqrt(np.mean(np.sum(self.moment**2, axis=0))))

    @property
    def orientation(self) -> np.ndarray:
        """Unit vector of the moment's principal direction (n_orient,)."""
        u, _, _ = np.linalg.svd(np.atleast_2d(self.moment), full_matrices=False)
        v = u[:, 0]
        return v * np.sign(v[np.argmax(np.abs(v))])


@dataclass
class SourceSet:
    """The sources :func:`fit_source_set` found, strongest first.

    Attributes
    ----------
    sources : list of FittedSource
        The sources.
    gof : float
        Fraction of the whitened data's energy the sources explain together.
    criterion : list of dict
        One row per tried order: ``n_sources``, ``rss`` (whitened residual energy), ``gain``,
        ``penalty``, ``accepted``.
    region_names : list of str
        Region of each source (its nearest grid point).
    is_subcortical : list of bool
        Deep structure or not, per source.
    """

    sources: list[FittedSource]
    gof: float
    criterion: list[dict] = field(default_factory=list)
    region_names: list[str] = field(default_factory=list)
    is_subcortical: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def positions(self) -> np.ndarray:
        """(n, 3) positions in metres."""
        return np.array([s.position for s in self.sources]).reshape(-1, 3)

    def to_table(self) -> list[dict]:
        """One JSON-ready row per source: position (mm), amplitude (nA·m), equivalent extent
        (mm, :func:`equivalent_extent_mm`), orientation, share of the fit, region, compartment,
        seed."""
        rows = []
        for i, s in enumerate(self.sources):
            deep = bool(self.is_subcortical[i]) if i < len(self.is_subcortical) else False
            rows.append({
                "source": i + 1,
                "x_mm": round(float(s.position[0] * 1e3), 2),
                "y_mm": round(float(s.position[1] * 1e3), 2),
                "z_mm": round(float(s.position[2] * 1e3), 2),
                "amplitude_nAm": round(s.amplitude * 1e9, 3),
                "extent_mm": round(equivalent_extent_mm(s.amplitude, deep), 1),
                "orientation": [round(float(v), 4) for v in s.orientation],
                "gof_share": round(float(s.gof_share), 4),
                "region": self.region_names[i] if i < len(self.region_names) else "",
                "deep": deep,
                "seed": s.seed,
            })
        return rows

    def to_tsv(self) -> str:
        """The table as tab-separated text."""
        return sources_tsv(self.to_table())

    def to_dict(self) -> dict:
        """JSON-ready summary (the table, the fit, the order criterion)."""
        return {"n_sources": len(self), "gof": float(self.gof), "sources": self.to_table(),
                "criterion": self.criterion}

    def to_dipole(self, time: float = 0.0, trans: Any = None) -> Any:
        """The sources as an :class:`mne.Dipole` (one row per source, MNE's head frame).

        Parameters
        ----------
        time : float
            Time (s) stamped on every row.
        trans : mne.transforms.Transform | None
            Head → MRI transform; None takes the positions as head-frame already.
        """
        import mne

        pos = self.positions
        if trans is not None:
            head = mne.io.constants.FIFF.FIFFV_COORD_HEAD
            head_to_mri = trans if trans["from"] == head else mne.transforms.invert_transform(
                trans)
            pos = mne.transforms.apply_trans(mne.transforms.invert_transform(head_to_mri), pos)
        n = len(self)
        ori = np.array([s.orientation for s in self.sources]).reshape(n, -1)
        if ori.shape[1] != 3:
            ori = np.tile([0.0, 0.0, 1.0], (n, 1))
        return mne.Dipole(np.full(n, float(time)), pos, np.array([s.amplitude for s in
                                                                  self.sources]),
                          ori, np.array([100.0 * s.gof_share for s in self.sources]),
                          name="deepesi sources")


def sources_tsv(rows: list[dict]) -> str:
    """Tab-separated text of source rows (:meth:`SourceSet.to_table`)."""
    head = ["source", "x_mm", "y_mm", "z_mm", "amplitude_nAm", "extent_mm", "gof_share", "region",
            "deep", "seed"]
    lines = ["\t".join(head)] + ["\t".join(str(r.get(h, "")) for h in head) for r in rows]
    return "\n".join(lines) + "\n"


def _alternate(g: np.ndarray, best_beside: Callable[[list[int]], int], x: np.ndarray,
               rows: list[int], n_rounds: int = 3) -> list[int]:
    """Alternating projection on the grid: each source in turn moves to the grid point that
    best explains the data the others leave (``best_beside(other_rows)``), until nothing
    moves."""
    rows = list(rows)
    for _ in range(int(n_rounds)):
        moved = False
        for j in range(len(rows)):
            others = [g[:, r] for i, r in enumerate(rows) if i != j]
            best = best_beside([r for i, r in enumerate(rows) if i != j])
            if best != rows[j] and best not in rows:
                if _fit([*others, g[:, best]], x)[0] < _fit([*others, g[:, rows[j]]], x)[0]:
                    rows[j], moved = best, True
        if not moved:
            break
    return rows


def effective_samples(n_times: int, sfreq: float, lowpass: float | None) -> float:
    """Independent noise samples in a window of ``n_times`` samples: about ``2·B·T + 1`` for
    noise low-passed at ``B`` Hz over ``T = n_times / sfreq`` s (the degrees of freedom of a
    band-limited signal, Slepian 1976), at most ``n_times``.

    A recording sampled at 600 Hz and low-passed at 40 Hz has about 2.7 independent samples in
    13 (20 ms), not 13: an order criterion that counts 13 lets a spurious source absorb the
    noise of the other 10 and pay for itself.

    Parameters
    ----------
    n_times : int
        Samples in the window.
    sfreq : float
        Sampling frequency (Hz).
    lowpass : float | None
        The recording's low-pass edge (Hz, ``info['lowpass']``); None or ≥ sfreq / 2: every
        sample is independent.

    Returns
    -------
    float
        Between 1 and ``n_times``.
    """
    n_times = int(n_times)
    if lowpass is None or not np.isfinite(lowpass) or lowpass <= 0 or not sfreq > 0:
        return float(n_times)
    return float(min(n_times, max(1.0, 2.0 * float(lowpass) * n_times / float(sfreq) + 1.0)))


def signal_subspace_dimension(x_w: np.ndarray, n_dims: int | None = None,
                              n_times: float | None = None) -> int:
    """Number of singular values of whitened data above white noise's largest.

    For white noise of unit variance in ``n_dims`` dimensions and ``n_times`` independent
    samples, the largest squared singular value lies near ``μ = (√n_dims + √n_times)²`` (the
    Marchenko-Pastur edge) with the Tracy-Widom spread ``σ = (√n_dims + √n_times)
    (1/√n_dims + 1/√n_times)^(1/3)`` (Johnstone 2001); the threshold is its 99th percentile,
    ``μ + 2.02 σ``, so that noise alone adds a dimension in about 1 % of windows. Each
    independent source time course above it adds one.

    Parameters
    ----------
    x_w : ndarray, shape (n_w, n_times)
        Whitened data.
    n_dims : int | None
        Dimension the noise spans (the whitener's rank); None: ``n_w``.
    n_times : float | None
        Independent samples the noise has (:func:`effective_samples`; the data then scaled so
        that its noise energy is ``n_dims·n_times``); None: the columns of ``x_w``.

    Returns
    -------
    int
    """
    x = np.asarray(x_w, float)
    x = x[:, None] if x.ndim == 1 else x
    n_dims = x.shape[0] if n_dims is None else int(n_dims)
    n_t = float(x.shape[1] if n_times is None else min(max(float(n_times), 1.0), x.shape[1]))
    x = x * np.sqrt(n_t / x.shape[1])
    a, b = np.sqrt(n_dims), np.sqrt(n_t)
    edge = (a + b) ** 2 + TW_99 * (a + b) * (1 / a + 1 / b) ** (1 / 3)
    return int(np.sum(np.linalg.svd(x, compute_uv=False) ** 2 > edge))


class SourceSetFitter:
    """Fits source sets on one whitened gain: made once per forward and channel set (the
    scanner's 3×3 systems and the interpolation tree), applied to every recording or sample.

    Parameters
    ----------
    gain_w : ndarray, shape (n_w, n_sources, n_orient)
        Whitened gain of the grid.
    source_space : SourceSpace
        The grid (``pos``, ``spacing``, regions).
    """

    def __init__(self, gain_w: np.ndarray, source_space: Any) -> None:
        self.gain = np.asarray(gain_w, float)
        self.source_space = source_space
        self.pos = np.asarray(source_space.pos, float)
        self.local = LocalGain(self.gain, self.pos, float(source_space.spacing))
        self.scan = _Scanner(self.gain)
        flat = self.gain.reshape(len(self.gain), -1)
        gram = flat @ flat.T
        ev = np.linalg.eigvalsh(gram)
        #: dimension of the whitened channel space the sources reach (one less than the
        #: channels for average-referenced EEG, fewer under SSP): the noise's, for the edge
        self.n_dims = int(np.sum(ev > 1e-10 * max(float(ev[-1]), 1e-300)))
        self._x: np.ndarray | None = None
        self._memo: dict[frozenset, int] = {}
        self.near = 1.5 * float(source_space.spacing)
        self.region_names = list(source_space.region_names)
        self.is_subcortical = np.asarray(source_space.is_subcortical, bool)

    def fit(
        self,
        x_w: np.ndarray,
        *,
        proposal: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
        seeds: str = "map+scan",
        max_sources: int = 4,
        min_gain: float = 0.01,
        penalty: float = 2.0,
        refine: bool = True,
        n_rounds: int = 2,
        subspace_price: float | None = SUBSPACE_PRICE,
        n_effective: float | None = None,
        noise_variance: float = 1.0,
    ) -> SourceSet:
        """Sources that explain whitened data: greedy selection, off-grid refinement, the number
        by an information criterion.

        Two searches on the grid, the better one kept by the same penalised criterion (residual
        energy plus the threshold per source): **greedy** (add the best candidate, re-place all
        sources by alternating projection, repeat) and, with a proposal map, **joint** (the
        map's K strongest peaks together, re-placed, K = 1, 2, ...); the chosen set is then
        refined off the grid. A source is kept when the whitened residual energy drops by
        more than ``max(penalty·(3 + n_orient·n_times) + 2·ln(n_grid), min_gain × energy)``:
        the data must be whitened with a noise covariance right in scale (``nave``
        included), as for MNE's inverse methods; one too small makes noise look like sources.

        Parameters
        ----------
        x_w : ndarray, shape (n_w,) or (n_w, n_times)
            Whitened data (unit noise variance per channel and sample); several samples share
            the positions, the moments vary.
        proposal : ndarray, shape (n_sources,) | callable | None
            Where to look: a map over the grid, or a function from whitened data (n_w,
            n_times) to a map (e.g. a network run on them), called on the data and on every
            residual.
        seeds : {'map+scan', 'map', 'scan'}
            Candidates: the proposal's peaks and the residual's best single dipole, the
            proposal alone, or the scan alone (sequential dipole fitting with alternating
            projection).
        max_sources : int
            Most sources to fit.
        min_gain : float
            A source must explain at least this fraction of the data's energy.
        penalty : float
            Price per fitted parameter in units of the whitened noise variance (2: Akaike's
            criterion; ``ln(n_w·n_times)``: Bayes').
        refine : bool
            Refine positions off the grid (:class:`LocalGain`); False keeps grid points.
        n_rounds : int
            Passes of the off-grid refinement.
        subspace_price : float | None
            A second piece of evidence for the number: the dimension of the data's signal
            subspace, the singular values of the whitened window above the largest one white
            noise of its size reaches in 99 % of windows (:func:`signal_subspace_dimension`).
            A mismatched forward leaves part of a source unexplained, which a spurious source
            absorbs; it does not add a dimension.
            The first sources up to that dimension pay only this share of the price (e.g. 0.3);
            the others the full price. None: the price alone. Default 0.3: on the
            realistic-mismatch grid it counts 1-3 sources right in 63 % of windows instead
            of 54 %, single sources unchanged (``benchmarks/count_subspace.py``).
        n_effective : float | None
            Independent noise samples in the window (:func:`effective_samples` of the
            recording's sampling rate and low-pass); the criterion counts parameters and noise
            energy per independent sample. None: every sample is independent (white noise,
            as simulated).
        noise_variance : float
            Variance of the whitened noise per dimension and sample (1 when the whitener is
            right in scale; e.g. measured on the recording's baseline,
            :func:`deepesi.inverse.noise_level.baseline_noise`): the price and the subspace
            edge are in its units.

        Returns
        -------
        SourceSet
        """
        if not (np.isfinite(noise_variance) and noise_variance > 0):
            raise ValueError(f"noise_variance must be a positive number, got {noise_variance!r}.")
        if subspace_price is not None and not 0.0 < float(subspace_price) <= 1.0:
            raise ValueError(f"subspace_price must be in (0, 1] or None, got {subspace_price!r}.")
        if seeds not in ("map+scan", "map", "scan"):
            raise ValueError(f"seeds must be 'map+scan', 'map' or 'scan', got {seeds!r}.")
        if "map" in seeds and proposal is None:
            raise ValueError(f"seeds={seeds!r} needs a proposal map (proposal=...); or use "
                             "seeds='scan'.")
        x = np.asarray(x_w, float)
        x = x[:, None] if x.ndim == 1 else x
        if x.shape[0] != self.gain.shape[0]:
            raise ValueError(f"data have {x.shape[0]} whitened channels, the gain "
                             f"{self.gain.shape[0]}.")
        total = float(np.sum(x**2))
        if not np.isfinite(total) or total <= 0:
            raise ValueError("the whitened data are zero (or not finite); there is nothing to "
                             "fit.")
        n_t = x.shape[1]
        n_eff = float(n_t if n_effective is None else min(max(float(n_effective), 1.0), n_t))
        # in units of the noise energy of one independent sample: each carries n_t / n_eff
        # of the window's (unit-variance) samples
        var = float(noise_variance)
        cost = var * (n_t / n_eff) * (float(penalty) * (3 + self.gain.shape[2] * n_eff)
                                      + 2.0 * np.log(max(self.gain.shape[1], 2)))
        threshold = max(cost, min_gain * total)
        n_cheap = (0 if subspace_price is None
                   else signal_subspace_dimension(x / np.sqrt(var), self.n_dims, n_eff))
        # the price of the k-th source (1-based): a share of it within the signal subspace
        prices = [threshold * (float(subspace_price) if k <= n_cheap else 1.0)
                  for k in range(1, int(max_sources) + 1)]
        opts = {"max_sources": int(max_sources), "prices": prices}
        self._x, self._memo = x, {}  # the scans of this fit (:meth:`_best_beside`)
        paths = []
        if "scan" in seeds or callable(proposal):
            paths.append(self._greedy(x, proposal if "map" in seeds else None,
                                      "scan" in seeds, **opts))
        if "map" in seeds:
            first = proposal(x) if callable(proposal) else proposal
            paths.append(self._joint(x, np.asarray(first, float).reshape(-1), **opts))
        # the better path by the same penalised criterion, then its sources off the grid
        positions, origin, criterion, _ = min(paths,
                                              key=lambda p: p[3] + sum(prices[:len(p[0])]))
        self._x, self._memo = None, {}
        if refine and positions:
            positions, _ = _refine_positions(self.local, x, positions, n_rounds)
        return self._result(x, positions, origin, criterion, total)

    # ------------------------------------------------------------------ the two search paths
    def _best_beside(self, rows: list[int]) -> int:
        """The grid point that best explains the data beside the sources at grid ``rows``;
        each set of rows is scanned once per fit (both paths and every round of alternating
        projection ask for the same sets again)."""
        key = frozenset(int(r) for r in rows)
        if key not in self._memo:
            others = [self.gain[:, r] for r in sorted(key)]
            self._memo[key] = self.scan.best(self._x, others)
        return self._memo[key]

    def _accept(self, x: np.ndarray, rows: list[int], rss: float, prices: list[float]
                ) -> tuple[list[np.ndarray], float, dict]:
        """Alternating projection on the grid; the order row (whether the last source pays
        its price, ``prices[len(rows) - 1]``). Orders are compared on the grid (refinement,
        done once at the end, raises every order's fit a little)."""
        threshold = prices[len(rows) - 1]
        g = self.gain
        rows[:] = _alternate(g, self._best_beside, x, rows)  # one source too: a misplaced seed
        # must not make a second source look worth its price
        new_pos = [self.pos[r].copy() for r in rows]
        new_rss = _fit([g[:, r] for r in rows], x)[0]
        gain_k = rss - new_rss
        row = {"n_sources": len(rows), "rss": float(new_rss), "gain": float(gain_k),
               "penalty": float(threshold), "accepted": bool(gain_k > threshold)}
        return new_pos, new_rss, row

    def _greedy(self, x, proposal, use_scan, *, max_sources, prices):
        """Add the best candidate (residual map's peaks and/or the scan) one at a time."""
        g, n_t = self.gain, x.shape[1]
        positions: list[np.ndarray] = []
        rows: list[int] = []
        origin: list[str] = []
        rss = float(np.sum(x**2))
        criterion: list[dict] = []
        for _ in range(max_sources):
            gains = [self.local.at(p) for p in positions]
            cands: list[tuple[int, str]] = []
            if proposal is not None:
                _, q = _fit(gains, x)
                resid = x - (np.concatenate(gains, axis=1) @ q.reshape(-1, n_t) if gains
                             else 0.0)
                m = np.maximum(np.asarray(proposal(resid), float).reshape(-1), 0.0)
                cands += [(int(c), "map") for c in find_peaks(m, self.source_space,
                                                              n_max=N_CANDIDATES)]
            if use_scan:
                cands.append((self._best_beside(rows), "scan"))
            cands = [(c, s) for c, s in cands
                     if all(np.linalg.norm(self.pos[c] - p) > self.near for p in positions)]
            if not cands:
                break
            trial = [(_fit([*gains, g[:, c]], x)[0], c, s) for c, s in cands]
            _, best, seed = min(trial, key=lambda t: t[0])
            new_rows = [*rows, best]
            new_pos, new_rss, row = self._accept(x, new_rows, rss, prices)
            row["path"] = "greedy"
            criterion.append(row)
            if not row["accepted"]:
                break
            positions, rss, rows = new_pos, new_rss, new_rows
            origin.append(seed)
        return positions, origin, criterion, rss

    def _joint(self, x, first_map, *, max_sources, prices):
        """The map's K strongest peaks together, K = 1, 2, ... while each pays for itself."""
        peaks = find_peaks(np.maximum(first_map, 0.0), self.source_space, rel_threshold=0.05,
                           n_max=max_sources)
        positions: list[np.ndarray] = []
        rss = float(np.sum(x**2))
        criterion: list[dict] = []
        for k in range(1, len(peaks) + 1):
            rows = [int(r) for r in peaks[:k]]
            new_pos, new_rss, row = self._accept(x, rows, rss, prices)
            row["path"] = "joint map"
            criterion.append(row)
            if not row["accepted"]:
                break
            positions, rss = new_pos, new_rss
        return positions, ["map"] * len(positions), criterion, rss

    def _result(self, x, positions, origin, criterion, total) -> SourceSet:
        gains = [self.local.at(p) for p in positions]
        rss, q = _fit(gains, x)
        found = []
        for j, p in enumerate(positions):
            without, _ = _fit(gains[:j] + gains[j + 1:], x)
            _, grid = self.local.tree.query(p)
            found.append(FittedSource(np.asarray(p), q[j], int(grid), origin[j],
                                      float((without - rss) / total)))
        order = np.argsort([-s.amplitude for s in found], kind="stable")
        found = [found[i] for i in order]
        names, deep = self.region_names, self.is_subcortical
        return SourceSet(found, 1.0 - rss / total, criterion,
                         [names[s.grid_index] for s in found],
                         [bool(deep[s.grid_index]) for s in found])


def network_proposal(model: Any, unwhiten: np.ndarray, *, ch_names: list[str] | None = None,
                     n_samples: int | None = PROPOSAL_SAMPLES) -> Callable[[np.ndarray],
                                                                          np.ndarray]:
    """The proposal of :meth:`SourceSetFitter.fit` made by a network: whitened (residual) data
    → the RMS over time of the network's maps of them, back in sensor units.

    Parameters
    ----------
    model
        The network (``predict(data, ch_names=)``; with a ``samples`` keyword, as
        :meth:`deepesi.training.TrainedModel.predict`, only the samples read are computed).
    unwhiten : ndarray, shape (n_channels, n_w)
        Whitened data → the model's channels (the whitener's pseudo-inverse).
    ch_names : list of str | None
        Names of the rows of ``unwhiten @ x`` when they are not the model's order.
    n_samples : int | None
        Read the residual at its ``n_samples`` strongest samples (whitened energy) only: the
        proposal only seeds candidates, and most of a window's information is in its strongest
        samples, at a fraction of the network's cost; None reads every sample.

    Returns
    -------
    callable
    """
    import inspect

    params = inspect.signature(model.predict).parameters
    takes_samples = "samples" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kw = {} if ch_names is None else {"ch_names": list(ch_names)}

    def proposal(resid_w: np.ndarray) -> np.ndarray:
        resid_w = np.asarray(resid_w, float)
        resid_w = resid_w[:, None] if resid_w.ndim == 1 else resid_w
        data = unwhiten @ resid_w
        if n_samples is None or n_samples >= resid_w.shape[1]:
            est = model.predict(data, **kw)
        else:
            strongest = np.sort(np.argsort(-np.sum(resid_w**2, axis=0),
                                           kind="stable")[:int(n_samples)])
            est = (model.predict(data, samples=strongest, **kw) if takes_samples
                   else np.asarray(model.predict(data, **kw))[:, strongest])
        est = np.asarray(est, float).reshape(len(est), -1)
        return np.sqrt(np.mean(est**2, axis=1))

    return proposal


def fit_source_set(x_w: np.ndarray, gain_w: np.ndarray, source_space: Any, **options: Any
                   ) -> SourceSet:
    """Sources that explain whitened data, in one call: ``SourceSetFitter(gain_w,
    source_space).fit(x_w, **options)``.

    Parameters
    ----------
    x_w : ndarray, shape (n_w,) or (n_w, n_times)
        Whitened data.
    gain_w : ndarray, shape (n_w, n_sources, n_orient)
        Whitened gain of the grid.
    source_space : SourceSpace
        The grid.
    **options
        The keywords of :meth:`SourceSetFitter.fit` (``proposal``, ``seeds``,
        ``max_sources``, ``min_gain``, ``penalty``, ``refine``, ``n_rounds``).

    Returns
    -------
    SourceSet
    """
    return SourceSetFitter(gain_w, source_space).fit(x_w, **options)
