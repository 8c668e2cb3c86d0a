"""MEG nets of the sample example on the real auditory N100m: noise whitening × SSP in training.

Usage::

    python benchmarks/sample_meg_variants.py --data ../shared/data/mne-sample --out out/sample \\
        [--variants white-ssp white-nossp scaled-ssp]

Reuses the cached head, sources and forward of ``examples/sample_auditory.py`` (run it first),
trains one MEG net per variant with the example's settings (8-min budget, early stopping; cached
in ``<out>/models/variants/``), localizes the 90–110 ms window and scores each hemisphere's
strongest peak by its distance to the MNI auditory box of the example. Prints a table and writes
``benchmarks/results/sample_meg_variants.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))

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
    import sample_auditory as ex

    from deepesi.localize import localize
    from deepesi.simulate import SimulationConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="MNE sample data folder")
    p.add_argument("--out", default="out/sample", help="cache folder of sample_auditory.py")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = p.parse_args()
    out = Path(args.out)
    paths = ex.data_paths(args.data)
    settings = ex.Settings()
    head = ex.build_head(paths, out, settings, False)
    src = ex.build_sources(head, out, settings)
    lf = ex.build_forward(head, src, paths, out, False).pick_types(["mag", "grad"])
    cov = mne.read_cov(paths["cov"], verbose=False)
    evoked = ex.load_auditory_evoked(paths["evoked"])
    no_labels = {h: np.zeros((1, 3)) for h in ("lh", "rh")}  # only the MNI box is scored
    rows = []
    for name in args.variants:
        opts, whiten = VARIANTS[name]
        opts = dict(opts)
        projs = evoked.info["projs"] if opts.pop("ssp", False) else None
        config = SimulationConfig(noise_cov=cov, projs=projs, **opts)
        model = ex.train_or_load(lf, config, out / "models" / "variants" / f"meg-{name}.pt",
                                 settings, progress=True, whiten=whiten)
        res = localize(evoked, model, src, tmin=ex.WINDOW[0], tmax=ex.WINDOW[1])
        score = ex.score_map(ex._window_map(res.amplitudes), src, no_labels)
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
