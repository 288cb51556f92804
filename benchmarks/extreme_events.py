"""Peak memory and time of one extreme event per task and method, against the same events without it.

An *extreme event* is one event of a small generated sample whose objects are multiplied: 100k PF candidates
(MET: PF, PUPPI, DeepMET, Perceiver), 40 jets (tt̄: χ², KLFitter-style fit, permutation DNN, SPANet; MEM), 100k
detector elements (MLPF), 2000 tau decay products (di-tau: collinear, FastMTT, transformer). The event's own
objects are repeated, each copy rotated in φ by a random angle (track–cluster links and other index fields are
renumbered within the copies), and the file is written again with uproot, so the event is read like any other.

Each (task, method, file) is measured in its own Python process so that the memory figures do not mix: the
process reads the file (eager NanoEvents), runs ``coffea_mlreco.<task>.reconstruct(events, methods=(method,))``
once on two events of the normal file (numba compilation, model loading), then once on the whole file, timed.

- peak MB: the process's peak resident set size during that call (Linux ``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``; elsewhere ``getrusage`` ``ru_maxrss``) minus the resident size just before it, i.e.
  everything the call holds at once — numpy, numba, awkward and torch on the CPU (``tracemalloc`` does not see
  torch's allocations). The warm-up is a full run on the normal file, so a normal run allocates little new;
- extreme event: ``processed`` when every output of the extreme event is finite where the normal run's is,
  ``rejected`` when a model wrapper refused it (`OversizedEventWarning`: more objects than ``max_event_tokens``;
  its outputs are NaN); a rejected event is run a second time with ``max_event_tokens`` raised to ``--raised``,
  to show what the limit saves;
- other events: whether their outputs equal those of the normal file (integers exactly, floats to 1e-5).

    python benchmarks/extreme_events.py [--work DIR] [--events 20] [--candidates 100000] [--jets 40]
                                        [--elements 100000] [--products 2000] [--tasks met ttbar ...]
                                        [--raised 262144] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from coffea_mlreco.core.columns import to_numpy

LINKS = {"clusterIdx": "PFCluster", "trackIdx": "PFTrack"}
"""Index fields that point into another collection of the same event: renumbered when both are multiplied
(copy k of a track links to copy k of its cluster), set to −1 in the copies otherwise."""
ANGLES = ("phi", "phiCalo")
"""Azimuth fields (rad) rotated in each copy."""

CASES: dict[str, dict[str, Any]] = {
    "met": {
        "process": "ttbar-semilep",
        "methods": ("pf", "puppi", "deepmet", "perceiver"),
        "inflate": {"PFCands": "candidates"},
        "selected": None,
    },
    "ttbar": {
        "process": "ttbar-semilep",
        "methods": ("chi2", "klfitter", "pdnn", "spanet"),
        "inflate": {"Jet": "jets"},
        "selected": "TTbarReco.chi2.had_b",
    },
    "mlpf": {
        "process": "ttbar-semilep",
        "methods": ("mlpf",),
        "inflate": {"PFTrack": "elements", "PFCluster": "elements"},
        "selected": None,
    },
    "ditau": {
        "process": "htautau",
        "methods": ("collinear", "fastmtt", "transformer"),
        "inflate": {"TauProd": "products"},
        "selected": "DiTauReco.mass_ml",
    },  # and a τh leg with products
    "mem": {
        "process": "zprime-ll",
        "methods": ("network",),
        "inflate": {"Jet": "jets"},
        "selected": "MEMReco.selected",
    },
}
"""Per task: the sample, the methods, which collections are multiplied (to the size given by which option) and
the output that tells an event the task selects (the extreme event is the first selected one)."""


def read_collections(path: Path) -> tuple[dict[str, ak.Array], dict[str, Any]]:
    """The ``Events`` tree of a NanoAOD-like file as ``({collection: N * var * record}, {flat branch: array})``."""
    arrays = uproot.open(path)["Events"].arrays(library="ak")
    names = list(arrays.fields)
    collections = {}
    for counter in (n for n in names if n.startswith("n") and arrays[n].ndim == 1):
        prefix = counter[1:] + "_"
        fields = [n for n in names if n.startswith(prefix) and arrays[n].ndim == 2]
        if fields:
            collections[counter[1:]] = ak.zip({f[len(prefix) :]: arrays[f] for f in fields})
    written = {f"{c}_{f}" for c, record in collections.items() for f in record.fields} | {f"n{c}" for c in collections}
    return collections, {n: arrays[n] for n in names if n not in written}


def inflate(path: Path, output: Path, event: int, sizes: dict[str, int], seed: int = 1) -> Path:
    """Write ``path`` again to ``output`` with ``event``'s collections in ``sizes`` multiplied to that many
    objects: the same number of copies of each (enough for the largest), cut to the size asked for. Collections
    linked to each other (tracks and clusters) must be asked for in whole copies, so that every link stays."""
    collections, flat = read_collections(path)
    own = {name: collections[name][event] for name in sizes}
    if any(len(objects) == 0 for objects in own.values()):
        raise ValueError(f"event {event} has no {', '.join(n for n, o in own.items() if not len(o))} to multiply")
    copies = max(math.ceil(n / len(own[name])) for name, n in sizes.items())
    rng = np.random.default_rng(seed)
    angles = np.concatenate([[0.0], rng.uniform(-np.pi, np.pi, copies - 1)])
    for name, n in sizes.items():
        objects, count = own[name], len(own[name])
        copy = np.repeat(np.arange(copies), count)[:n]
        columns = {}
        for field in objects.fields:
            values = np.tile(to_numpy(objects[field]), copies)[:n]
            if field in ANGLES:
                values = (values + angles[copy] + np.pi) % (2 * np.pi) - np.pi
            elif field in LINKS and LINKS[field] in sizes:
                values = np.where(values >= 0, values + copy * len(own[LINKS[field]]), values)
            elif field in LINKS:
                values = np.where(copy > 0, -1, values)
            columns[field] = values
        original = collections[name]
        collections[name] = ak.zip(
            {
                field: ak.concatenate(
                    [
                        original[field][:event],
                        ak.unflatten(columns[field].astype(ak.to_numpy(ak.flatten(original[field])).dtype), [n]),
                        original[field][event + 1 :],
                    ]
                )
                for field in objects.fields
            }
        )
    with uproot.recreate(output) as file:
        file.mktree("Events", {**collections, **flat})
    return output


# ---- one measurement, in its own process ----------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak() -> bool:
    """Reset the process's peak resident size (Linux ``clear_refs`` 5); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def _peak_mb(reset: bool) -> float:
    """The peak resident size since the reset (``VmHWM``), else since the process started (``ru_maxrss``)."""
    if reset:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _events(path: str) -> Any:
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    return NanoEventsFactory.from_root({path: "Events"}, schemaclass=NanoAODSchema, mode="eager").events()


def _new_columns(events: Any, out: Any) -> dict[str, list]:
    """The columns ``out`` adds to ``events`` (and ``PFCands``, which PUPPI extends), as Python lists."""
    return {name: ak.to_list(out[name]) for name in out.fields if name not in events.fields or name == "PFCands"}


def _same(a: Any, b: Any) -> bool:
    """Equal: integers and booleans exactly, floats to 1e-5 relative (float32 sums and products of a
    mini-batch padded to another length differ in the last bits), NaN equal to NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b))
    return a == b


def _finite(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return not (isinstance(value, float) and math.isnan(value))


def measure(
    task: str, method: str, path: str, normal: str, event: int, device: str, max_event_tokens: int
) -> dict[str, Any]:
    """Run one reconstruction (see the module docstring) and return its figures; ``max_event_tokens`` > 0
    replaces the wrappers' default `MAX_EVENT_TOKENS`."""
    from importlib import import_module

    from coffea_mlreco.inference import wrapper

    if max_event_tokens > 0:
        wrapper.MAX_EVENT_TOKENS = max_event_tokens
    warnings.simplefilter("ignore", RuntimeWarning)
    module = import_module(f"coffea_mlreco.{task}")
    warm = _events(normal)
    module.reconstruct(warm, methods=(method,), device=device)
    events = _events(path)
    rejected = 0
    reset = _reset_peak()
    before = _rss_mb()
    tic = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = module.reconstruct(events, methods=(method,), device=device)
        rejected = sum("rejected" in str(w.message) for w in caught)
    seconds = time.perf_counter() - tic
    peak = _peak_mb(reset)
    result = {"peak_mb": peak - before, "seconds": seconds, "rejected": rejected}
    if path != normal:
        reference = _new_columns(warm, module.reconstruct(warm, methods=(method,), device=device))
        ours = _new_columns(events, out)
        result["neighbours"] = all(
            _same(
                [v for i, v in enumerate(ours[k]) if i != event], [v for i, v in enumerate(reference[k]) if i != event]
            )
            for k in ours
        )
        result["finite"] = all(_finite(ours[k][event]) or not _finite(reference[k][event]) for k in ours)
    return result


# ---- the driver ------------------------------------------------------------------------------------------------
def _generate(process: str, events: int, output: Path) -> Path:
    if not output.exists():
        from coffea_mlreco.simulation import generate_sample

        generate_sample(process, events, 0, 11, output, progress=False, elements=process == "ttbar-semilep")
    return output


def _first_selected(task: str, column: str | None, path: Path) -> int:
    if column is None:
        return 0
    from importlib import import_module

    warnings.simplefilter("ignore", RuntimeWarning)
    events = _events(str(path))
    methods = {"ttbar": ("chi2",), "ditau": ("transformer",), "mem": ("network",)}[task]
    out = import_module(f"coffea_mlreco.{task}").reconstruct(events, methods=methods, device="cpu")
    values = out
    for part in column.split("."):
        values = values[part]
    values = to_numpy(values, np.float64)
    selected = np.isfinite(values) & (values > -1) & (values != 0)
    if task == "ditau":  # a pair with a hadronic tau that has decay products
        channel = to_numpy(out.DiTauReco.channel)
        selected &= np.isin(channel, [0, 1, 2]) & (to_numpy(ak.num(events.TauProd)) > 0)
    selected = np.flatnonzero(selected)
    if not selected.size:
        raise SystemExit(f"{path}: no event selected by {task}")
    return int(selected[0])


def _run(
    task: str, method: str, path: Path, normal: Path, event: int, device: str, max_event_tokens: int = 0
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--measure",
        task,
        method,
        str(path),
        str(normal),
        str(event),
        device,
        str(max_event_tokens),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--measure",
        nargs=7,
        help=argparse.SUPPRESS,
        metavar=("TASK", "METHOD", "FILE", "NORMAL", "EVENT", "DEVICE", "MAX_EVENT_TOKENS"),
    )
    parser.add_argument("--work", type=Path, default=None, help="folder for the samples (default: a temporary one)")
    parser.add_argument("--events", type=int, default=20, help="events per sample (pileup 0)")
    parser.add_argument("--candidates", type=int, default=100_000, help="PF candidates of the extreme MET event")
    parser.add_argument("--jets", type=int, default=40, help="jets of the extreme tt̄ and MEM event")
    parser.add_argument("--elements", type=int, default=100_000, help="tracks + clusters of the extreme MLPF event")
    parser.add_argument("--products", type=int, default=2000, help="tau decay products of the extreme di-tau event")
    parser.add_argument("--tasks", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--raised",
        type=int,
        default=1 << 18,
        metavar="N",
        help="max_event_tokens of the second run of a rejected extreme event (0: no second run)",
    )
    args = parser.parse_args()
    if args.measure:
        task, method, path, normal, event, device, limit = args.measure
        print(json.dumps(measure(task, method, path, normal, int(event), device, int(limit))))
        return
    warnings.simplefilter("ignore", RuntimeWarning)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for task in args.tasks:
            case = CASES[task]
            normal = _generate(case["process"], args.events, work / f"{case['process']}_pu0.root")
            event = _first_selected(task, case["selected"], normal)
            collections, _ = read_collections(normal)
            names = list(case["inflate"])
            total = {name: getattr(args, option) for name, option in case["inflate"].items()}
            if task == "mlpf":  # whole copies of the tracks and clusters, so that every link has its cluster
                own = {name: len(collections[name][event]) for name in names}
                copies = math.ceil(args.elements / sum(own.values()))
                total = {name: copies * n for name, n in own.items()}
            extreme = inflate(normal, work / f"{task}_extreme.root", event, total)
            size = " + ".join(f"{n} {name}" for name, n in total.items())
            usual = " + ".join(f"{len(collections[name][event])} {name}" for name in names)
            for method in case["methods"]:
                for label, path in (("normal: " + usual, normal), ("extreme: " + size, extreme)):
                    result = _run(task, method, path, normal, event, args.device)
                    rows.append((task, label, method, result))
                    print(task, label, method, result, file=sys.stderr, flush=True)
                if result.get("rejected") and args.raised:
                    label = f"extreme, max_event_tokens={args.raised}: {size}"
                    result = _run(task, method, extreme, normal, event, args.device, args.raised)
                    rows.append((task, label, method, result))
                    print(task, label, method, result, file=sys.stderr, flush=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, device {args.device}; {args.events} events per "
        f"sample at pileup 0, the extreme event is the first the task selects"
    )
    print("| task | event size | method | peak MB | seconds | extreme event | other events |")
    print("|---|---|---|---|---|---|---|")
    for task, label, method, result in rows:
        if "error" in result:
            print(f"| {task} | {label} | {method} | — | — | error: {result['error']} | — |")
            continue
        outcome = "—"
        if "finite" in result:
            outcome = (
                f"rejected ({result['rejected']} warning)"
                if result["rejected"]
                else ("processed" if result["finite"] else "processed, NaN outputs")
            )
        neighbours = "—" if "neighbours" not in result else ("unchanged" if result["neighbours"] else "CHANGED")
        print(
            f"| {task} | {label} | {method} | {result['peak_mb']:.0f} | {result['seconds']:.2f} | {outcome} | "
            f"{neighbours} |"
        )


if __name__ == "__main__":
    main()
