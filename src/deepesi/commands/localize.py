"""``deepesi localize``: localize the sources of a recording with a trained network.

API twin: :func:`deepesi.inverse.apply_network` (+ :meth:`deepesi.inverse.SourceMap.save`,
:func:`deepesi.viz.make_report`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deepesi localize``."""
    from ..cli import add_common_options

    parser = subparsers.add_parser(
        "localize",
        help="localize the sources of a recording with a trained network",
        description="Run a trained deepesi network on a recording and write the source "
                    "estimate (MNE -vl.stc), a 4-D NIfTI volume of the activity (MRI mm), the "
                    "peak table (TSV, region names, MRI/MNI mm) and optionally an HTML report. "
                    "Channels are matched to the model by name; bad channels are interpolated; "
                    "EEG is average-referenced; epochs are averaged.",
    )
    parser.add_argument(
        "recording", metavar="RECORDING",
        help="anything mne.io.read_raw reads (FIF, BrainVision .vhdr, EDF/BDF, EEGLAB .set, "
             "CTF .ds), or an evoked (-ave.fif) or epochs (-epo.fif) file; SI units",
    )
    parser.add_argument("--model", default="auto", metavar="MODEL.pt",
                        help="trained model (deepesi train), or the name of a pretrained model "
                             "shipped in the package (deepesi models lists them: "
                             "'template-eeg' reads any EEG cap, 'template-eeg64' the 64-channel "
                             "10-10 layout, 'template-meg306' MEGIN/Neuromag MEG). Default "
                             "'auto': the shipped model for the recording's sensors, named in "
                             "the output")
    parser.add_argument("--montage", metavar="NAME",
                        help="electrode positions to set on the recording first: an MNE "
                             "built-in montage (e.g. GSN-HydroCel-128, biosemi64, "
                             "standard_1005) for a file without positions (montage-"
                             "independent nets place 10-05-named channels themselves)")
    parser.add_argument("--source-space", metavar="SRC.npz",
                        help="the source space the model was trained on (default: the one the "
                             "model file records, if any)")
    parser.add_argument("--forward", metavar="FWD.fif",
                        help="the model's forward (its training lead field), to refit the map's "
                             "peaks on the data and report the goodness of fit (pretrained "
                             "models: the shipped one, always)")
    parser.add_argument("--noise-cov", metavar="COV.fif",
                        help="noise covariance of the recording: whitens the data for the peak "
                             "time and the fit as the classical methods do (default: the "
                             "model's own input whitening)")
    parser.add_argument("--refine", action="store_true",
                        help="also refine each peak locally on the data (needs the forward)")
    parser.add_argument("--sources", action="store_true",
                        help="also fit a set of sources (number, off-grid positions, moments; "
                             "sources.tsv), seeded by the network (needs the forward and "
                             "--noise-cov)")
    parser.add_argument("--max-sources", type=int, default=4, metavar="N",
                        help="most sources --sources fits (default 4)")
    parser.add_argument("--compartment", choices=("mass", "peak"), default="mass",
                        help="deep or cortical by the network's posterior mass (default) or "
                             "by its strongest point")
    parser.add_argument("--deep-prior", type=float, default=None, metavar="P",
                        help="prior probability of a deep source to read the network's map "
                             "under (0 < P < 1; default: the model's training prior, e.g. "
                             "0.4); lower makes 'deep' an answer the data must earn")
    parser.add_argument("--condition", metavar="NAME",
                        help="condition of an -ave.fif file, or event name of an -epo.fif file")
    parser.add_argument("--tmin", type=float, default=None, metavar="S",
                        help="start of the time window (s)")
    parser.add_argument("--tmax", type=float, default=None, metavar="S",
                        help="end of the time window (s)")
    parser.add_argument("--baseline", type=float, nargs=2, default=None, metavar=("A", "B"),
                        help="subtract each channel's mean over A..B s first (e.g. -0.2 0: "
                             "removes DC offsets, such as a CTF recording's, that would "
                             "otherwise dominate every sample)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                        help="output folder: new or empty; with --overwrite an earlier result "
                             "folder, of which only the files deepesi wrote are replaced")
    parser.add_argument("--report", action="store_true",
                        help="also write report.html (mne.Report) into OUT_DIR")
    parser.add_argument("--head", metavar="HEAD",
                        help="head drawn under the report's slices: 'template' or a deepesi head "
                             "folder (must be the head the source space was built from)")
    parser.add_argument("--peaks", type=int, default=5, metavar="N",
                        help="peaks to print (default: 5)")
    parser.add_argument("--subgrid", action="store_true",
                        help="print the peaks' coordinates off the grid: the weighted mean "
                        "position of each peak's neighbourhood (deepesi.inverse.peak_centroids)")
    add_common_options(parser)
    parser.set_defaults(func=run)
    return parser


def choose_pretrained(inst: Any) -> tuple[str, str]:
    """The shipped model for a recording (``--model auto``) and why: EEG → the
    montage-independent window net ``template-eeg-w5`` (``template-eeg``, its single-sample
    twin, when the window net is not installed); MEG only → the template net of its system
    (``template-meg306`` for MEGIN/Neuromag 306), an error for a system none is shipped for."""
    import mne

    from ..inverse.helmet import meg_system, system_family
    from ..pretrained import PRETRAINED, pretrained_files

    info = inst.info
    n_eeg = len(mne.pick_types(info, meg=False, eeg=True, exclude="bads"))
    n_meg = len(mne.pick_types(info, meg=True, ref_meg=False, exclude="bads"))
    if n_eeg >= 8:
        why = f"an EEG recording with {n_eeg} good electrodes"
        if n_meg:
            why += (f" (its {n_meg} MEG channels are not used: each shipped net reads one "
                    "modality; --model template-meg306 for a Neuromag recording's MEG)")
        try:  # the window net reads evoked responses better (docs/network.md, any cap)
            pretrained_files("template-eeg-w5")
            return "template-eeg-w5", why
        except FileNotFoundError:
            return "template-eeg", why
    if n_meg:
        system = meg_system(info)
        family = system_family(system)  # e.g. a Neuromag helmet with a few channels missing
        for name, spec in PRETRAINED.items():
            if spec.get("modality") == "meg" and spec.get("system") == family:
                return name, f"a {system} MEG recording ({n_meg} good channels)"
        raise ValueError(
            f"the recording has {n_meg} MEG channels of a {system} system and no EEG: no "
            "pretrained network is shipped for it (only MEGIN/Neuromag 306). Train one for "
            "your system (deepesi forward --meg RECORDING ...; deepesi train ...) and pass "
            "--model MODEL.pt, or use a classical method (deepesi.inverse.apply_classical).")
    raise ValueError(f"the recording has {n_eeg} good EEG channels and no MEG; a pretrained "
                     "model needs at least 8 EEG electrodes. Pass --model MODEL.pt.")


def _model_and_source_space(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The model (a pretrained name or a file), the source space to localize on and the
    model's forward (None when not given)."""
    from ..pretrained import PRETRAINED, load_pretrained
    from ..sources import SourceSpace

    if args.model in PRETRAINED:  # shipped in the package, with its source space
        if args.source_space is not None:
            raise ValueError(
                f"--source-space cannot be combined with the pretrained {args.model!r}."
            )
        if args.forward is not None:
            raise ValueError(f"--forward cannot be combined with the pretrained {args.model!r} "
                             "(its forward is shipped with it).")
        if PRETRAINED[args.model].get("modality") == "meg":  # forward: at the recording's head
            from ..pretrained import pretrained_files
            from ..training import read_model

            model = read_model(pretrained_files(args.model)["model"])
            return model, model.source_space, None
        model, leadfield = load_pretrained(args.model)
        return model, leadfield.source_space, leadfield
    from .._validation import check_file
    from ..training import read_model

    model = read_model(args.model)
    forward = None
    if args.forward is not None:
        from ..forward.io import read_forward

        forward = read_forward(check_file(args.forward, "forward file"))
    if args.source_space is not None:
        return model, SourceSpace.load(args.source_space), forward
    return model, None, forward  # the one the model carries (apply_network says if none)


def fit_summary(result: Any) -> str:
    """One or two lines on how much of the data the map explains (for the printed summary)."""
    fit = result.fit
    if not fit:
        return ("goodness of fit: not computed (give the model's forward, --forward, to refit "
                "the peaks on the data)")
    line = (f"goodness of fit at {fit['time']:.3f} s: the map's {fit['n_dipoles']} peak(s) as "
            f"dipoles explain {100 * fit['gof']:.1f} % of the whitened data")
    if fit.get("best_dipole_gof") is not None:
        line += f"; the best single dipole on the grid {100 * fit['best_dipole_gof']:.1f} %"
    if fit.get("refined_gof") is not None:
        line += f"; refined locally {100 * fit['refined_gof']:.1f} %"
        where = "; ".join(f"({x:.1f}, {y:.1f}, {z:.1f})"
                          for x, y, z in fit.get("refined_positions_mm") or [])
        if where:
            line += f" at {where} mm MRI"
    if fit.get("poor"):
        line += ("\nWARNING: the map explains much less than one dipole does: it is probably "
                 "not where the sources are (check the model, channels, noise covariance).")
    return line


def ensemble_summary(result: Any) -> str | None:
    """One line on a seed ensemble's agreement (None for a single net)."""
    from ..inverse.network import agreement_sentence, nets_disagree

    e = result.meta.get("ensemble")
    if not e:
        return None
    line = f"ensemble of {e['members']} nets: {agreement_sentence(e)}"
    if nets_disagree(e):
        line += ("\nWARNING: the nets disagree: the recording is unlike their training data "
                 "here; compare with a classical method on the same forward "
                 "(deepesi.inverse.apply_classical, e.g. dSPM).")
    return line


def compartment_summary(result: Any) -> str | None:
    """One line on deep or cortical: the network's probability of a deep source at the peak
    time (its posterior mass in deep structures) and the prior it was read under."""
    c = result.meta.get("compartment") or {}
    if "deep_probability" not in c:
        return None
    prior = c.get("deep_prior")
    where = "a deep structure" if c.get("peak_is_deep") else "cortex"
    line = (f"deep or cortical: P(deep) = {c['deep_probability']:.2f} at the peak time (the "
            f"network's posterior mass in deep structures"
            f"{'' if prior is None else f', prior {prior:g}'}): the peak is in {where}")
    if c.get("gated"):
        line += " (moved there from the other compartment's strongest point)"
    return line


def sources_summary(result: Any) -> str:
    """The fitted source set as printed lines."""
    from ..inverse.noise_level import noise_sentence

    rows = result.sources
    fit = result.fit.get("sources") or {}
    noise_line = noise_sentence(fit.get("noise"))
    if not rows:
        return "\n".join(filter(None, [
            "sources: none explains the data beyond the noise (information criterion).",
            noise_line]))
    lines = [f"{len(rows)} source(s), together {100 * fit.get('gof', 0.0):.1f} % of the whitened "
             f"data in {fit.get('window_s')} s:"]
    for r in rows:
        lines.append(f"  {r['source']}: ({r['x_mm']:.1f}, {r['y_mm']:.1f}, {r['z_mm']:.1f}) mm "
                     f"MRI, {r['amplitude_nAm']:.1f} nA·m"
                     + (f" (~{r['extent_mm']:.0f} mm radius at a typical density)"
                        if "extent_mm" in r else "")
                     + f", {r['region']}"
                     f"{' (deep)' if r['deep'] else ''}, {100 * r['gof_share']:.1f} % of the fit")
    if noise_line:
        lines.append(noise_line)
    return "\n".join(lines)


def _read(args: argparse.Namespace) -> Any:
    """The recording, with ``--montage`` set on it."""
    from ..inverse import read_recording

    inst = read_recording(args.recording, args.condition)
    if args.montage is not None:
        from ..sensors.montages import resolve_montage

        montage, _ = resolve_montage(args.montage)
        inst.set_montage(montage, on_missing="warn", verbose=False)
    return inst


def run(args: argparse.Namespace) -> int:
    """Read, localize, write."""
    from .._io import check_overwrite
    from ..inverse import apply_network
    from ..pretrained import PRETRAINED

    out = Path(args.output)
    if out.exists() and out.is_dir() and not any(out.iterdir()):
        pass  # an empty folder is fine
    else:
        check_overwrite(out, args.overwrite)
    if args.peaks < 1:
        raise ValueError(f"--peaks must be >= 1, got {args.peaks}.")
    inst = None
    if args.model == "auto":  # the recording decides, so it is read first
        inst = _read(args)
        args.model, why = choose_pretrained(inst)
        if not args.quiet:
            print(f"model: {args.model} (chosen for {why}; --model to choose another)")
    model, src, forward = _model_and_source_space(args)
    if args.sources and args.noise_cov is None:
        raise ValueError("--sources needs the recording's noise covariance (--noise-cov "
                         "COV.fif): the number of sources is decided against the noise level.")
    if args.max_sources < 1:
        raise ValueError(f"--max-sources must be >= 1, got {args.max_sources}.")
    head_position = None
    if PRETRAINED.get(args.model, {}).get("modality") == "meg":
        from ..inverse.helmet import bind_meg_recording

        inst = _read(args) if inst is None else inst
        inst, model, forward, head_position = bind_meg_recording(
            inst, model, trained_rms=PRETRAINED[args.model].get("head_positions_rms"))
        if not args.quiet:
            scaled = head_position["scaling"]
            print(f"head position: {head_position['head_shift_mm']:.1f} mm, "
                  f"{head_position['head_rotation_deg']:.1f} deg from the model's nominal one"
                  + (" (outside the trained range)" if head_position["outside_trained_range"]
                     else "") + "; template "
                  + ("placed by the fiducials" if scaled is None
                     else f"scaled to the head shape ({scaled['mode']})")
                  + "; forward computed there, data mapped to the nominal position")
    if (args.refine or args.sources) and forward is None:
        flag = "--refine" if args.refine else "--sources"
        raise ValueError(f"{flag} needs the model's forward: add --forward FWD.fif.")
    noise_cov = None
    if args.noise_cov is not None:
        from .._io import read_noise_cov

        noise_cov = read_noise_cov(args.noise_cov)
    head = None
    if args.head is not None:
        if not args.report:
            raise ValueError("--head is only used by the report; add --report.")
        from ..anatomy.load import load_head

        head = load_head(args.head)
    elif args.report and PRETRAINED.get(args.model, {}).get("head") == "template":
        from ..anatomy.template import load_template  # a shipped model: its head is known

        head = load_template()
    if inst is None:
        inst = _read(args)
    if args.baseline is not None:
        from ..inverse.prepare import subtract_baseline

        inst = subtract_baseline(inst, tuple(args.baseline))
    if forward is not None and src is None:
        src = forward.source_space if getattr(model, "source_space", None) is None else None
    result = apply_network(inst, model, source_space=src, noise_cov=noise_cov, forward=forward,
                           tmin=args.tmin, tmax=args.tmax, refine=args.refine,
                           sources=args.sources, max_sources=args.max_sources,
                           deep_prior=args.deep_prior, compartment=args.compartment)
    result.meta["recording"] = str(Path(args.recording).resolve())
    if head_position is not None:
        result.meta["head_position"] = head_position
    result.meta["model_file"] = (
        args.model if args.model in PRETRAINED else str(Path(args.model).resolve())
    )
    extra = {}
    if args.report:
        from ..viz.report import make_report

        title = f"deepesi localization: {Path(args.recording).name}"
        extra["report.html"] = lambda fname: make_report(result, head, title=title, fname=fname)
    result.save(out, overwrite=args.overwrite, extra_files=extra)
    if not args.quiet:
        print(f"wrote {out}/: {result!r}")
        print(result.peaks(n=args.peaks, subgrid=args.subgrid))
        for line in (ensemble_summary(result), compartment_summary(result)):
            if line:
                print(line)
        print(fit_summary(result))
        if args.sources:
            print(sources_summary(result))
    return 0
