"""Fault campaign: one event's input made NaN or ±inf, per task (met, ttbar, ditau, mem network-only, mlpf).

The bad value is written into a copy of a small generated file (30 events, pileup 0), so the same bad event reaches both
``coffea_mlreco.<task>.reconstruct`` and ``coffea-mlreco evaluate``. Protection under test: the per-event validity
check of :mod:`coffea_mlreco.core.columns` — the event holding the NaN/inf gets blank outputs (NaN floats, −1 integers,
False booleans, ``valid`` False), every other event's columns are bit-for-bit those of the clean file,
``on_invalid="raise"`` raises ``NonFiniteInputError`` naming the input, and ``evaluate`` finishes (exit 0) with
``meta.invalid_events`` = 1 for the task instead of failing the run.

The report's figures are built but not drawn (``exp_label`` and ``Figure.savefig`` stubbed, a placeholder file
written instead of each PNG): drawing them costs seconds per task and is not what this test checks; the metrics,
histograms and HTML of the report are computed as in any run.

The poisoned inputs are chosen so that replacing the bad value by 0 (what ``on_invalid="flag"`` feeds the kernel) does
not change the number of objects an event shows a network, so the clean and the flagged runs batch the events
identically and exact equality holds.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import matplotlib.figure
import mplhep
import numpy as np
import pytest
import uproot
from column_modes import assert_same_columns, open_events

from coffea_mlreco.cli import main
from coffea_mlreco.core import NonFiniteInputError
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.simulation import generate_sample

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference:RuntimeWarning")

N_EVENTS = 30
"""Events per generated sample (pileup 0: a few seconds for the three samples)."""


@dataclass(frozen=True)
class NonFiniteCase:
    """One task's non-finite-input scenario.

    Attributes:
        task: the task (``coffea_mlreco.<task>.reconstruct``, ``evaluate --tasks <task>``).
        process: the generated process the task selects events of.
        collection, field: the input made non-finite (of the event's first object for a jagged collection).
        value: the non-finite value written there (NaN, +inf or −inf).
        methods: the ``methods`` given to ``reconstruct`` (None: every method the file supports).
        interesting: per event, True where the clean run reconstructed something (the poisoned event is the first
            such event that has the poisoned object), so that blanking it is visible.
    """

    task: str
    process: str
    collection: str
    field: str
    value: float
    methods: tuple[str, ...] | None
    interesting: Callable[[ak.Array], np.ndarray]


def _finite(values: ak.Array) -> np.ndarray:
    return np.isfinite(to_numpy(values, np.float64))


CASES = (
    NonFiniteCase("met", "ttbar-semilep", "PFCands", "phi", np.nan, None, lambda reco: _finite(reco.MLMET.pt)),
    NonFiniteCase(
        "ttbar",
        "ttbar-semilep",
        "MET",
        "phi",
        np.inf,
        None,
        lambda reco: to_numpy(reco.TTbarReco.chi2.had_b) >= 0,
    ),
    # the tau, which every di-tau method reads (evaluate's di-tau methods read the reconstructed MET, not the file's)
    NonFiniteCase("ditau", "htautau", "Tau", "phi", np.nan, None, lambda reco: _finite(reco.DiTauReco.mass_fastmtt)),
    NonFiniteCase(
        "mem",
        "dy-ll",
        "Muon",
        "phi",
        -np.inf,
        ("network",),
        lambda reco: to_numpy(reco.MEMReco.selected, bool),
    ),
    NonFiniteCase(
        "mlpf",
        "ttbar-semilep",
        "PFTrack",
        "phi",
        np.nan,
        None,
        lambda reco: to_numpy(reco.MLPFReco.n_cands) > 0,
    ),
)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated samples by process, 30 events at pileup 0; the tt̄ one with detector elements (for MLPF)."""
    folder = tmp_path_factory.mktemp("non_finite_samples")
    return {
        process: generate_sample(
            process,
            N_EVENTS,
            0,
            seed=20,
            output=folder / f"{process}.root",
            progress=False,
            elements=process == "ttbar-semilep",
        )
        for process in sorted({case.process for case in CASES})
    }


@pytest.fixture
def figures_not_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Report figures are built but never drawn: no experiment label, an empty placeholder file for each PNG."""

    def placeholder(figure: matplotlib.figure.Figure, fname: Any, *args: Any, **kwargs: Any) -> None:
        del figure, args, kwargs
        Path(fname).write_bytes(b"")

    monkeypatch.setattr(mplhep.label, "exp_label", lambda *args, **kwargs: None)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", placeholder)


def write_with_value(source: Path, target: Path, collection: str, field: str, event: int, value: float) -> Path:
    """Copy ``source``'s ``Events`` tree to ``target`` with ``{collection}_{field}`` of ``event`` (its first object,
    for a jagged collection) set to ``value``; every other value is copied unchanged."""
    with uproot.open(source) as f:
        arrays = f["Events"].arrays()
    names = set(arrays.fields)
    prefixes = {name.partition("_")[0] for name in names if "_" in name}
    jagged: dict[str, dict[str, ak.Array]] = {}
    branches: dict[str, Any] = {}
    for name in arrays.fields:
        prefix, _, rest = name.partition("_")
        if rest and f"n{prefix}" in names:
            jagged.setdefault(prefix, {})[rest] = arrays[name]
        elif not (name.startswith("n") and name[1:] in prefixes):  # counters are rewritten by uproot
            branches[name] = arrays[name]
    if collection in jagged:
        values = jagged[collection][field]
        counts = to_numpy(ak.num(values))
        assert counts[event] > 0, f"event {event} has no {collection}"
        flat = to_numpy(ak.flatten(values)).copy()
        flat[int(counts[:event].sum())] = value
        jagged[collection][field] = ak.unflatten(flat, counts)
    else:
        flat = to_numpy(branches[f"{collection}_{field}"]).copy()
        flat[event] = value
        branches[f"{collection}_{field}"] = flat
    branches.update({prefix: ak.zip(fields) for prefix, fields in jagged.items()})
    with uproot.recreate(target) as f:
        f.mktree("Events", branches)
    return target


def _new_columns(task: str, events: Any, case: NonFiniteCase, on_invalid: str = "flag") -> ak.Array:
    """The columns ``coffea_mlreco.<task>.reconstruct`` appends, as one record per event."""
    reconstruct = importlib.import_module(f"coffea_mlreco.{task}").reconstruct
    reco = reconstruct(events, methods=case.methods, device="cpu", on_invalid=on_invalid)
    names = [name for name in reco.fields if name not in events.fields]
    assert names, f"{task}.reconstruct appended no column"
    return ak.zip({name: reco[name] for name in names}, depth_limit=1)


def _leaf_values(array: ak.Array) -> list[np.ndarray]:
    """Every number of ``array`` (any nesting of records and lists), one flat array per leaf."""
    if ak.fields(array):
        return [leaf for name in ak.fields(array) for leaf in _leaf_values(array[name])]
    return [to_numpy(ak.flatten(array, axis=None))]


def assert_blank(event_columns: ak.Array) -> None:
    """Every output of one event is blank: NaN floats, −1 integers, False booleans (``valid`` among them)."""
    for values in _leaf_values(event_columns):
        if values.dtype.kind == "f":
            assert np.isnan(values).all(), values
        elif values.dtype.kind == "b":
            assert not values.any(), values
        else:
            assert (values == -1).all(), values


def _has_object(events: Any, collection: str) -> np.ndarray:
    values = events[collection]
    if values.ndim == 1:
        return np.ones(len(events), bool)
    return to_numpy(ak.num(values, axis=1)) > 0


@pytest.mark.parametrize("case", CASES, ids=[case.task for case in CASES])
@pytest.mark.usefixtures("figures_not_drawn")
def test_non_finite_input_invalidates_only_its_event(
    case: NonFiniteCase, samples: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_file = samples[case.process]
    clean_events = open_events(clean_file, "eager")
    clean = _new_columns(case.task, clean_events, case)
    candidates = np.flatnonzero(case.interesting(clean) & _has_object(clean_events, case.collection))
    assert candidates.size >= 2, f"{case.task}: too few reconstructed events in the generated sample"
    event = int(candidates[0])
    bad_file = write_with_value(
        clean_file, tmp_path / f"{case.task}_nonfinite.root", case.collection, case.field, event, case.value
    )

    bad_events = open_events(bad_file, "eager")
    flagged = _new_columns(case.task, bad_events, case)
    others = np.arange(len(clean)) != event
    assert_blank(flagged[event : event + 1])
    assert_same_columns(flagged[others], clean[others])
    for name in ak.fields(flagged):  # every per-event record says which events are valid
        if ak.fields(flagged[name]) and flagged[name].ndim == 1:
            np.testing.assert_array_equal(ak.to_numpy(flagged[name].valid), others, err_msg=name)
    with pytest.raises(NonFiniteInputError, match=rf"{case.collection}\.{case.field}"):
        _new_columns(case.task, bad_events, case, on_invalid="raise")

    report = tmp_path / "report"
    status = main(["evaluate", str(bad_file), "--tasks", case.task, "--device", "cpu", "--output", str(report)])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "Traceback" not in err
    meta = json.loads((report / "metrics.json").read_text())["meta"]
    assert meta["invalid_events"] == {case.task: 1}
    assert meta["events"] == N_EVENTS
