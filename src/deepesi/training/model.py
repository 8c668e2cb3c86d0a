"""The trained model: :class:`TrainedModel` (weights + what it takes to use them safely), its
file (:meth:`TrainedModel.save`, :func:`read_model`) and prediction.

:meth:`TrainedModel.predict` normalises the input as training did
(:mod:`deepesi.training.losses`): the net predicts the *shape* of the map, and with the training
lead field the maps are scaled to A·m by a small least-squares fit on the predicted support
(:func:`_scale_to_moment`).

A model file is a ``torch.save`` dict readable with ``torch.load(weights_only=True)``: the
weights (optionally float16 or int8 with per-row scales), the channels, the input scaling or
whitener, the hashes of the training lead field and source space, the simulation config, the
history, and the source space, channel Info and head → MRI transform the net was trained for
(:mod:`deepesi.training._modelfile`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path
from .._validation import check_file, validate_type
from ..forward.leadfield import LeadField
from ..nets import SourceNet, net_from_spec, type_scales
from ..sources import SourceSpace
from ._modelfile import (
    info_from_state,
    info_to_state,
    source_space_from_state,
    source_space_to_state,
    trans_matrix,
)

__all__ = ["MODEL_FORMAT", "MODEL_VERSION", "TrainedModel", "load_model", "read_model"]

MODEL_FORMAT = "deepesi-model"
MODEL_VERSION = 1


@dataclass
class TrainedModel:
    """A trained network with what it takes to use it safely.

    Attributes
    ----------
    net : SourceNet
        The network (eval mode).
    ch_names, ch_types : list of str
        Channels the net expects, in order.
    channel_scale : ndarray, shape (n_ch,)
        Per-channel input scale (RMS gain of the channel's type).
    whitener : ndarray, shape (n_ch, n_ch) | None
        Noise whitener applied to the input instead of ``channel_scale`` (nets trained with
        ``whiten``; :mod:`deepesi.whitening`). None: the input is scaled per type.
    leadfield_hash, source_space_hash : str
        Hashes of the lead field and source space the net was trained for.
    sim_config : dict
        The :class:`~deepesi.simulation.SimulationConfig` used (as a dict).
    history : list of dict
        Per-epoch training/validation loss.
    meta : dict
        Training settings and timings.
    source_space : SourceSpace | None
        The source space the net predicts on (None in model files written before deepesi
        stored it).
    info : mne.Info | None
        Measurement info of the model's channels (sensor positions, projectors), from the
        training lead field.
    trans : ndarray, shape (4, 4) | None
        Head → MRI transform of the training lead field's sensors (an ``mne`` Transform given
        here is stored as its head → MRI matrix).
    """

    net: SourceNet
    ch_names: list[str]
    ch_types: list[str]
    channel_scale: np.ndarray
    leadfield_hash: str
    source_space_hash: str
    sim_config: dict
    history: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    whitener: np.ndarray | None = None
    source_space: SourceSpace | None = None
    info: Any = field(default=None, repr=False)
    trans: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.trans = trans_matrix(self.trans)

    @property
    def n_sources(self) -> int:
        """Number of source points the net predicts."""
        return self.net.n_sources

    @property
    def n_members(self) -> int:
        """Number of nets whose maps the model combines (a seed ensemble,
        :func:`~deepesi.training.combine_models`); 1 for a single net."""
        return int(getattr(self.net, "n_members", 1))

    def weights_hash(self) -> str:
        """Content hash (sha256 hex) of the network's weights and the input transform: two
        trainings gave the same net exactly when their hashes agree."""
        import hashlib

        h = hashlib.sha256()
        for name, tensor in self.net.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        for arr in (self.channel_scale, self.whitener):
            if arr is not None:
                h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        return h.hexdigest()

    def check_leadfield(self, leadfield: LeadField) -> None:
        """Raise ValueError unless ``leadfield`` is the one the model was trained for (same
        source space, channels in order and gain, by hash)."""
        validate_type(leadfield, LeadField, "leadfield", "a LeadField")
        if leadfield.source_space.hash() != self.source_space_hash:
            raise ValueError(
                "this model was trained for another source space (hash "
                f"{self.source_space_hash[:12]} vs {leadfield.source_space.hash()[:12]}, "
                f"{self.n_sources} vs {leadfield.n_sources} points); train a model for this "
                "source space (deepesi train) or use the matching forward."
            )
        if list(leadfield.ch_names) != self.ch_names:
            self._channel_error(list(leadfield.ch_names))
        if leadfield.hash() != self.leadfield_hash:
            raise ValueError(
                "this model was trained on a different lead field (same channels and sources, "
                f"different gain: hash {self.leadfield_hash[:12]} vs {leadfield.hash()[:12]}); "
                "retrain for this head model/conductivities."
            )

    def _channel_error(self, names: list[str]) -> None:
        missing = [n for n in self.ch_names if n not in names]
        extra = [n for n in names if n not in self.ch_names]
        raise ValueError(
            f"channel mismatch: the model expects {len(self.ch_names)} channels "
            f"({', '.join(self.ch_names[:5])}{' ...' if len(self.ch_names) > 5 else ''}); "
            f"missing {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
            f"not in the model {extra[:10]}{' ...' if len(extra) > 10 else ''}. Pick/reorder the "
            "data channels to the model's ch_names (bad channels: pass them as zeros), or train a "
            "model for this montage."
        )

    @property
    def trained_deep_fraction(self) -> float | None:
        """The training prior of a deep first source (``SimulationConfig.deep_fraction``), or
        None when the model file does not say."""
        value = (self.sim_config or {}).get("deep_fraction")
        return None if value is None else float(value)

    def deep_prior_weights(self, deep_prior: float) -> np.ndarray:
        """Per-source factors (n_sources,) that move the net's prior of a deep source from the
        training one to ``deep_prior``.

        A net trained with the cross-entropy loss outputs (up to a factor) the posterior of the
        source position, prior included: with the training prior ``f`` of a deep first source,
        a map times ``deep_prior / f`` on the deep points and ``(1 − deep_prior) / (1 − f)`` on
        the cortical ones is the posterior under the prior ``deep_prior`` (Bayes' rule; the
        distribution within each compartment unchanged). No retraining.

        Parameters
        ----------
        deep_prior : float
            Prior probability (0 < p < 1) that the (strongest) source is in a deep structure.
        """
        f = self.trained_deep_fraction
        if getattr(self.net, "output", None) != "softmax":
            raise ValueError("deep_prior needs a net trained with the cross-entropy loss (its "
                             "softmax output is a posterior); this one was trained with the "
                             "'map' loss.")
        if f is None or not 0.0 < f < 1.0:
            raise ValueError(f"deep_prior needs the training prior of deep sources in (0, 1); "
                             f"this model's is {f!r}.")
        if self.source_space is None:
            raise ValueError("deep_prior needs the model's source space (which points are "
                             "deep); rebuild the model file with a current deepesi.")
        p = float(deep_prior)
        if not 0.0 < p < 1.0:
            raise ValueError(f"deep_prior must be a probability in (0, 1), got {deep_prior!r}.")
        deep = np.asarray(self.source_space.is_subcortical, bool)
        return np.where(deep, p / f, (1.0 - p) / (1.0 - f))

    def predict(
        self,
        data: np.ndarray,
        *,
        ch_names: list[str] | None = None,
        leadfield: LeadField | None = None,
        batch_size: int = 4096,
        precision: str | None = None,
        deep_prior: float | None = None,
        member: int | None = None,
        samples: np.ndarray | None = None,
    ) -> np.ndarray:
        """Source maps for sensor data.

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times) or (n_channels,)
            Sensor data in SI units (V, T, T/m), EEG average-referenced.
        ch_names : list of str | None
            Names of the rows of ``data``; they are reordered to the model's channels (extra rows
            are dropped; a missing model channel is an error). None means the model's order.
        leadfield : LeadField | None
            The training lead field. If given (its hash is checked), each time sample's map is
            scaled to A·m by a least-squares fit of the data on the predicted support; otherwise
            each sample's map (maximum ≈ 1) is multiplied by the sample's max |data / RMS gain of
            the channel type|, a rough A·m scale that keeps relative amplitudes over time.
        batch_size : int
            Time samples per forward pass.
        precision : {'float32', 'bfloat16'} | None
            Arithmetic of the forward pass; None (default): float32, whatever the net was
            trained in, so the same model gives the same maps on any CPU (bfloat16 kernels
            differ between processors). 'bfloat16' is opt-in: about 1.3–1.5× faster on CPUs
            with AVX-512 BF16 / AMX, but ~5× *slower* on AVX2-only CPUs, where PyTorch
            emulates it. The maps are float32 either way.
        deep_prior : float | None
            Prior probability of a deep source to read the maps under (:meth:`
            deep_prior_weights`); None (default): the training prior
            (:attr:`trained_deep_fraction`). Each sample's map keeps its maximum.
        member : int | None
            For a seed ensemble (:attr:`n_members` > 1): the maps of this member alone
            (0-based), read with the ensemble's input transform. None (default): the combined
            maps.
        samples : array of int | None
            Only the maps at these time samples (a window net still reads each one's window
            of the whole data); None (default): every sample.

        Returns
        -------
        ndarray, shape (n_sources, n_times) or (n_sources, len(samples))
            Non-negative dipole-moment norm per source point.
        """
        x = np.asarray(data, dtype=np.float64)
        squeeze = x.ndim == 1
        if squeeze:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"data must have shape (n_channels, n_times), got {x.shape}.")
        if ch_names is not None:
            ch_names = list(ch_names)
            if len(ch_names) != len(x):
                raise ValueError(f"{len(ch_names)} ch_names for {len(x)} data rows.")
            index = {n: i for i, n in enumerate(ch_names)}
            if any(n not in index for n in self.ch_names):
                self._channel_error(ch_names)
            x = x[[index[n] for n in self.ch_names]]
        elif len(x) != len(self.ch_names):
            raise ValueError(
                f"data has {len(x)} channels but the model expects {len(self.ch_names)}; pass "
                "ch_names=... to match rows by name."
            )
        if not np.isfinite(x).all():
            raise ValueError("data contains NaN/Inf; interpolate or zero bad channels first.")
        if leadfield is not None:
            self.check_leadfield(leadfield)
        if precision is None:
            precision = "float32"
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}.")
        net = self.net
        if member is not None:
            if self.n_members < 2:
                raise ValueError("member=... needs a seed ensemble (combine_models); this "
                                 "model is a single net.")
            net = self.net.member(member)
        device = next(net.parameters()).device
        w = net.n_times
        n_t = x.shape[1]
        xs = (x / self.channel_scale[:, None]).astype(np.float32)  # per-type scaling, once
        windows = _windows(xs, w)  # (n_t, ch, w), a view
        # the net's input: the same windows, or whitened ones (amplitude still from xs)
        net_windows = windows if self.whitener is None else _windows(
            (self.whitener @ x).astype(np.float32), w
        )
        if samples is not None:
            samples = np.asarray(samples, dtype=int).reshape(-1)
            if samples.size and (samples.min() < 0 or samples.max() >= n_t):
                raise ValueError(f"samples must be in [0, {n_t}), got "
                                 f"{samples.min()}..{samples.max()}.")
            windows, net_windows, x = windows[samples], net_windows[samples], x[:, samples]
            n_t = len(samples)
        prior = None
        if deep_prior is not None:
            prior = torch.as_tensor(self.deep_prior_weights(deep_prior), dtype=torch.float32)
        out_t = np.empty((n_t, self.n_sources), np.float32)  # filled row-wise, returned as .T
        out_view = torch.from_numpy(out_t)
        tiny = torch.finfo(torch.float32).tiny
        net.eval()
        with torch.inference_mode(), torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"
        ):
            for start in range(0, n_t, batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size]))
                peak = xb.abs().amax(dim=(1, 2))
                if self.whitener is not None:
                    xb = torch.from_numpy(
                        np.ascontiguousarray(net_windows[start : start + batch_size])
                    )
                scale = xb.abs().amax(dim=(1, 2)) if self.whitener is not None else peak
                maps = net(xb / torch.clamp(scale, min=tiny)[:, None, None])
                if prior is not None:  # the posterior under another prior, same maximum
                    top = maps.amax(dim=1, keepdim=True)
                    maps = maps * prior
                    maps = maps * (top / torch.clamp(maps.amax(dim=1, keepdim=True), min=tiny))
                dest = out_view[start : start + len(xb)]
                if leadfield is None:
                    torch.mul(maps, peak[:, None], out=dest)
                else:
                    dest.copy_(maps)
        out = out_t.T
        if leadfield is not None:
            out = _scale_to_moment(out, x, leadfield)
        return out[:, 0] if squeeze else out

    def save(
        self,
        path: str | os.PathLike,
        overwrite: bool = False,
        *,
        half: bool = False,
        int8: bool = False,
    ) -> Path:
        """Write the model file (torch format, atomic); :func:`read_model` reads it back.

        Parameters
        ----------
        path : path-like
            Destination (``.pt``).
        overwrite : bool
            Replace an existing file (otherwise FileExistsError).
        half : bool
            Store the large weight matrices (≥ 10,000 values) in float16, half the file size.
        int8 : bool
            Store the large 2-D ones as int8 with one float32 scale per row (max |row| / 127), a
            quarter of the size, e.g. for models shipped in the package (the other large ones in
            float16). Both are cast back to float32 when loaded, and re-saving weights that were
            read from such a file in the same form gives the same file weights.

        Returns
        -------
        Path
            The written file.
        """
        d = self._to_dict()
        large = {k for k, v in d["state_dict"].items()
                 if v.is_floating_point() and v.numel() >= 10_000}
        if int8:
            scales = {}
            for k in sorted(large):
                v = d["state_dict"][k]
                if v.ndim == 2:
                    scale = torch.clamp(v.abs().amax(dim=1), min=1e-30) / 127.0
                    d["state_dict"][k] = torch.round(v / scale[:, None]).to(torch.int8)
                    scales[k] = scale.float()
            d["int8_scales"] = scales
            large -= set(scales)
        if half or int8:
            for k in large:
                d["state_dict"][k] = d["state_dict"][k].half()
        d["checksum"] = payload_checksum(d)
        with atomic_path(path, overwrite=overwrite) as tmp:
            torch.save(d, tmp)
        return Path(path)

    def _to_dict(self) -> dict:
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_VERSION,
            "net_name": self.net.name,
            "n_channels": self.net.n_channels,
            "n_sources": self.net.n_sources,
            "init_kwargs": self.net.init_kwargs,
            "output": self.net.output,
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "ch_names": list(self.ch_names),
            "ch_types": list(self.ch_types),
            "channel_scale": [float(s) for s in self.channel_scale],
            "leadfield_hash": self.leadfield_hash,
            "source_space_hash": self.source_space_hash,
            "sim_config": self.sim_config,
            "history": self.history,
            "meta": self.meta,
            "whitener": None if self.whitener is None else torch.from_numpy(
                np.asarray(self.whitener, np.float64)
            ),
            "source_space": source_space_to_state(self.source_space),
            "info": info_to_state(self.info),
            "trans": None if self.trans is None else torch.from_numpy(trans_matrix(self.trans)),
        }

    @classmethod
    def _from_dict(cls, d: dict) -> TrainedModel:
        net = net_from_spec(d["net_name"], d["n_channels"], d["n_sources"], d["init_kwargs"])
        state = dict(d["state_dict"])
        for k, scale in d.get("int8_scales", {}).items():  # files saved with int8=True
            state[k] = state[k].float() * scale[:, None]
        net.load_state_dict(state)
        output = d.get("output", "relu")  # files written before the 'ce' loss existed
        if output not in net.OUTPUTS:
            raise ValueError(f"model file has an unknown output activation {output!r}.")
        net.output = output
        net.eval()
        return cls(
            net,
            list(d["ch_names"]),
            list(d["ch_types"]),
            np.asarray(d["channel_scale"], float),
            d["leadfield_hash"],
            d["source_space_hash"],
            d["sim_config"],
            list(d["history"]),
            dict(d["meta"]),
            None if d.get("whitener") is None else np.asarray(d["whitener"], float),
            source_space_from_state(d.get("source_space")),  # absent in older files
            info_from_state(d.get("info")),
            None if d.get("trans") is None else d["trans"].numpy().astype(float),
        )

    def __repr__(self) -> str:
        white = " | whitened input" if self.whitener is not None else ""
        name = self.net.name
        if self.n_members > 1:
            name = (f"ensemble of {self.n_members} {self.net.members[0].name} "
                    f"({self.net.rule})")
        return (
            f"<TrainedModel {name} | {len(self.ch_names)} channels → {self.n_sources} "
            f"sources | {self.net.n_parameters():,} parameters{white}>"
        )


def _windows(x: np.ndarray, w: int) -> np.ndarray:
    """(n_ch, n_t) → (n_t, n_ch, w) view: the window of ``w`` samples centred on every sample
    (edges reflected; ``w = 1``: the samples themselves)."""
    if w == 1:
        return x.T[:, :, None]
    n_t, half = x.shape[1], w // 2
    xp = np.pad(x, ((0, 0), (half, w - 1 - half)), mode="reflect" if n_t > w else "edge")
    return np.transpose(np.lib.stride_tricks.sliding_window_view(xp, w, axis=1), (1, 0, 2))


def read_model(path: str | os.PathLike, leadfield: LeadField | None = None) -> TrainedModel:
    """Read a model written by :func:`~deepesi.training.train_model` / :meth:`TrainedModel.save`.

    Parameters
    ----------
    path : path-like | str
        Model file (``.pt``), or the name of a model shipped in the package (e.g.
        ``'template-eeg64'``, :data:`deepesi.pretrained.PRETRAINED`).
    leadfield : LeadField | None
        If given, the model is checked against it (ValueError on any mismatch).

    Returns
    -------
    TrainedModel
        With its source space, channel Info and head → MRI transform when the file carries them
        (files written before deepesi stored them give None).
    """
    from .._registry import PRETRAINED, pretrained_files

    if isinstance(path, str) and path in PRETRAINED:
        path = pretrained_files(path)["model"]
    elif not os.path.exists(path):
        hint = (f" (pretrained models: {', '.join(sorted(PRETRAINED))})"
                if isinstance(path, str) and not str(path).endswith(".pt") else "")
        raise FileNotFoundError(f"model file not found: {path}{hint}.")
    path = check_file(path, "model file")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's own text advises weights_only=False: not for users
        kind = type(err).__name__
        raise ValueError(
            f"{path} is not a deepesi model file ({kind}: the file is damaged or of another "
            "kind); use a file written by deepesi train or TrainedModel.save."
        ) from err
    if not isinstance(d, dict) or d.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a deepesi model file (is it a training checkpoint?).")
    if d["format_version"] > MODEL_VERSION:
        raise ValueError(f"{path} was written by a newer deepesi (format {d['format_version']}).")
    if "checksum" in d and d["checksum"] != payload_checksum(d):
        raise ValueError(f"{path} is damaged: its weights do not match the checksum stored "
                         "with them (changed bytes inside the file); restore or re-copy it.")
    try:
        model = TrainedModel._from_dict(d)
    except (KeyError, RuntimeError, TypeError) as err:  # ValueErrors carry their own text
        raise ValueError(f"{path} is damaged or incomplete: {type(err).__name__} while "
                         "rebuilding the network; restore or re-copy it.") from err
    bad = [n for n, t in model.net.state_dict().items() if not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{path} is damaged: its weights contain NaN/Inf ({bad[0]}); "
                         "retrain the model or restore the file.")
    if leadfield is not None:
        model.check_leadfield(leadfield)
    return model


def payload_checksum(d: dict) -> str:
    """sha256 of a model file's weights as stored (int8/float16 included) and their int8
    scales: ``torch.load`` does not check the zip's CRCs, so a file with zeroed or flipped
    bytes inside its weights would otherwise load and give other maps."""
    import hashlib

    h = hashlib.sha256()
    for group in ("state_dict", "int8_scales"):
        for k, v in sorted(d.get(group, {}).items()):
            t = v.detach().cpu().contiguous()
            h.update(f"{group}/{k}/{t.dtype}/{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


#: Former name of :func:`read_model` (kept as an alias).
load_model = read_model


def _scale_to_moment(
    maps: np.ndarray,
    x: np.ndarray,
    leadfield: LeadField,
    rel_threshold: float = 0.5,
    max_points: int = 32,
) -> np.ndarray:
    """Scale each column of ``maps`` to A·m by fitting the data with dipoles on its support."""
    src = leadfield.source_space
    gain = leadfield.gain
    types = np.asarray(leadfield.ch_types)
    eeg = types == "eeg"
    if eeg.any() and leadfield.eeg_reference != "average":
        gain = gain.copy()
        gain[eeg] -= gain[eeg].mean(axis=0, keepdims=True)
    w = np.ones(len(types))
    for t, s in type_scales(leadfield).items():
        w[types == t] = 1.0 / s
    out = np.zeros_like(maps)
    for t in range(maps.shape[1]):
        p = maps[:, t]
        if p.max() <= 0:
            continue
        sup = np.flatnonzero(p >= rel_threshold * p.max())
        sup = sup[np.argsort(-p[sup])][:max_points]
        cols, owner = [], []
        for i in sup:
            if src.free_ori[i]:
                cols.extend(gain[:, i, k] for k in range(3))
                owner.extend([i] * 3)
            else:
                cols.append(gain[:, i, :] @ src.normals[i])
                owner.append(i)
        a = np.stack(cols, 1) * w[:, None]
        b = x[:, t] * w
        lam = 1e-6 * np.trace(a.T @ a) / a.shape[1]
        q = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ b)
        owner = np.asarray(owner)
        amp = np.array([np.linalg.norm(q[owner == i]) for i in sup])
        s = amp.sum() / p[sup].sum()
        out[:, t] = p * s
    return out
