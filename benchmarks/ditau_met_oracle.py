"""How much of the di-tau mass resolution is the MET measurement: the FastMTT-style fit with the reconstructed MET,
with the generator MET (the neutrinos' pT sum) and the file's MET covariance, and with the generator MET and a
2 GeV covariance (the fit then trusts it).

The transformer reads the same reconstructed MET (plus the tau decay products and up to 3 jets), so the third row
bounds what a better use of the tau legs can buy without a better MET.

    # files from `coffea-mlreco generate --process htautau/ztautau`
    python benchmarks/ditau_met_oracle.py H.root Z.root
"""

from __future__ import annotations

import argparse
import warnings

import awkward as ak
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="di-tau NanoAOD-like files with GenPart and GenMET")
    args = parser.parse_args()

    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from coffea_mlreco.core.metrics import resolution
    from coffea_mlreco.ditau.fastmtt import fastmtt_mass
    from coffea_mlreco.ditau.inputs import ditau_candidates
    from coffea_mlreco.ditau.targets import tau_targets

    residuals: dict[str, list[np.ndarray]] = {}
    for path in args.files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            events = NanoEventsFactory.from_root({path: "Events"}, schemaclass=NanoAODSchema, mode="eager").events()
        cands = ditau_candidates(events)
        events, cands = events[cands.selected], cands[cands.selected]
        truth = tau_targets(events, cands.leg1, cands.leg2)
        gen_pt = ak.to_numpy(events.GenMET.pt).astype(np.float64)
        gen_phi = ak.to_numpy(events.GenMET.phi).astype(np.float64)
        gen = {"px": gen_pt * np.cos(gen_phi), "py": gen_pt * np.sin(gen_phi)}
        tight = {"covXX": np.full(gen_pt.size, 4.0), "covXY": np.zeros(gen_pt.size), "covYY": np.full(gen_pt.size, 4.0)}
        met = cands.met
        variants = {
            "reconstructed MET, its covariance": met,
            "generator MET, reconstructed covariance": ak.zip(
                {**gen, "covXX": met.covXX, "covXY": met.covXY, "covYY": met.covYY}
            ),
            "generator MET, σ = 2 GeV": ak.zip({**gen, **tight}),
        }
        for name, m in variants.items():
            r = ak.to_numpy(fastmtt_mass(cands.leg1, cands.leg2, m).mass) / truth.mass - 1
            residuals.setdefault(name, []).append(r[truth.matched & np.isfinite(r)])
        print(f"{path}: {len(events)} selected, {int(np.sum(truth.matched))} matched to generator taus")
    print("\n| FastMTT-style fit with | events | median r | resolution of r = m/m_gen − 1 |\n|---|---|---|---|")
    for name, parts in residuals.items():
        r = np.concatenate(parts)
        print(f"| {name} | {r.size} | {np.median(r):+.3f} | {resolution(r):.3f} |")


if __name__ == "__main__":
    main()
