"""The FastMTT-style m_ττ with the MET of each method: which MET, with its per-event covariance, gives the best mass.

For the events of H → ττ and Z → ττ files with a selected di-tau pair and two prompt generator taus, the fit is run
with: the file's MET and covariance (``MET``, what it read before #19), and each MET that
``coffea_mlreco.met.reconstruct`` appends (PF, PUPPI, DeepMET, Perceiver) with its calibrated covariance
(``coffea_mlreco.met.resolution``); the generator MET with a 2 GeV covariance bounds what any MET could give.
Prints per MET the median and resolution (P84 − P16)/2 of m/m_gen − 1 over all events and per file, and the AUC
of the mass as an H-vs-Z score (the first file is H, the others Z). Files are read 2000 events at a time.

    python benchmarks/ditau_met_inputs.py H.root Z.root [Z2.root ...]
"""

from __future__ import annotations

import argparse
import platform
import warnings

import awkward as ak
import numpy as np
from coffea_mlreco.processors.ditau import generator_mass

from coffea_mlreco import met
from coffea_mlreco.core.columns import MET_COLUMNS, to_numpy
from coffea_mlreco.core.metrics import roc_auc
from coffea_mlreco.ditau.fastmtt import fastmtt_mass
from coffea_mlreco.ditau.inputs import ditau_candidates, met_with_covariance
from coffea_mlreco.training.cached_arrays import event_chunks

SOURCES = {"file MET (PF, file covariance)": None} | {
    f"{m} (calibrated covariance)": column for m, column in MET_COLUMNS.items()
}


def _generator_met(events: ak.Array) -> ak.Array:
    pt, phi = to_numpy(events.GenMET.pt, np.float64), to_numpy(events.GenMET.phi, np.float64)
    var = np.full(len(pt), 4.0)
    return ak.zip(
        {
            "px": pt * np.cos(phi),
            "py": pt * np.sin(phi),
            "pt": pt,
            "phi": phi,
            "covXX": var,
            "covXY": 0 * var,
            "covYY": var,
        }
    )


def masses(path: str) -> dict[str, np.ndarray]:
    """Per MET source the fitted m_ττ, and ``m_gen``, of the file's selected events with two generator taus."""
    out: dict[str, list[np.ndarray]] = {}
    for chunk in event_chunks(path):
        cands = ditau_candidates(chunk)
        selected = to_numpy(cands.selected, bool)
        events, cands = chunk[selected], cands[selected]
        m_gen = generator_mass(events)
        keep = np.isfinite(m_gen) & (m_gen > 0)
        events, cands, m_gen = events[keep], cands[keep], m_gen[keep]
        events = met.reconstruct(events, device="cpu")
        out.setdefault("m_gen", []).append(m_gen)
        for name, column in {**SOURCES, "generator MET, 2 GeV covariance": "gen"}.items():
            reading = _generator_met(events) if column == "gen" else met_with_covariance(events, column)
            fit = fastmtt_mass(cands.leg1, cands.leg2, reading)
            out.setdefault(name, []).append(to_numpy(fit.mass, np.float64))
    return {k: np.concatenate(v) for k, v in out.items()}


def _summary(ratio: np.ndarray) -> str:
    ratio = ratio[np.isfinite(ratio)]
    p16, p50, p84 = np.percentile(ratio, [16, 50, 84])
    return f"{p50:+.3f} / {(p84 - p16) / 2:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="H → ττ file first, then Z → ττ files (GenPart, GenMET, PFCands)")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_file = [masses(f) for f in args.files]
    n = [len(f["m_gen"]) for f in per_file]
    print(f"# {platform.node()} ({platform.machine()}), CPU; events: H {n[0]}, Z {sum(n[1:])}")
    print("| MET | all: median / resolution | H | Z | AUC H vs Z |")
    print("|---|---|---|---|---|")
    for name in (*SOURCES, "generator MET, 2 GeV covariance"):
        h = per_file[0][name] / per_file[0]["m_gen"] - 1
        z = np.concatenate([f[name] / f["m_gen"] - 1 for f in per_file[1:]])
        z_mass = np.concatenate([f[name] for f in per_file[1:]])
        auc = roc_auc(np.nan_to_num(per_file[0][name]), np.nan_to_num(z_mass))
        print(f"| {name} | {_summary(np.concatenate([h, z]))} | {_summary(h)} | {_summary(z)} | {auc:.3f} |")


if __name__ == "__main__":
    main()
