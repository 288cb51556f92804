"""``coffea-mlreco calibrate-met``: measure the per-event MET covariance of every MET method on generated files.

Runs ``met.reconstruct`` (the shipped networks chosen by pileup, or ``--model METHOD=DIR``) on files with PF
candidates and generator MET, takes the residuals Δ = p⃗_miss − p⃗_miss,gen per method, and measures its
:class:`~coffea_mlreco.met.resolution.METResolution` in bins of Σ, grouping events by their file's pileup
(:func:`~coffea_mlreco.met.resolution.calibrate_resolution`). The JSON it writes is what
``met.reconstruct(events, resolution=JSON)`` reads; the shipped ``met/met_resolution.json`` is its output on the
files its ``calibration`` entry names. Use files of several pileups that span the analysis's conditions, with
seeds used in no training.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coffea_mlreco.core.columns import MET_COLUMNS, to_numpy
from coffea_mlreco.core.metrics import met_residuals
from coffea_mlreco.core.outputs import atomic_file, check_output
from coffea_mlreco.met.columns import METHODS, reconstruct
from coffea_mlreco.met.resolution import PUPPI_WEIGHTED, METResolution, calibrate_resolution, write_resolutions
from coffea_mlreco.training.cached_arrays import event_chunks
from coffea_mlreco.training.provenance import describe_sample

__all__ = ["add_arguments", "residuals_by_method", "run"]

_UNCALIBRATED = {
    m: METResolution((0.0,), ((0.0,),), ((1.0,),)) for m in METHODS
}  # the covariance is what is being fitted


def residuals_by_method(
    path: str | Path, methods: Sequence[str], models: dict[str, str] | None = None, device: str = "cpu"
) -> dict[str, np.ndarray]:
    """Per method ``dx_<m>``, ``dy_<m>``, ``sum_<m>`` (GeV) and per event ``npv``, ``pileup`` of one file."""
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in event_chunks(path):
        events = reconstruct(chunk, methods=methods, models=models or None, device=device, resolution=_UNCALIBRATED)
        gen_pt, gen_phi = to_numpy(events.GenMET.pt, np.float64), to_numpy(events.GenMET.phi, np.float64)
        values = {
            "npv": to_numpy(events.PV.npvsGood, np.float64),
            "pileup": to_numpy(events.Pileup.nTrueInt, np.float64),
        }
        for m in methods:
            rec = events[MET_COLUMNS[m]]
            residuals = met_residuals(to_numpy(rec.pt, np.float64), to_numpy(rec.phi, np.float64), gen_pt, gen_phi)
            values[f"dx_{m}"], values[f"dy_{m}"] = residuals.dpx, residuals.dpy
            values[f"sum_{m}"] = to_numpy(rec.sumEt, np.float64)
        for k, v in values.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="generated ROOT files with PFCands and GenMET (several pileups)")
    parser.add_argument("--output", required=True, help="the resolution table to write (JSON)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--model", action="append", default=[], metavar="METHOD=DIR", help="a network other than the shipped ones"
    )
    parser.add_argument("--bins", type=int, default=10, help="quantile bins of the scalar pT sum per pileup")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    """Fit and write the table; prints per method the coefficients and per bin measured vs fitted σ."""
    try:
        check_output(args.output)
        models = dict(spec.split("=", 1) for spec in args.model)
    except (OSError, ValueError) as err:
        print(f"coffea-mlreco calibrate-met: {err}", file=sys.stderr)
        return 2
    data: dict[str, list[np.ndarray]] = {}
    for path in args.files:
        for k, v in residuals_by_method(path, args.methods, models, args.device).items():
            data.setdefault(k, []).append(v)
    arrays = {k: np.concatenate(v) for k, v in data.items()}
    group = np.round(arrays["pileup"] / 10.0) * 10.0  # the files' pileup settings (Poisson means)
    resolutions, bins = {}, []
    for m in args.methods:
        resolution, rows = calibrate_resolution(
            arrays[f"dx_{m}"],
            arrays[f"dy_{m}"],
            arrays[f"sum_{m}"],
            arrays["npv"],
            group,
            quantiles=args.bins,
            pileup_dependent=m in PUPPI_WEIGHTED,
        )
        resolutions[m] = resolution
        bins += [{"method": m, **r} for r in rows]
        print(f"{m}: sigma per MET component (GeV) in bins of sum_pt, per pileup")
        for r in rows:
            print(
                f"   PU {r['pileup']:5.0f}  n {r['n']:6.0f}  sum_pt {r['sum_pt']:8.1f}  npv {r['npv']:6.1f}  "
                f"sigma {r['sigma']:6.2f}"
            )
    calibration: dict[str, Any] = {
        "command": "coffea-mlreco calibrate-met " + " ".join(Path(f).name for f in args.files),
        "files": [describe_sample(f) for f in args.files],
        "events": len(arrays["npv"]),
        "models": models or "shipped, chosen by each chunk's pileup",
    }
    with atomic_file(args.output) as partial:
        write_resolutions(partial, resolutions, calibration, bins)
    print(f"wrote {args.output}")
    return 0
