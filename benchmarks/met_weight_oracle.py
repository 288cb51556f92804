"""How much MET resolution is left for a network to find beyond per-particle weights: the truth-weight oracle.

Our simulation records, per PF candidate, the fraction of its energy from pileup (``PFCands_genPUFraction``). The
MET of the weights w = 1 − genPUFraction removes pileup perfectly, particle by particle: it bounds what any
per-particle weighting (PUPPI, DeepMET) can reach. Against it this prints PF, PUPPI, DeepMET and the Perceiver
(the shipped networks chosen by pileup): if DeepMET is already close to the oracle, the remaining resolution is
the hard scatter's own (detector resolution, acceptance, neutrinos) and attention across particles can only win by
correcting that — the inter-particle information our detector model leaves to learn.

Residuals against the generator MET: u∥ along it, u⊥ across it; σ = (P84 − P16)/2 (GeV), per gen-MET bin and
overall. Files are read 2000 events at a time.

    python benchmarks/met_weight_oracle.py FILE.root [FILE.root ...]   # PFCands with genPUFraction, GenMET
"""

from __future__ import annotations

import argparse
import itertools
import platform
import warnings

import awkward as ak
import numpy as np

from coffea_mlreco import met
from coffea_mlreco.core.columns import MET_COLUMNS, to_numpy
from coffea_mlreco.core.metrics import met_residuals
from coffea_mlreco.met.pf_met import missing_transverse_momentum
from coffea_mlreco.training.cached_arrays import event_chunks

BINS = (0.0, 30.0, 60.0, 100.0, 150.0, np.inf)
"""Generator-MET bins (GeV)."""


def _width(x: np.ndarray) -> float:
    p16, p84 = np.percentile(x, [16, 84])
    return float((p84 - p16) / 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    names = {"pf": "PF", "puppi": "PUPPI", "deepmet": "DeepMET", "perceiver": "Perceiver", "oracle": "truth weights"}
    upar: dict[str, list[np.ndarray]] = {m: [] for m in names}
    uperp: dict[str, list[np.ndarray]] = {m: [] for m in names}
    gen: list[np.ndarray] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for path in args.files:
            for chunk in event_chunks(path):
                events = met.reconstruct(chunk, device="cpu")
                gpt, gphi = to_numpy(events.GenMET.pt, np.float64), to_numpy(events.GenMET.phi, np.float64)
                gen.append(gpt)
                cands = events.PFCands
                oracle = missing_transverse_momentum(cands, 1.0 - ak.values_astype(cands.genPUFraction, np.float64))
                reco = {m: (events[c].pt, events[c].phi) for m, c in MET_COLUMNS.items()} | {"oracle": oracle}
                for m, (pt, phi) in reco.items():
                    r = met_residuals(to_numpy(pt, np.float64), to_numpy(phi, np.float64), gpt, gphi)
                    upar[m].append(r.upar)
                    uperp[m].append(r.uperp)
    g = np.concatenate(gen)
    print(f"# {platform.node()} ({platform.machine()}), CPU; {len(g)} events")
    header = ["gen MET [GeV]", "n", *(names[m] for m in names)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    cells = [(lo, hi, (g >= lo) & (g < hi)) for lo, hi in itertools.pairwise(BINS)]
    for lo, hi, sel in [*cells, (0.0, np.inf, np.ones_like(g, bool))]:
        label = "all" if (lo, hi) == (0.0, np.inf) else f"{lo:.0f}–{hi:.0f}"
        row = [
            f"{_width(np.concatenate(upar[m])[sel]):.1f} / {_width(np.concatenate(uperp[m])[sel]):.1f}" for m in names
        ]
        print(f"| {label} | {int(sel.sum())} | " + " | ".join(row) + " |")
    print("(σ(u∥) / σ(u⊥), GeV)")


if __name__ == "__main__":
    main()
