"""MET resolution per generator-MET cell: PUPPI, DeepMET and the Perceiver, and any other MET model beside them.

For each cell of generator MET (the report's bins, `coffea_mlreco.core.constants.MET_BINS_GEV`) and overall: σ(u∥)
and σ(u⊥), σ = (P84 − P16)/2 in GeV (`core.metrics.resolution`, the report's definition), of the shipped PUPPI,
DeepMET and Perceiver (the networks chosen by each chunk's pileup) and of each model given with
``--model LABEL=METHOD:DIR`` (a model directory written by ``train met``, run as that method). Then, for the last
model, its gain over PUPPI and over DeepMET per cell, 1 − σ_model/σ_reference, with the bootstrap standard error
(200 resamples of the events; the two widths come from the same events).

    python benchmarks/met_models_by_cell.py FILE.root [FILE.root ...] [--model new=perceiver:DIR]

Files: generated events with PF candidates and GenMET, read 2000 events at a time.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import warnings

import numpy as np

from coffea_mlreco import met
from coffea_mlreco.core.columns import MET_COLUMNS, to_numpy
from coffea_mlreco.core.constants import MET_BINS_GEV
from coffea_mlreco.core.metrics import met_residuals, resolution
from coffea_mlreco.training.cached_arrays import event_chunks

SHIPPED = {"puppi": "PUPPI", "deepmet": "DeepMET", "perceiver": "Perceiver"}


def _gain(model: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """1 − σ_model/σ_reference and its bootstrap standard error."""
    index = rng.integers(0, model.size, (200, model.size))
    ratios = [resolution(model[i]) / resolution(reference[i]) for i in index]
    return 1 - resolution(model) / resolution(reference), float(np.std(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=METHOD:DIR")
    args = parser.parse_args()
    extra = {}
    for spec in args.model:
        label, _, rest = spec.partition("=")
        method, _, directory = rest.partition(":")
        extra[label] = (method, directory)
    labels = [*SHIPPED.values(), *extra]
    upar: dict[str, list[np.ndarray]] = {m: [] for m in labels}
    uperp: dict[str, list[np.ndarray]] = {m: [] for m in labels}
    gen: list[np.ndarray] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for path in args.files:
            for chunk in event_chunks(path):
                events = met.reconstruct(chunk, methods=list(SHIPPED), device="cpu")
                reco = {label: events[MET_COLUMNS[m]] for m, label in SHIPPED.items()}
                for label, (method, directory) in extra.items():
                    out = met.reconstruct(chunk, methods=[method], models={method: directory}, device="cpu")
                    reco[label] = out[MET_COLUMNS[method]]
                gpt, gphi = to_numpy(chunk.GenMET.pt, np.float64), to_numpy(chunk.GenMET.phi, np.float64)
                gen.append(gpt)
                for label, column in reco.items():
                    r = met_residuals(to_numpy(column.pt, np.float64), to_numpy(column.phi, np.float64), gpt, gphi)
                    upar[label].append(r.upar)
                    uperp[label].append(r.uperp)
    g = np.concatenate(gen)
    par = {m: np.concatenate(v) for m, v in upar.items()}
    perp = {m: np.concatenate(v) for m, v in uperp.items()}
    print(f"# {platform.node()} ({platform.machine()}), CPU; {len(g)} events; {', '.join(args.files)}")
    cells = [(f"{lo:g}–{hi:g}", (g >= lo) & (g < hi)) for lo, hi in itertools.pairwise(MET_BINS_GEV)]
    cells.append(("all", np.ones_like(g, bool)))
    header = ["gen MET [GeV]", "n", *labels]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, sel in cells:
        row = [f"{resolution(par[m][sel]):.2f} / {resolution(perp[m][sel]):.2f}" for m in labels]
        print(f"| {name} | {int(sel.sum())} | " + " | ".join(row) + " |")
    print("(σ(u∥) / σ(u⊥), GeV)\n")
    last = labels[-1]
    rng = np.random.default_rng(1)
    print(f"| gen MET [GeV] | {last} vs PUPPI: u∥ | u⊥ | vs DeepMET: u∥ | u⊥ |")
    print("|---|---|---|---|---|")
    for name, sel in cells:
        gains = [_gain(u[last][sel], u[ref][sel], rng) for ref in ("PUPPI", "DeepMET") for u in (par, perp)]
        print(f"| {name} | " + " | ".join(f"{100 * v:+.1f} ± {100 * e:.1f} %" for v, e in gains) + " |")
    print("(1 − σ_model/σ_reference; ± bootstrap standard error)")


if __name__ == "__main__":
    main()
