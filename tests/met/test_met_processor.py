"""The MET processor: same histograms under every executor, empty chunks, missing branches, physics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from coffea_mlreco.processors.met import METHODS, METProcessor, MissingBranchError, add_pfmet_reco

from coffea_mlreco.core.metrics import met_method_summary_from_hists

pytestmark = [
    # real NanoAOD cross-references collections the file does not store; coffea warns about each
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch .* already exists but:RuntimeWarning"),
]


def run_met(path: Path, executor: processor.executor.ExecutorBase, chunksize: int) -> dict[str, Any]:
    runner = processor.Runner(executor=executor, chunksize=chunksize, schema=NanoAODSchema)
    return runner({"sample": {"files": {str(path): "Events"}}}, METProcessor(), treename="Events")


def assert_same_histograms(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["histograms"].keys() == b["histograms"].keys()
    for name, h in a["histograms"].items():
        other = b["histograms"][name]
        assert h.axes == other.axes, name
        np.testing.assert_array_equal(h.view(flow=True), other.view(flow=True), err_msg=name)
    assert a["events"] == b["events"]
    assert a["events_per_method"] == b["events_per_method"]


@pytest.fixture(params=["synthetic", "real"])
def met_input(request: pytest.FixtureRequest) -> tuple[Path, int]:
    """(file, chunksize): the synthetic PF file in 4 chunks, the real DY NanoAOD in 4 chunks."""
    if request.param == "synthetic":
        return request.getfixturevalue("synthetic_nano"), 100
    return request.getfixturevalue("real_nano_dy"), 10


def test_identical_histograms_under_three_executors(met_input: tuple[Path, int], dask_client: Any) -> None:
    path, chunksize = met_input
    iterative = run_met(path, processor.IterativeExecutor(status=False), chunksize)
    futures = run_met(path, processor.FuturesExecutor(workers=2, status=False), chunksize)
    dask = run_met(path, processor.DaskExecutor(client=dask_client, status=False), chunksize)
    assert sum(iterative["events"].values()) > 0
    assert_same_histograms(iterative, futures)
    assert_same_histograms(iterative, dask)


def test_pf_met_reproduces_the_known_smearing(synthetic_nano: Path) -> None:
    out = run_met(synthetic_nano, processor.IterativeExecutor(status=False), 1000)
    h = out["histograms"]
    # the synthetic file has no usable PV collection, so PUPPI does not run
    assert out["events_per_method"] == {**dict.fromkeys(METHODS, 0), "pf": 400, "file_met": 400}
    pf = met_method_summary_from_hists(h["upar"], h["uperp"], "pf")
    file_met = met_method_summary_from_hists(h["upar"], h["uperp"], "file_met")
    # the synthetic PF sum equals −(GenMET + N(0, 12 GeV) per component); stat. error ≈ 0.6 GeV
    assert pf["resolution_upar"] == pytest.approx(12.0, abs=2.0)
    assert pf["resolution_uperp"] == pytest.approx(12.0, abs=2.0)
    assert abs(pf["bias_upar"]) < 2.0
    # the file's MET adds 5 GeV smearing and a 3 % scale on top
    assert file_met["resolution_uperp"] > pf["resolution_uperp"]
    assert file_met["bias_upar"] > pf["bias_upar"]
    for name in ("upar", "uperp", "dpx", "dpy"):
        assert h[name][{"method": "pf"}].sum(flow=True) == 400
    assert h["reco_vs_gen"][{"method": "file_met"}].sum(flow=True) == 400


def test_real_nanoaod_runs_cms_columns_only(real_nano_dy: Path) -> None:
    """Plain NanoAOD has no PF candidates: none of our methods runs; CMS's MET, RawMET and PuppiMET are compared."""
    out = run_met(real_nano_dy, processor.IterativeExecutor(status=False), 100)
    expected = {**dict.fromkeys(METHODS, 0), "file_met": 40, "cms_raw_pf": 40, "cms_puppi": 40}
    assert out["events_per_method"] == expected
    assert "pf" not in out["seconds"]
    assert out["events_truth"] == 40 and out["events_collision_data"] == 0
    h = out["histograms"]["upar"]
    for method in ("file_met", "cms_raw_pf", "cms_puppi"):
        assert h[{"method": method}].sum(flow=True) == 40
        assert out["histograms"]["met_pt"][{"method": method}].sum(flow=True) == 40
    assert h[{"method": "pf"}].sum(flow=True) == 0
    # CMS stores the significance of its PF MET only (from the MET covariance), not of RawMET or PuppiMET here
    significance = out["histograms"]["met_significance"]
    assert significance[{"method": "file_met"}].sum(flow=True) == 40
    assert significance[{"method": "cms_puppi"}].sum(flow=True) == 0


def _events(path: Path, mode: str) -> Any:
    return NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=NanoAODSchema, mode=mode, metadata={"filename": str(path)}
    ).events()


@pytest.mark.parametrize("mode", ["eager", "virtual"])
def test_pfmet_reco_column_is_minus_vector_sum(synthetic_nano: Path, mode: str) -> None:
    events = add_pfmet_reco(_events(synthetic_nano, mode))
    assert "PFMETReco" in events.fields
    pf = events.PFCands
    px = -ak.to_numpy(ak.sum(pf.pt * np.cos(pf.phi), axis=1))
    py = -ak.to_numpy(ak.sum(pf.pt * np.sin(pf.phi), axis=1))
    np.testing.assert_allclose(ak.to_numpy(events.PFMETReco.pt), np.hypot(px, py), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(ak.to_numpy(events.PFMETReco.px), px, rtol=1e-5, atol=1e-3)
    assert ak.num(pf, axis=1)[3] == 0 and events.PFMETReco.pt[3] == 0.0


@pytest.mark.parametrize("mode", ["eager", "virtual"])
def test_empty_chunk(synthetic_nano: Path, mode: str) -> None:
    out = METProcessor().process(_events(synthetic_nano, mode)[0:0])
    assert out["events_per_method"] == dict.fromkeys(METHODS, 0)
    assert all(h.sum(flow=True) == 0 for h in out["histograms"].values())


def test_empty_file_through_runner(tmp_path: Path, write_nano: Callable[..., Path]) -> None:
    path = write_nano(tmp_path / "empty.root", n_events=0)
    out = run_met(path, processor.IterativeExecutor(status=False), 100)
    assert out["events"] == {"sample": 0}
    assert all(h.sum(flow=True) == 0 for h in out["histograms"].values())


def test_without_genmet_distributions_only(tmp_path: Path, write_nano: Callable[..., Path]) -> None:
    """No GenMET: every method still fills its distributions; no residual is filled."""
    path = write_nano(tmp_path / "no_GenMET.root", n_events=20, drop=("GenMET",))
    out = METProcessor().process(_events(path, "virtual"))
    assert out["events_truth"] == 0
    assert out["histograms"]["met_pt"][{"method": "pf"}].sum(flow=True) == 20
    assert out["histograms"]["met_pt"][{"method": "file_met"}].sum(flow=True) == 20
    assert all(out["histograms"][name].sum(flow=True) == 0 for name in ("upar", "uperp", "reco_vs_gen", "response"))


@pytest.mark.parametrize("collection", ["MET"])
def test_missing_branch_names_file_and_branch(tmp_path: Path, collection: str, write_nano: Callable[..., Path]) -> None:
    path = write_nano(tmp_path / f"no_{collection}.root", n_events=20, drop=(collection,))
    with pytest.raises(MissingBranchError) as direct:
        METProcessor().process(_events(path, "virtual"))
    assert str(path) in str(direct.value) and f"{collection}_pt" in str(direct.value)
    with pytest.raises(Exception, match=f"{collection}_pt") as wrapped:
        run_met(path, processor.IterativeExecutor(status=False, retries=0), 100)
    assert str(path) in str(wrapped.value)


def test_generated_sample_when_available(generated_nano: Path) -> None:
    out = run_met(generated_nano, processor.IterativeExecutor(status=False), 100)
    assert out["events_per_method"]["pf"] > 0
    assert out["events_per_method"]["file_met"] == out["events_per_method"]["pf"]
    assert out["events_per_method"]["puppi"] == out["events_per_method"]["pf"]  # fromPV and PV_npvsGood present
