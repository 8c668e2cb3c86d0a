"""MEG nets of the sample example on the real auditory N100m: noise whitening × SSP in training.

Usage::

    python benchmarks/sample_meg_variants.py --data ../shared/data/mne-sample --out out/sample \\
        [--variants white-ssp white-nossp scaled-ssp]

Reuses the cached head, sources and forward of ``examples/sample_auditory.py``
(:mod:`deepesi.datasets.mne_sample`; run the example first), trains one MEG net per variant with
the example's settings (``mne_sample.TRAINING``: a budget of batches, early stopping; cached in
``<out>/models/variants/``), localizes the 90–110 ms window and scores each hemisphere's
strongest peak by its distance to the MNI auditory box of the example. Prints a table and writes
``benchmarks/results/sample_meg_variants.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: variant → (SimulationConfig options besides noise_cov, whiten the net's input)
VARIANTS = {
    "white-ssp": ({"snr_space": "whitened", "colored_noise_fraction": (0.5, 1.0), "ssp": True},
                  True),
    "white-nossp": ({"snr_space": "whitened", "colored_noise_fraction": (0.5, 1.0)}, True),
    "scaled-ssp": ({"snr_space": "sensor", "colored_noise_fraction": (0.0, 0.5), "ssp": True},
                   False),
}


def main() -> None:
    import mne

    from deepesi.datasets import mne_sample as ms
    from deepesi.inverse import apply_network
    from deepesi.references import score_map
    from deepesi.simulation import SimulationConfig
    from deepesi.training import train_or_load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="MNE sample data folder")
    p.add_argument("--out", default="out/sample", help="cache folder of sample_auditory.py")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = p.parse_args()
    out = Path(args.out)
    paths = ms.data_paths(args.data)
    head = ms.build_head(paths, out, verbose=False)
    src = ms.build_sources(head, out)
    lf = ms.build_forward(head, src, paths, out, verbose=False).pick_types(["mag", "grad"])
    cov = mne.read_cov(paths["cov"], verbose=False)
    evoked = ms.load_auditory_evoked(paths["evoked"])
    no_labels = {h: np.zeros((1, 3)) for h in ("lh", "rh")}  # only the MNI box is scored
    rows = []
    for name in args.variants:
        opts, whiten = VARIANTS[name]
        opts = dict(opts)
        projs = evoked.info["projs"] if opts.pop("ssp", False) else None
        config = SimulationConfig(noise_cov=cov, projs=projs, **opts)
        model = train_or_load(lf, config, out / "models" / "variants" / f"meg-{name}.pt",
                              whiten=whiten, **ms.TRAINING)
        res = apply_network(evoked, model, source_space=src, tmin=ms.WINDOW[0],
                            tmax=ms.WINDOW[1])
        score = score_map(res.amplitudes.mean(axis=1), src, no_labels)
        rows.append({"variant": name, "whiten": whiten, "ssp": projs is not None, **opts,
                     "epochs": model.meta.get("epochs_run"),
                     "train_s": model.meta.get("train_time_s"),
                     **{k: v for k, v in score.items() if "aud" in k or "peak" in k}})
    print(f"{'variant':>12} {'left (mm)':>10} {'right (mm)':>10}   (distance to the auditory box)")
    for r in rows:
        print(f"{r['variant']:>12} {r['aud_mni_lh_mm']!s:>10} {r['aud_mni_rh_mm']!s:>10}")
    dest = HERE / "results" / "sample_meg_variants.json"
    dest.write_text(json.dumps(rows, indent=1, default=list) + "\n")
    print(f"written: {dest}")


if __name__ == "__main__":
    main()
