"""How much of the di-tau mass resolution is the MET measurement: the FastMTT-style fit with the reconstructed MET,
with the generator MET (the neutrinos' pT sum) and the file's MET covariance, and with the generator MET and a
2 GeV covariance (the fit then trusts it).

The transformer reads the same reconstructed MET (plus the tau decay products and up to 3 jets), so the third row
bounds what a better use of the tau legs can buy without a better MET.

``--smear σ [σ ...]`` adds rows with the generator MET smeared by a Gaussian of σ GeV per component and σ² as the
fit's covariance: the m_ττ resolution a MET of that resolution would give, with Gaussian tails only (a real MET has
wider ones, so these rows are the better case). Files are read 2000 events at a time.

    # files from `coffea-mlreco generate --process htautau/ztautau`
    python benchmarks/ditau_met_oracle.py H.root Z.root [--smear 5 10 15]
"""

from __future__ import annotations

import argparse
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.metrics import resolution
from coffea_mlreco.ditau.fastmtt import fastmtt_mass
from coffea_mlreco.ditau.inputs import ditau_candidates
from coffea_mlreco.ditau.targets import tau_targets
from coffea_mlreco.training.cached_arrays import event_chunks


def met_variants(
    cands: Any, gen_px: np.ndarray, gen_py: np.ndarray, smear: list[float], rng: np.random.Generator
) -> dict[str, ak.Array]:
    """The MET records (px, py, covariance; GeV) the fit is run with, by name."""
    n = gen_px.size

    def isotropic(px: np.ndarray, py: np.ndarray, sigma: float) -> ak.Array:
        var = np.full(n, sigma**2)
        return ak.zip({"px": px, "py": py, "covXX": var, "covXY": np.zeros(n), "covYY": var})

    met = cands.met
    variants = {
        "reconstructed MET, its covariance": met,
        "generator MET, reconstructed covariance": ak.zip(
            {"px": gen_px, "py": gen_py, "covXX": met.covXX, "covXY": met.covXY, "covYY": met.covYY}
        ),
        "generator MET, σ = 2 GeV": isotropic(gen_px, gen_py, 2.0),
    }
    for sigma in smear:
        noise = rng.normal(0.0, sigma, (2, n))
        variants[f"generator MET ⊕ Gaussian σ = {sigma:g} GeV"] = isotropic(gen_px + noise[0], gen_py + noise[1], sigma)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="di-tau NanoAOD-like files with GenPart and GenMET")
    parser.add_argument("--smear", type=float, nargs="*", default=[], help="Gaussian MET resolutions σ (GeV)")
    args = parser.parse_args()

    residuals: dict[str, list[np.ndarray]] = {}
    rng = np.random.default_rng(20261206)
    for path in args.files:
        n_selected = n_matched = 0
        for chunk in event_chunks(path):
            cands = ditau_candidates(chunk)
            selected = ak.to_numpy(cands.selected).astype(bool)
            events, cands = chunk[selected], cands[selected]
            truth = tau_targets(events, cands.leg1, cands.leg2)
            gen_pt = ak.to_numpy(events.GenMET.pt).astype(np.float64)
            gen_phi = ak.to_numpy(events.GenMET.phi).astype(np.float64)
            gen_px, gen_py = gen_pt * np.cos(gen_phi), gen_pt * np.sin(gen_phi)
            for name, m in met_variants(cands, gen_px, gen_py, args.smear, rng).items():
                r = ak.to_numpy(fastmtt_mass(cands.leg1, cands.leg2, m).mass) / truth.mass - 1
                residuals.setdefault(name, []).append(r[truth.matched & np.isfinite(r)])
            n_selected += len(events)
            n_matched += int(np.sum(truth.matched))
        print(f"{path}: {n_selected} selected, {n_matched} matched to generator taus")
    print("\n| FastMTT-style fit with | events | median r | resolution of r = m/m_gen − 1 |\n|---|---|---|---|")
    for name, parts in residuals.items():
        r = np.concatenate(parts)
        print(f"| {name} | {r.size} | {np.median(r):+.3f} | {resolution(r):.3f} |")


if __name__ == "__main__":
    main()
