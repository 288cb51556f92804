"""The di-tau processor through coffea's Runner and as a dask graph through ``apply_to_fileset`` (identical
histograms), its invalid-event count, its models, its report section and ``coffea-mlreco evaluate --tasks ditau``."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import dask
import hist
import numpy as np
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea_mlreco.processors.ditau import DiTauProcessor
from column_modes import open_events

from coffea_mlreco.core import MissingBranchError
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.core.metrics import histogram_roc
from coffea_mlreco.ditau import reconstruct
from coffea_mlreco.ditau.columns import FILE_MET_MODEL
from coffea_mlreco.ditau.inputs import Channel
from coffea_mlreco.ditau.report import dataset_kind, ditau_section
from coffea_mlreco.evaluation.tasks import TaskOptions

# real NanoAOD (and our files without PFCands) cross-reference collections the file does not store
pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning")

RECO_FIELDS = {
    "mass_vis",
    "mass_collinear",
    "mass_fastmtt",
    "collinear_status",
    "fastmtt_status",
    "tau1_fastmtt",
    "tau2_fastmtt",
    "channel",
    "mass_ml",
    "tau1_ml",
    "tau2_ml",
}
METHODS = {"collinear", "fastmtt", "transformer"}  # the transformer's weights ship with the package


def run(fileset: dict[str, Path], chunksize: int = 1000, instance: DiTauProcessor | None = None) -> dict[str, Any]:
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=NanoAODSchema, chunksize=chunksize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return runner(
            {name: {"files": {str(path): "Events"}} for name, path in fileset.items()},
            processor_instance=instance or DiTauProcessor(),
            treename="Events",
        )


def run_graph(fileset: dict[str, Path], client: Any) -> dict[str, Any]:
    """The processor as dask-awkward graphs through ``apply_to_fileset``, computed on the ``client``."""
    from coffea.dataset_tools import apply_to_fileset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        graphs = apply_to_fileset(
            DiTauProcessor(),
            {name: {"files": {str(path): "Events"}} for name, path in fileset.items()},
            schemaclass=NanoAODSchema,
        )
    (outputs,) = dask.compute(graphs, scheduler=client.get)
    return outputs


@pytest.fixture(scope="module")
def output(ditau_files: dict[str, Path]) -> dict[str, Any]:
    return run(ditau_files)


@pytest.fixture(scope="module")
def report(output: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    return ditau_section(output, tmp_path_factory.mktemp("ditau_report"))


def test_output_keys(output: dict[str, Any], ditau_events: dict[str, Any]) -> None:
    assert output["events"] == {name: len(events) for name, events in ditau_events.items()}
    assert output["events_invalid"] == 0
    assert set(output["histograms"]) == {"ratio", "mass", "failed"}
    assert set(output["seconds"]) == set(output["events_per_method"]) == METHODS
    assert 0 < output["events_per_method"]["fastmtt"] == output["events_selected"]
    assert {str(d) for d in output["histograms"]["mass"].axes["dataset"]} == {"htautau", "ztautau"}


def test_process_leaves_the_events_alone(ditau_events: dict[str, Any]) -> None:
    """process() fills from its own copy of the events: the caller's array gains no column, and the counts
    agree with ``reconstruct`` on the same events."""
    events = ditau_events["htautau"][:300]
    fields = list(events.fields)
    result = DiTauProcessor().process(events)
    assert list(events.fields) == fields and "DiTauReco" not in events.fields
    reco = reconstruct(events).DiTauReco
    selected = ak.to_numpy(reco.channel) >= 0
    assert result["events_selected"] == selected.sum() > 0 and result["events_invalid"] == 0
    assert result["events_per_method"] == {m: selected.sum() for m in METHODS}
    mass = result["histograms"]["mass"]
    for method, field in (("m_vis", "mass_vis"), ("fastmtt", "mass_fastmtt"), ("transformer", "mass_ml")):
        filled = mass[{"method": method, "dataset": "default"}]
        assert filled.sum(flow=True) == selected.sum()
        values = ak.to_numpy(reco[field])[selected]
        expected = hist.Hist(filled.axes[0]).fill(values)
        assert np.array_equal(filled.values(flow=True), expected.values(flow=True)), method


def test_report_metrics(report: Any) -> None:
    metrics = report.metrics
    assert set(metrics) == METHODS
    for values in metrics.values():
        assert {"bias", "resolution", "n", "channels", "auc_h_vs_z", "n_selected"} <= set(values)
        assert 0 < values["n"] <= values["n_selected"]
        assert {"tautau", "mutau", "etau"} <= set(values["channels"])
        assert sum(c["n"] for c in values["channels"].values()) == values["n"]
    assert metrics["fastmtt"]["resolution"] < metrics["collinear"]["resolution"]
    assert abs(metrics["fastmtt"]["bias"]) < 0.1
    assert metrics["fastmtt"]["auc_h_vs_z"] > 0.7
    assert set(report.throughput) == {f"ditau/{m}" for m in METHODS}
    assert all(v > 0 for v in report.throughput.values())
    assert "ditau/fastmtt/ratio_tautau" in report.root_histograms
    assert "ditau/fastmtt/mass_htautau" in report.root_histograms
    assert report.html.count("<img") == 3  # ratio + one mass plot per dataset


def test_auc_against_ranks(output: dict[str, Any], auc: Any) -> None:
    h = output["histograms"]["mass"]
    higgs, z = (h[{"method": "fastmtt", "dataset": d}] for d in ("htautau", "ztautau"))
    assert histogram_roc(higgs, higgs)[2] == pytest.approx(0.5)
    centres = h.axes["mass"].centers  # the same number from the bin centres, by ranks
    sig = np.repeat(centres, higgs.values().astype(int))
    bkg = np.repeat(centres, z.values().astype(int))
    assert histogram_roc(higgs, z)[2] == pytest.approx(auc(sig, bkg), abs=1e-3)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("htautau", "h"),
        ("ztautau", "z"),
        ("v1_dy-ll_PU60", "z"),
        ("GluGluHToTauTau_M125", "h"),
        ("DYJetsToLL_M-50", "z"),
        ("ttbar-semilep", None),
        ("hz", None),
    ],
)
def test_dataset_kind(name: str, kind: str | None) -> None:
    assert dataset_kind(name) == kind


def test_empty_chunk(ditau_events: dict[str, Any], tmp_path: Path) -> None:
    events = ditau_events["ztautau"][:0]
    out = DiTauProcessor().process(events)
    assert out["events_selected"] == out["events_invalid"] == 0 and out["events"] == {"default": 0}
    report = ditau_section(out, tmp_path)
    assert report.metrics == {} and report.throughput == {}


def test_real_nanoaod(real_nano_dy: Path, tmp_path: Path) -> None:
    """CMS NanoAOD has no TauProd: by default the processor runs the collinear and FastMTT methods there, and a
    transformer asked for explicitly names the missing branch."""
    out = run({"dy": real_nano_dy})
    assert out["events"] == {"dy": 40} and out["events_invalid"] == 0
    assert set(out["events_per_method"]) == {"collinear", "fastmtt"}
    report = ditau_section(out, tmp_path)
    assert set(report.metrics) == {"collinear", "fastmtt"}
    for values in report.metrics.values():
        assert "auc_h_vs_z" not in values  # one dataset only
        assert values["n_selected"] == out["events_selected"] > 0
    with pytest.raises(MissingBranchError, match="TauProd_tauIdx"):
        DiTauProcessor(methods=("fastmtt", "transformer")).process(open_events(real_nano_dy, "eager"))


@pytest.fixture(scope="module")
def poisoned(ditau_small: Path, copy_events: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A copy of the small H→ττ file whose first Tau pT of one selected τh event is NaN, and that event."""
    reco = reconstruct(open_events(ditau_small, "eager")).DiTauReco
    channel = ak.to_numpy(reco.channel)
    event = int(np.flatnonzero(np.isin(channel, [Channel.TAUTAU, Channel.MUTAU, Channel.ETAU]))[0])

    def poison(branches: dict[str, Any]) -> None:
        taus = branches["Tau"]
        counts = ak.to_numpy(ak.num(taus))
        pt = to_numpy(ak.flatten(taus.pt)).copy()
        pt[int(counts[:event].sum())] = np.nan
        branches["Tau"] = ak.with_field(taus, ak.unflatten(pt, counts), "pt")

    return copy_events(ditau_small, tmp_path_factory.mktemp("poisoned") / "poisoned.root", poison), event


def _same_histograms(graph: dict[str, Any], runner: dict[str, Any]) -> None:
    """The per-dataset dask outputs add up to the Runner's histograms, bin for bin."""
    datasets = list(graph)
    for name, expected in runner["histograms"].items():
        parts = [graph[d]["histograms"][name] for d in datasets]
        if name == "mass":  # a growing dataset axis: compare dataset by dataset
            for d, part in zip(datasets, parts, strict=True):
                assert np.array_equal(
                    part[{"dataset": d}].values(flow=True), expected[{"dataset": d}].values(flow=True)
                ), (name, d)
            continue
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        assert np.array_equal(total.values(flow=True), expected.values(flow=True)), name


@pytest.mark.parametrize("which", ["generated", "real"])
def test_runner_and_apply_to_fileset_fill_the_same_histograms(
    which: str, poisoned: tuple[Path, int], dask_client: Any, request: pytest.FixtureRequest
) -> None:
    path = poisoned[0] if which == "generated" else request.getfixturevalue("real_nano_dy")
    fileset = {"htautau" if which == "generated" else "dy": path}
    eager = run(fileset, chunksize=100_000)  # one chunk per file, as one partition per file
    graph = run_graph(fileset, dask_client)
    _same_histograms(graph, eager)
    (dataset,) = fileset
    lazy = graph[dataset]
    assert "seconds" not in lazy and set(eager["seconds"]) == set(eager["events_per_method"])
    for key in ("events", "events_invalid", "events_selected", "events_per_method"):
        assert lazy[key] == eager[key], key
    assert eager["events_invalid"] == (1 if which == "generated" else 0)


def test_invalid_events_are_counted_and_left_out(ditau_small: Path, poisoned: tuple[Path, int], tmp_path: Path) -> None:
    path, event = poisoned
    clean, bad = run({"htautau": ditau_small}), run({"htautau": path})
    assert (clean["events_invalid"], bad["events_invalid"]) == (0, 1)
    assert bad["events_selected"] == clean["events_selected"] - 1  # the poisoned event had a pair
    m_vis = reconstruct(open_events(ditau_small, "eager")).DiTauReco.mass_vis[event]
    for method in ("m_vis", "collinear", "fastmtt", "transformer"):
        difference = clean["histograms"]["mass"][{"method": method, "dataset": "htautau"}].values(flow=True) - bad[
            "histograms"
        ]["mass"][{"method": method, "dataset": "htautau"}].values(flow=True)
        assert difference.sum() == 1 and difference.min() == 0, method  # exactly that event is missing
    axis = clean["histograms"]["mass"].axes["mass"]
    assert (
        clean["histograms"]["mass"][{"method": "m_vis", "dataset": "htautau"}].values(flow=True)
        - bad["histograms"]["mass"][{"method": "m_vis", "dataset": "htautau"}].values(flow=True)
    )[axis.index(m_vis) + 1] == 1
    report = ditau_section(bad, tmp_path)
    assert all(values["n_invalid"] == 1 for values in report.metrics.values())
    assert "1 event(s) with NaN/inf inputs" in report.html


def test_report_without_seconds(output: dict[str, Any], tmp_path: Path) -> None:
    """A dask-mode output has no timings: the report has no throughput rows, the metrics are the same."""
    lazy_like = {k: v for k, v in output.items() if k != "seconds"}
    report = ditau_section(lazy_like, tmp_path)
    assert report.throughput == {} and "Events / s" not in report.html
    timed = ditau_section(output, tmp_path)
    assert report.metrics == timed.metrics and timed.throughput


def test_model_directory_and_options(ditau_small: Path, tmp_path: Path) -> None:
    """``models=`` and ``options.models_for("ditau")`` take a model directory; ``models=`` wins."""
    import shutil

    from coffea_mlreco.ditau.wrappers import DITAU_MODELS

    weights = Path(DITAU_MODELS.card(FILE_MET_MODEL)["weights"])  # what events without MLMET get by default
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(weights, folder)
    shutil.copy(weights.with_suffix(".json"), folder / "card.json")
    from_options = DiTauProcessor(options=TaskOptions(device="cpu", models={"ditau": {"transformer": str(folder)}}))
    assert Path(from_options.model.backend.weights).parent == folder.resolve()
    explicit = DiTauProcessor(
        models={"transformer": FILE_MET_MODEL}, options=TaskOptions(models={"ditau": {"transformer": str(folder)}})
    )
    assert Path(explicit.model.backend.weights) == weights.resolve()
    events = open_events(ditau_small, "eager")
    a, b = from_options.process(events), DiTauProcessor().process(events)
    for name in ("mass", "ratio"):
        assert np.array_equal(a["histograms"][name].values(flow=True), b["histograms"][name].values(flow=True))
    with pytest.raises(ValueError, match="models= keys"):
        DiTauProcessor(models={"collinear": str(folder)})
    with pytest.raises(ValueError, match="unknown di-tau method"):
        DiTauProcessor(methods=("svfit",))


def test_evaluate_ditau(ditau_files: dict[str, Path], tmp_path: Path) -> None:
    from coffea_mlreco.cli import main

    out = tmp_path / "report"
    files = [str(ditau_files[name]) for name in ("htautau", "ztautau")]
    assert main(["evaluate", *files, "--tasks", "ditau", "--output", str(out), "--chunksize", "2000"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["ditau"]) == METHODS
    assert not math.isnan(metrics["ditau"]["transformer"]["auc_h_vs_z"])
    assert set(metrics["throughput"]) == {f"ditau/{m}" for m in METHODS}
    assert "met" not in metrics
