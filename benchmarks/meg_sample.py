"""MEG lead field of deepesi's inner-skull BEM vs MNE's own BEM of the sample subject.

deepesi extracts the inner skull from the head model's label volume (star-shaped icosahedral
mesh); MNE's reference uses the FreeSurfer watershed inner skull (bem/inner_skull.surf) at ico-4
(5120 triangles), solved by MNE.
Both use MNE's one-layer BEM and coil definitions, so the difference measures the effect of
the surface extraction alone. Needs DEEPESI_SHARED_DATA (the MNE sample subject).

Run: DEEPESI_SHARED_DATA=/work/shared/data .venv/bin/python benchmarks/meg_sample.py
Writes benchmarks/results/meg_sample.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> dict:
    import mne
    from scipy.spatial import cKDTree

    from deepesi.anatomy.load import load_head
    from deepesi.forward.meg import compute_meg_leadfield, discrete_source_space
    from deepesi.forward.surfaces import head_centre, intracranial_mask, mask_surface
    from deepesi.sensors import sensors_from_info
    from deepesi.sources import make_source_space

    root = Path(os.environ.get("DEEPESI_SHARED_DATA", "/work/shared/data")) / "mne-sample"
    subjects = root / "subjects"
    meg_dir = root / "MEG" / "sample"
    t0 = time.perf_counter()
    head = load_head(subjects / "sample", verbose=False)
    t_head = time.perf_counter() - t0
    src = make_source_space(head, 0.008)
    sensors = sensors_from_info(meg_dir / "sample_audvis-auditory-ave.fif",
                                meg_dir / "sample_audvis_trunc-trans.fif", head, picks=("meg",))
    rows = {}
    for grade in (3, 4):
        t0 = time.perf_counter()
        gain, names, _, _ = compute_meg_leadfield(head, sensors, src.pos, grade=grade,
                                                         verbose=False)
        rows[grade] = (gain, time.perf_counter() - t0)
    # MNE reference: FreeSurfer inner skull at ico-4 (5120 triangles)
    model = mne.make_bem_model("sample", ico=4, conductivity=(0.3,), subjects_dir=subjects,
                               verbose=False)
    bem = mne.make_bem_solution(model, verbose=False)
    info = mne.pick_info(sensors.info, mne.pick_types(sensors.info, meg=True), verbose=False)
    fwd = mne.make_forward_solution(info, sensors.trans, discrete_source_space(src.pos), bem,
                                    meg=True, eeg=False, mindist=0.0, verbose=False)
    kept_rr = mne.transforms.apply_trans(sensors.trans, fwd["source_rr"])
    _, kept = cKDTree(src.pos).query(kept_rr)
    ref_head = fwd["sol"]["data"].reshape(len(names), len(kept), 3)
    m2h = np.linalg.inv(np.asarray(sensors.trans["trans"]))[:3, :3]
    ref = ref_head @ m2h
    # surface agreement: deepesi inner skull vs FreeSurfer inner_skull.surf
    fs_rr, _ = mne.read_surface(subjects / "sample/bem/inner_skull.surf")
    ours = mask_surface(intracranial_mask(head), head.affine_m, centre=head_centre(head), grade=4)
    d_surf = cKDTree(fs_rr / 1000).query(ours.rr)[0] * 1000
    depth = cKDTree(fs_rr / 1000).query(src.pos[kept])[0] * 1000  # source depth below FS skull
    result = {
        "head_seconds": t_head,
        "n_sources": int(src.n_sources),
        "n_sources_inside_mne_inner_skull": len(kept),
        "n_meg": len(names),
        "surface_distance_mm": {"mean": float(d_surf.mean()),
                                "p95": float(np.percentile(d_surf, 95)),
                                "max": float(d_surf.max())},
        "grades": {},
    }
    print(f"sample subject: {src.n_sources} sources (8 mm), {len(names)} MEG channels; "
          f"{len(kept)} sources inside MNE's inner skull")
    print(f"inner skull vs FreeSurfer: mean {d_surf.mean():.2f} mm, p95 "
          f"{np.percentile(d_surf, 95):.2f} mm, max {d_surf.max():.2f} mm")
    print(f"{'grade':>5} {'tris':>6} {'time s':>7} {'corr min':>9} {'corr med':>9} "
          f"{'relerr med':>10} {'corr min>10':>12} {'relerr>10 md':>12} {'c>0.99':>9} "
          f"{'c>0.95':>9}")
    for grade, (gain, secs) in rows.items():
        g = gain[:, kept]
        corr = np.array([np.corrcoef(g[:, i].ravel(), ref[:, i].ravel())[0, 1]
                         for i in range(len(kept))])
        rel = np.linalg.norm(g - ref, axis=(0, 2)) / np.linalg.norm(ref, axis=(0, 2))
        deep = depth >= 10
        result["grades"][str(grade)] = {
            "triangles": 20 * 4**grade, "seconds": secs,
            "corr_min": float(corr.min()), "corr_p1": float(np.percentile(corr, 1)),
            "corr_median": float(np.median(corr)),
            "relerr_median": float(np.median(rel)), "relerr_p99": float(np.percentile(rel, 99)),
            "frac_corr_gt_0.99": float(np.mean(corr > 0.99)),
            "frac_corr_gt_0.95": float(np.mean(corr > 0.95)),
            "n_shallower_5mm": int((depth < 5).sum()),
            "corr_median_shallower_5mm": float(np.median(corr[depth < 5])),
            "n_deeper_10mm": int(deep.sum()),
            "corr_min_deeper_10mm": float(corr[deep].min()),
            "relerr_median_deeper_10mm": float(np.median(rel[deep])),
        }
        print(f"{grade:>5} {20 * 4**grade:>6} {secs:>7.1f} {corr.min():>9.4f} "
              f"{np.median(corr):>9.4f} {np.median(rel):>10.3f} {corr[deep].min():>12.4f} "
              f"{np.median(rel[deep]):>12.3f} {np.mean(corr > 0.99):>9.3f} "
              f"{np.mean(corr > 0.95):>9.3f}")
    out = Path(__file__).parent / "results" / "meg_sample.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
