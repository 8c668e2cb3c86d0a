"""Same command, same seed, same net: on an idle and on a loaded machine, with 1 or 2 cores' worth
of threads.

Usage::

    python benchmarks/training_reproducibility.py [--batches 400] [--burners 2]

Trains one 4LCNN (the default architecture, sphere lead field of 64 electrodes, 2 epochs of
``--batches / 2`` batches of 64; a forward ensemble of two members and noise partly from a
recording-like noise bank, as the documented recipe) in a fresh process per run: the process
set to 1 and to 2 PyTorch / BLAS threads (as on a 1- and a 2-core machine), each on the machine
as it is and with ``--burners`` extra processes spinning on every core, with
:func:`deepesi.training.train_model`'s default fixed thread count (``threads=2``); and, to
show why it is fixed, the two thread settings with ``threads=None`` (PyTorch's own setting).
The budget is batches, never wall-clock, so the default runs should all give the same
weights; the table gives each run's weights hash and wall time and says whether the default
runs agree. Writes ``benchmarks/results/training_reproducibility.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _child(batches: int, out: str, train_threads: int | None) -> None:
    """One training run in this process; prints ``hash seconds``."""
    import numpy as np

    from deepesi.forward.leadfield import LeadField
    from deepesi.simulation import SimulationConfig
    from deepesi.simulation.noise import NoiseBank
    from deepesi.simulation.sphere import make_sphere_leadfield
    from deepesi.training import train_model

    lf = make_sphere_leadfield(spacing=0.01, n_channels=64)
    other = make_sphere_leadfield(spacing=0.01, n_channels=64, conductivity_scale=1.3)
    other = LeadField(other.gain, lf.ch_names, lf.ch_types, lf.source_space, lf.info, lf.trans)
    rng = np.random.default_rng(0)
    bank = NoiseBank([rng.standard_normal((lf.n_channels, 400)) * 1e-6], list(lf.ch_names),
                     250.0, "synthetic baseline")
    cfg = SimulationConfig(n_sources=(1, 2), snr_db=(0, 15), noise_bank=bank,
                           bank_noise_fraction=(0.25, 0.75), brain_noise_fraction=(0.0, 0.3))
    t0 = time.perf_counter()
    model = train_model(lf, cfg, Path(out) / "model.pt", epochs=2, batch_size=64,
                        batches_per_epoch=max(1, batches // 2), n_val=128, seed=7,
                        ensemble=[lf, other], threads=train_threads, verbose=False)
    print(model.weights_hash(), round(time.perf_counter() - t0, 2))


def _burn(stop_at: float) -> None:
    x = 0.0
    while time.time() < stop_at:
        for i in range(10000):
            x += i * 1e-9


def _run(batches: int, threads: int, train_threads: str) -> tuple[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "DEEPESI_REPRO_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run([sys.executable, __file__, "--child", str(batches), tmp,
                              train_threads], env=env,
                             capture_output=True, text=True, check=True)
    digest, seconds = res.stdout.strip().splitlines()[-1].split()
    return digest, float(seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=400, help="training batches per run")
    p.add_argument("--burners", type=int, default=2, help="busy processes while 'loaded'")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(int(os.environ.get("DEEPESI_REPRO_THREADS", "1")))
        _child(int(args.child[0]), args.child[1],
               None if args.child[2] == "none" else int(args.child[2]))
        return
    rows = []
    runs = [(load, threads, "2") for load in ("as is", f"+{args.burners} busy processes")
            for threads in (1, 2)] + [("as is", threads, "none") for threads in (1, 2)]
    for load, threads, train_threads in runs:
        burners = []
        if load != "as is":
            stop = time.time() + 3600
            burners = [mp.Process(target=_burn, args=(stop,), daemon=True)
                       for _ in range(args.burners)]
            for b in burners:
                b.start()
        try:
            digest, seconds = _run(args.batches, threads, train_threads)
        finally:
            for b in burners:
                b.terminate()
                b.join()
        rows.append({"load": load, "process_threads": threads,
                     "train_threads": None if train_threads == "none" else int(train_threads),
                     "weights_hash": digest, "seconds": seconds})
        print(f"{load:>22} | process {threads} thread(s) | train_model(threads="
              f"{train_threads}) | {digest[:16]} | {seconds:7.1f} s", flush=True)
    default = [r for r in rows if r["train_threads"] is not None]
    same = len({r["weights_hash"] for r in default}) == 1
    free = [r for r in rows if r["train_threads"] is None]
    free_same = len({r["weights_hash"] for r in free}) == 1
    print(f"default (threads=2): all {len(default)} runs give the same net: {same}; "
          f"threads=None: 1 and 2 threads give the same net: {free_same}")
    RESULTS.mkdir(exist_ok=True)
    out = {"batches": args.batches, "burners": args.burners, "runs": rows,
           "default_identical": same, "threads_none_identical": free_same,
           "cpu_count": os.cpu_count()}
    (RESULTS / "training_reproducibility.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
