"""Where a di-tau mass model's scale goes: median m/m_gen − 1 per channel and per generator-mass bin, next to the
FastMTT-style fit its inputs hold (the prior a model with ``fastmtt_prior`` starts from).

A regression learns the conditional median of its training sample: where the inputs pin the mass down little (the
ℓℓ channels, two neutrinos per leg, and more so at pileup) it pulls every event towards what that sample makes
likely, and the correction it learns for the fit is the average one over the sample's masses. This prints the
pull per channel (τh: τhτh, μτh, eτh; ℓℓ: eμ, μμ, ee) and m_gen bin, and per file the median and resolution
(P84 − P16)/2 of each channel. The events are the training path's (:func:`coffea_mlreco.ditau.training.ditau_arrays`:
selected pair, both legs truth-matched), with the MET the model was trained on, cached per file in ``--cache-dir``.

    python benchmarks/ditau_mass_pull.py --model transformer [--model DIR ...] H.root Z.root [BROAD.root ...]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import platform
import warnings
from pathlib import Path

import numpy as np
import torch

from coffea_mlreco import met
from coffea_mlreco.ditau.inputs import FILE_MET, Channel
from coffea_mlreco.ditau.training import load_ditau_data, mass_metrics, predict
from coffea_mlreco.ditau.transformer_inputs import MET_FEATURES
from coffea_mlreco.ditau.wrappers import DITAU_MODELS

MASS_EDGES_GEV = (40, 70, 85, 100, 130, 170, 230, 300, 450)
CHANNEL_GROUPS = {"τh": (Channel.TAUTAU, Channel.MUTAU, Channel.ETAU), "ℓℓ": (Channel.EMU, Channel.MUMU, Channel.EE)}


def fit_mass(data: dict[str, np.ndarray]) -> np.ndarray:
    """m_ττ (GeV) of the FastMTT-style fit held in the inputs (its log mass ratio to m_vis)."""
    met_features = data["met"].astype(np.float64)
    log_ratio = met_features[:, MET_FEATURES.index("fastmtt_log_mass_ratio")]
    return np.exp(log_ratio + met_features[:, MET_FEATURES.index("log_mvis")])


def _median_pull(mass: np.ndarray, mass_gen: np.ndarray) -> str:
    return f"{np.median(mass / mass_gen - 1.0):+.3f}" if mass.size >= 10 else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="di-tau ROOT files with generator taus (PF candidates for an ML MET)")
    parser.add_argument("--model", action="append", required=True, help="shipped name or model directory (repeat)")
    parser.add_argument("--cache-dir", default="ditau-pull-cache", help="arrays per file and MET input")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="coffea")
    wrappers = {spec: DITAU_MODELS.load(spec, device="cpu") for spec in args.model}
    inputs = {getattr(wrapper, "met_input", FILE_MET) for wrapper in wrappers.values()}
    if len(inputs) != 1:
        raise SystemExit(f"the models read different MET inputs {sorted(inputs)}: compare models of one input")
    met_input = inputs.pop()
    append_met = None
    if met_input != FILE_MET:
        append_met = functools.partial(met.reconstruct, methods=(met_input,), device="cpu")
    data = {Path(f).name: load_ditau_data(f, args.cache_dir, met_input, append_met) for f in args.files}
    masses = {"fit (the prior)": {name: fit_mass(d) for name, d in data.items()}}
    for spec, wrapper in wrappers.items():
        model = wrapper.backend.load(torch.device("cpu"))
        masses[spec] = {name: predict(model, d)[0] for name, d in data.items()}
    print(f"# {platform.node()}, MET input {met_input}; median m/m_gen − 1 per m_gen bin (GeV)")
    bins = list(itertools.pairwise(MASS_EDGES_GEV))
    print("| method | channels | " + " | ".join(f"{a}–{b}" for a, b in bins) + " |")
    print("|---|---|" + "---|" * len(bins))
    mass_gen = np.concatenate([d["mass_gen"] for d in data.values()]).astype(np.float64)
    channel = np.concatenate([d["channel"] for d in data.values()])
    for method, per_file in masses.items():
        mass = np.concatenate(list(per_file.values()))
        for group, members in CHANNEL_GROUPS.items():
            mine = np.isin(channel, [int(c) for c in members])
            cells = []
            for a, b in bins:
                cell = mine & (mass_gen >= a) & (mass_gen < b)
                cells.append(f"{_median_pull(mass[cell], mass_gen[cell])} ({cell.sum()})")
            print(f"| {method} | {group} | " + " | ".join(cells) + " |")
    print("\nmedian / resolution of m/m_gen − 1 per file and channel (events)")
    for name, d in data.items():
        mg = d["mass_gen"].astype(np.float64)
        for method, per_file in masses.items():
            cells = [f"all {_summary(per_file[name], mg)}"]
            for c in Channel:
                mine = d["channel"] == int(c)
                if mine.any():
                    cells.append(f"{c.name.lower()} {_summary(per_file[name][mine], mg[mine])}")
            print(f"{name} | {method} | " + " | ".join(cells))


def _summary(mass: np.ndarray, mass_gen: np.ndarray) -> str:
    m = mass_metrics(mass, mass_gen)
    return f"{m['median']:+.3f}/{m['resolution']:.3f} ({m['n']})"


if __name__ == "__main__":
    main()
