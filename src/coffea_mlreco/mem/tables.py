"""MEM weight tables from ROOT files: select dilepton events, integrate every hypothesis, write the ``.npz`` table.

    coffea-mlreco mem-weights FILE.root [FILE.root ...] --output table.npz [--hypotheses dy_sm zprime]
                              [--precision 0.005] [--jobs 2] [--seed 0] [--max-events N] [--use-sum-et]

For each file: the leading e⁺e⁻/μ⁺μ⁻ pair, jets and MET (:func:`coffea_mlreco.mem.inputs.dilepton_candidates`),
then :func:`coffea_mlreco.mem.mem_log_weights` per hypothesis on the selected events, in parallel over events
(``--jobs`` processes), and one table for all files (:func:`coffea_mlreco.mem.table_schema.write_mem_table`;
format in :mod:`coffea_mlreco.mem.table_schema`), the input of ``coffea-mlreco train mem``.

Conventions
    ``lep1`` is the ℓ⁻ and ``lep2`` the ℓ⁺ (:func:`coffea_mlreco.mem.inputs.charge_ordered`: the weight depends on
    the charges, the network's inputs carry them only through this order), ``jet1``/``jet2`` the two leading clean
    jets (absent: all zero), VEGAS seed ``--seed`` (event i of a file uses ``default_rng([seed, i])``), √s from the
    file's generator metadata (``Metadata/sqrt_s_TeV``, else 13.6 TeV). The MET resolution is taken at the default
    ΣE_T unless ``--use-sum-et`` (see :func:`coffea_mlreco.mem.inputs.integration_inputs`: the default keeps the
    weight a function of the network's inputs).
Dropped events
    an event whose weight is not finite for some hypothesis (zero weight: never seen for the shipped hypotheses)
    is dropped and counted in the provenance; events that did not reach the precision within ``max_evals`` are
    kept (their uncertainty is in ``log10_weight_err``) and counted per hypothesis (``unconverged``).
Provenance (per file; a table of several files lists them under ``parts``)
    ``file``, ``generator_seed`` (the file's ``Metadata/seed``, null for real data), ``generator`` (the whole
    metadata), ``events_in_file``, ``selected_events``, ``dropped_nonfinite``, ``unconverged``, ``vegas_seed``,
    ``precision``, ``max_evals``, ``met_resolution``, ``sqrt_s_GeV``, ``hypotheses`` (name → file), ``selection``,
    ``integrator``, ``package_version``.
Output
    The table appears complete or not at all: it is written as ``table.npz.partial-XXXXXXXX`` next to it and
    renamed when complete (`coffea_mlreco.core.outputs`). An output folder that cannot be written is one line and
    exit status 2 before any integration; Ctrl-C or SIGTERM stops the run with one line, exit status 1, and
    nothing written (an existing table at ``--output`` is left as it was).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.outputs import Interrupted, check_output, sigterm_as_interrupt
from coffea_mlreco.core.version import __version__
from coffea_mlreco.mem.deepmem import INPUT_NAMES
from coffea_mlreco.mem.hypothesis import load_hypothesis
from coffea_mlreco.mem.inputs import (
    DEFAULT_DILEPTON_SELECTION,
    DileptonSelection,
    charge_ordered,
    dilepton_candidates,
    integration_inputs,
    network_features,
)
from coffea_mlreco.mem.integration import MEMResult, mem_log_weights
from coffea_mlreco.mem.table_schema import SUM_ET, MEMTable, concat_mem_tables, write_mem_table
from coffea_mlreco.training.cached_arrays import open_events
from coffea_mlreco.training.provenance import describe_sample

__all__ = [
    "DEFAULT_HYPOTHESES",
    "add_arguments",
    "integrate_candidates",
    "mem_table_from_file",
    "mem_table_from_files",
    "run",
]

DEFAULT_HYPOTHESES: tuple[str, ...] = ("dy_sm", "zprime")
"""Background (SM Drell-Yan) and signal (Z′ 200 GeV) hypotheses of the shipped DeepMEM model."""
_DEFAULT_SQRT_S = 13600.0


def integrate_candidates(
    candidates: ak.Array,
    hypotheses: Sequence[str],
    *,
    precision: float = 0.01,
    seed: int = 0,
    n_workers: int = 1,
    max_evals: int = 200_000,
    use_sum_et: bool = False,
    sqrt_s: float = _DEFAULT_SQRT_S,
) -> dict[str, MEMResult]:
    """:func:`~coffea_mlreco.mem.mem_log_weights` of every hypothesis on *selected* dilepton candidates."""
    lep1, lep2, met = integration_inputs(candidates, use_sum_et)
    return {
        h: mem_log_weights(
            lep1, lep2, met, h, precision=precision, seed=seed, n_workers=n_workers, max_evals=max_evals, sqrt_s=sqrt_s
        )
        for h in hypotheses
    }


def _seed(generator: dict[str, str]) -> int | None:
    try:
        return int(generator["seed"])
    except (KeyError, ValueError):
        return None


def mem_table_from_file(
    path: str | Path,
    hypotheses: Sequence[str] = DEFAULT_HYPOTHESES,
    *,
    precision: float = 0.005,
    seed: int = 0,
    n_workers: int = 1,
    max_evals: int = 200_000,
    max_events: int | None = None,
    use_sum_et: bool = False,
    selection: DileptonSelection = DEFAULT_DILEPTON_SELECTION,
) -> MEMTable:
    """The MEM weight table of one file (module docstring); ``max_events`` caps the selected events integrated."""
    if max_events is not None and max_events < 1:
        raise ValueError("max_events must be positive")
    hyps = tuple(load_hypothesis(h).name for h in hypotheses)
    sample = describe_sample(str(path))
    generator = sample["generator"]
    sqrt_s = float(generator["sqrt_s_TeV"]) * 1000.0 if "sqrt_s_TeV" in generator else _DEFAULT_SQRT_S
    events = open_events(path)
    candidates = dilepton_candidates(events, selection)
    selected = to_numpy(candidates.selected, bool)
    event_number = to_numpy(events.event, np.int64)[selected]
    cands = candidates[selected]
    if max_events is not None:
        cands, event_number = cands[:max_events], event_number[:max_events]
    results = integrate_candidates(
        cands,
        hyps,
        precision=precision,
        seed=seed,
        n_workers=n_workers,
        max_evals=max_evals,
        use_sum_et=use_sum_et,
        sqrt_s=sqrt_s,
    )
    logw = np.stack([results[h].log10_weight for h in hyps], axis=1).reshape(len(cands), len(hyps))
    err = np.stack([results[h].log10_weight_err for h in hyps], axis=1).reshape(len(cands), len(hyps))
    good = np.isfinite(logw).all(axis=1) & np.isfinite(err).all(axis=1)
    features = network_features(cands)
    kinematics = {name: features[:, k].astype(np.float64) for k, name in enumerate(INPUT_NAMES)}
    lep1, lep2, met = integration_inputs(cands, use_sum_et)
    minus, plus = charge_ordered(lep1, lep2)
    for lep, values in (("lep1", minus), ("lep2", plus)):
        kinematics[f"{lep}_pdgId"] = values["pdgId"].astype(np.int64)
        for f in ("pt", "eta", "phi"):  # full precision (the features are float32)
            kinematics[f"{lep}_{f}"] = values[f]
    if use_sum_et:  # the per-event MET resolution's input (table_schema.SUM_ET)
        kinematics[SUM_ET] = met["sumEt"]
    kinematics = {k: v[good] for k, v in kinematics.items()}
    provenance = {
        "file": Path(path).name,
        "generator_seed": _seed(generator),
        "generator": generator,
        "events_in_file": sample["events"],
        "selected_events": int(selected.sum()),
        "integrated_events": len(cands),
        "dropped_nonfinite": int((~good).sum()),
        "unconverged": {h: int((~results[h].converged[good]).sum()) for h in hyps},
        "vegas_seed": seed,
        "precision": precision,
        "max_evals": max_evals,
        "met_resolution": "per-event MET_sumEt" if use_sum_et else "fixed at the default sum ET (160 GeV)",
        "sqrt_s_GeV": sqrt_s,
        "hypotheses": {h: Path(load_hypothesis(h).source).name for h in hyps},
        "selection": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(selection).items()},
        "integrator": "coffea_mlreco.mem.mem_log_weights (VEGAS)",
        "package_version": __version__,
    }
    return MEMTable(kinematics, hyps, logw[good], err[good], provenance, event_number[good])


def mem_table_from_files(
    paths: Sequence[str | Path], hypotheses: Sequence[str] = DEFAULT_HYPOTHESES, **kwargs: Any
) -> MEMTable:
    """One table of several files (:func:`mem_table_from_file` each, then concatenated)."""
    if not paths:
        raise ValueError("no input files")
    return concat_mem_tables([mem_table_from_file(p, hypotheses, **kwargs) for p in paths])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE.root", help="NanoAOD-like ROOT files")
    parser.add_argument("--output", "-o", required=True, help="the MEM weight table to write (.npz)")
    parser.add_argument(
        "--hypotheses",
        nargs="+",
        default=list(DEFAULT_HYPOTHESES),
        help="shipped hypothesis names or YAML files (default: dy_sm zprime)",
    )
    parser.add_argument("--precision", type=float, default=0.005, help="target relative uncertainty per weight")
    parser.add_argument("--max-evals", type=int, default=200_000, help="integrand evaluations per event at most")
    parser.add_argument("--jobs", type=int, default=1, help="processes integrating events in parallel")
    parser.add_argument("--seed", type=int, default=0, help="VEGAS seed (event i uses default_rng([seed, i]))")
    parser.add_argument("--max-events", type=int, default=None, help="integrate at most N selected events per file")
    parser.add_argument(
        "--use-sum-et",
        action="store_true",
        help="MET resolution from each event's MET_sumEt, written to the table as met_sumEt (the shipped "
        "DeepMEM's tables; default: at the default sum ET, a weight of the 14 DeepMEM inputs alone)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``mem-weights``: exit status 0 (table written), 1 (interrupted: nothing written), 2 (bad input, or an
    output that cannot be written)."""
    tic = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            if not str(args.output).endswith(".npz"):
                raise ValueError(f"--output must be an .npz file, got {args.output}")
            for path in args.files:
                if not Path(path).is_file():
                    raise ValueError(f"{path}: no such file")
            check_output(args.output)  # before the (long) integration
            table = mem_table_from_files(
                args.files,
                args.hypotheses,
                precision=args.precision,
                seed=args.seed,
                n_workers=args.jobs,
                max_evals=args.max_evals,
                max_events=args.max_events,
                use_sum_et=args.use_sum_et,
            )
            write_mem_table(
                args.output,
                table.kinematics,
                table.hypotheses,
                table.log10_weight,
                table.log10_weight_err,
                table.provenance,
                table.event,
            )
    except (OSError, ValueError, KeyError) as err:  # OSError includes OutputError (an unwritable output folder)
        print(f"coffea-mlreco mem-weights: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        where = str(err) if isinstance(err, Interrupted) else f"interrupted; nothing was written to {args.output}"
        print(f"coffea-mlreco mem-weights: {where}", file=sys.stderr)
        return 1
    print(
        f"wrote {len(table)} events x {len(table.hypotheses)} hypotheses ({', '.join(table.hypotheses)}) to "
        f"{args.output} in {time.perf_counter() - tic:.1f} s",
        file=sys.stderr,
    )
    return 0
