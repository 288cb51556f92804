"""What pileup costs m_ττ, on the same hard-scatter events: every di-tau method at two pileups, event by event.

``coffea-mlreco generate`` draws the hard scatter (Pythia, re-seeded per chunk from the seed and the chunk index) and
the vertex positions before the pileup overlay, so two files of one process and one seed at different pileup hold
the same generator events under the same ``(luminosityBlock, event)``; only the pileup and the detector's random
smearing differ, provided both are made in the same chunks: ``--chunk-size`` must be equal (the default depends
on the pileup: give the low-pileup file the high one's, e.g. 155 for PU 60); the script checks that the generator
MET of every event found in both agrees.

This runs the analyst's path on each file (``met.reconstruct`` of PUPPI and the Perceiver's ``MLMET`` on the events
with a pair, then ``ditau.reconstruct`` with the shipped models, chosen by pileup) and prints, per pileup, the
median and resolution (P84 − P16)/2 of m/m_gen − 1 and the AUC of the mass (H vs Z) of each method: on every
selected event with two generator taus, and on the events selected at both pileups.

The low-pileup figures are what the same events allow without the pileup: pileup only adds particles from
independent vertices to them, so what a method reaches at high pileup, a method could reach at low pileup as well
(by overlaying simulated pileup itself). A goal at high pileup below every method's low-pileup figure asks for a
reconstruction better than any we have even without pileup. Bootstrap errors (200 resamplings of events) are given
for the resolutions and for the paired differences.

    python benchmarks/ditau_pileup_cost.py --low H0.root Z0.root --high H60.root Z60.root [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import platform
import warnings
from pathlib import Path

import numpy as np
from coffea_mlreco.processors.ditau import generator_mass

from coffea_mlreco import ditau, met
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.metrics import met_residuals, resolution, roc_auc
from coffea_mlreco.ditau.columns import MASS_FIELDS, PairOrInvalid, pair_columns
from coffea_mlreco.ditau.inputs import Channel
from coffea_mlreco.training.cached_arrays import cached_arrays, concat_arrays, event_chunks

METHODS = ("fastmtt", "fastmtt_mlmet", "transformer")
MET_READ = ("PuppiMETReco", "MLMET")
BOOTSTRAP = 200


def file_masses(path: str, cache_dir: Path) -> dict[str, np.ndarray]:
    """Per selected event with two generator taus: its id, channel, m_gen, each method's m_ττ (GeV) and the x and y
    residuals to the generator MET of the METs they read (GeV); cached per file (:func:`cached_arrays`)."""
    return cached_arrays(path, cache_dir, "ditau-pileup-cost", _masses, read=lambda p: p)


def _masses(path: Path) -> dict[str, np.ndarray]:
    parts: list[dict[str, np.ndarray]] = []
    for chunk in event_chunks(path):
        columns = pair_columns(chunk)
        events = chunk[to_numpy(PairOrInvalid(columns)(chunk), bool)]
        events = met.reconstruct(events, methods=["puppi", "perceiver"], device="cpu")
        reco = ditau.reconstruct(events, device="cpu")["DiTauReco"]
        m_gen = generator_mass(events)
        channel = to_numpy(reco.channel, np.int64)
        with np.errstate(invalid="ignore"):
            keep = to_numpy(reco.valid, bool) & (channel >= 0) & np.isfinite(m_gen) & (m_gen > 0)
        gen_pt, gen_phi = to_numpy(events.GenMET.pt, np.float64), to_numpy(events.GenMET.phi, np.float64)
        values = {
            "luminosityBlock": to_numpy(events.luminosityBlock, np.int64),
            "event": to_numpy(events.event, np.int64),
            "channel": channel,
            "m_gen": m_gen,
            "gen_met": gen_pt,
            **{m: to_numpy(reco[MASS_FIELDS[m]], np.float64) for m in METHODS},
        }
        for column in MET_READ:
            r = met_residuals(events[column].pt, events[column].phi, gen_pt, gen_phi)
            values[f"{column}_dx"], values[f"{column}_dy"] = r.dpx, r.dpy
        parts.append({name: np.asarray(array)[keep] for name, array in values.items()})
    return concat_arrays(parts)


def sample(signal: str, backgrounds: list[str], cache_dir: Path) -> dict[str, np.ndarray]:
    """The files' events together, with ``is_signal`` (first file) and a ``key`` unique per (file, event)."""
    arrays = [file_masses(p, cache_dir) for p in [signal, *backgrounds]]
    out = concat_arrays(arrays)
    out["is_signal"] = np.concatenate([np.full(len(a["event"]), i == 0) for i, a in enumerate(arrays)])
    out["key"] = np.concatenate([(i << 48) + (a["luminosityBlock"] << 32) + a["event"] for i, a in enumerate(arrays)])
    return out


def summary(data: dict[str, np.ndarray], method: str, rows: np.ndarray | None = None) -> tuple[float, float, float]:
    """Median and resolution of m/m_gen − 1, and the AUC of the mass (signal vs the rest)."""
    rows = np.arange(len(data["event"])) if rows is None else rows
    mass, ratio = data[method][rows], data[method][rows] / data["m_gen"][rows] - 1.0
    ok = np.isfinite(ratio)
    signal = data["is_signal"][rows]
    return (
        float(np.median(ratio[ok])),
        resolution(ratio[ok]),
        roc_auc(mass[ok & signal], mass[ok & ~signal]),
    )


def bootstrap(values: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Resolutions of each array of residuals (same events, same order) over :data:`BOOTSTRAP` resamplings."""
    n = len(values[0])
    out = np.empty((BOOTSTRAP, len(values)))
    for b in range(BOOTSTRAP):
        rows = rng.integers(0, n, n)
        out[b] = [resolution(v[rows]) for v in values]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--low", nargs="+", required=True, help="H → ττ file, then Z → ττ file(s), low pileup")
    parser.add_argument("--high", nargs="+", required=True, help="the same processes and seeds, high pileup")
    parser.add_argument(
        "--cache-dir",
        default="ditau_pileup_cost_cache",
        help="per-file masses, keyed by the file only: empty it after changing a model",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="coffea")
    cache = Path(args.cache_dir)
    low = sample(args.low[0], args.low[1:], cache)
    high = sample(args.high[0], args.high[1:], cache)
    print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}")

    common, rows_low, rows_high = np.intersect1d(low["key"], high["key"], return_indices=True)
    if not np.allclose(low["gen_met"][rows_low], high["gen_met"][rows_high], rtol=1e-5, atol=1e-4):
        raise SystemExit(
            "the files do not hold the same generator events under the same (luminosityBlock, event): generate "
            "them with the same process, seed and --chunk-size"
        )
    print(f"\nselected events: low {len(low['key'])}, high {len(high['key'])}, at both {len(common)}")
    print("\n| events | method | low: median / resolution / AUC | high: median / resolution / AUC |")
    print("|---|---|---|---|")
    for label, rl, rh in (("all selected", None, None), ("selected at both", rows_low, rows_high)):
        for m in METHODS:
            lo, hi = summary(low, m, rl), summary(high, m, rh)
            cells = [f"{x[0]:+.3f} / {x[1]:.3f} / {x[2]:.3f}" for x in (lo, hi)]
            print(f"| {label} | `{m}` | {cells[0]} | {cells[1]} |")

    # paired bootstrap on the common events: each method at both pileups, and the goal 0.8 × fastmtt (high)
    def ratio(data: dict[str, np.ndarray], m: str, rows: np.ndarray) -> np.ndarray:
        return data[m][rows] / data["m_gen"][rows] - 1.0

    finite = np.ones(len(common), bool)
    for m in METHODS:
        finite &= np.isfinite(ratio(low, m, rows_low)) & np.isfinite(ratio(high, m, rows_high))
    rl, rh = rows_low[finite], rows_high[finite]
    values = [ratio(low, m, rl) for m in METHODS] + [ratio(high, m, rh) for m in METHODS]
    boot = bootstrap(values, np.random.default_rng(1))
    central = np.array([resolution(v) for v in values])
    err = boot.std(axis=0)
    k = len(METHODS)
    print(f"\nselected at both, every method finite ({finite.sum()} events); resolution ± bootstrap error:")
    print("\n| method | low | high | high / low |")
    print("|---|---|---|---|")
    for i, m in enumerate(METHODS):
        r = boot[:, k + i] / boot[:, i]
        print(
            f"| `{m}` | {central[i]:.3f} ± {err[i]:.3f} | {central[k + i]:.3f} ± {err[k + i]:.3f} | "
            f"{central[k + i] / central[i]:.3f} ± {r.std():.3f} |"
        )
    goal = 0.8 * boot[:, k + METHODS.index("fastmtt")]
    best_low = boot[:, :k].min(axis=1)
    print(
        f"\n0.8 × `fastmtt` at high pileup: {0.8 * central[k]:.3f} ± {goal.std():.3f}; "
        f"the best method at low pileup on the same events: {central[:k].min():.3f} "
        f"(`{METHODS[int(np.argmin(central[:k]))]}`); goal − best at low pileup: "
        f"{0.8 * central[k] - central[:k].min():+.3f} ± {(goal - best_low).std():.3f}"
    )
    print("\nMET the methods read, σ per component (x and y residuals to the generator MET together), low → high:")
    for column in MET_READ:
        widths = [
            resolution(np.concatenate([d[f"{column}_dx"][r], d[f"{column}_dy"][r]])) for d, r in ((low, rl), (high, rh))
        ]
        print(f"  {column}: {widths[0]:.1f} → {widths[1]:.1f} GeV")
    per_channel = {int(c): (low["channel"][rl] == c) for c in np.unique(low["channel"][rl])}
    print("\nresolution per channel (reconstructed at low pileup), low → high:")
    for c, sel in per_channel.items():
        line = ", ".join(
            f"{m} {resolution(values[i][sel]):.3f} → {resolution(values[k + i][sel]):.3f}"
            for i, m in enumerate(METHODS)
        )
        print(f"  {Channel(c).name} ({sel.sum()} events): {line}")


if __name__ == "__main__":
    main()
