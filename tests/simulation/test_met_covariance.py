"""The simulated MET covariance (``MET_covXX/XY/YY``): candidate resolutions plus the unclustered term.

The pulls (MET − GenMET)_x/√covXX and _y/√covYY must have unit width on events other than the calibration
ones (seeds 101–108, see `detector.py`). Events where a muon escapes beyond the tracker (|η| > 2.5, no
calorimeter deposit, not in GenMET) are left out, as in the calibration: no Gaussian term describes them.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from coffea_mlreco.simulation import generate_sample
from coffea_mlreco.simulation.detector import DEFAULT_DETECTOR, DetectorParameters
from coffea_mlreco.simulation.objects import missing_momentum

_BRANCHES = [
    "MET_pt",
    "MET_phi",
    "MET_sumEt",
    "MET_covXX",
    "MET_covXY",
    "MET_covYY",
    "GenMET_pt",
    "GenMET_phi",
    "GenPart_pdgId",
    "GenPart_pt",
    "GenPart_eta",
    "GenPart_status",
]


def width(values: np.ndarray) -> float:
    """(P84 − P16)/2."""
    return float(np.percentile(values, 84) - np.percentile(values, 16)) / 2


def met_arrays(path: Path) -> dict[str, np.ndarray]:
    """Residuals (MET − GenMET)_x,y, sumEt, covariance, and whether a muon escaped the tracker acceptance."""
    a = uproot.open(path)["Events"].arrays(_BRANCHES)
    escaped = ak.any(
        (a.GenPart_status == 1)
        & (abs(a.GenPart_pdgId) == 13)
        & (a.GenPart_pt > 3.0)
        & (abs(a.GenPart_eta) > DEFAULT_DETECTOR.tracker_eta_max),
        axis=1,
    )
    out = {
        "dx": a.MET_pt * np.cos(a.MET_phi) - a.GenMET_pt * np.cos(a.GenMET_phi),
        "dy": a.MET_pt * np.sin(a.MET_phi) - a.GenMET_pt * np.sin(a.GenMET_phi),
        "sumEt": a.MET_sumEt,
        "xx": a.MET_covXX,
        "xy": a.MET_covXY,
        "yy": a.MET_covYY,
        "escaped": escaped,
    }
    return {k: ak.to_numpy(v).astype(np.float64) if k != "escaped" else ak.to_numpy(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def pu60_samples(sim_dir: Path) -> dict[str, Path]:
    return {
        process: generate_sample(
            process,
            300,
            60,
            seed=seed,
            output=sim_dir / f"{process}_metcov_pu60.root",
            drop=("PFCands",),
            progress=False,
        )
        for process, seed in (("dy-ll", 301), ("htautau", 302))
    }


def test_unclustered_term_is_added_isotropically() -> None:
    det = DetectorParameters(met_unclustered_sigma0=2.0, met_unclustered_k=0.5)
    counts = np.array([2, 0, 1])
    pt, phi, sigma = np.array([30.0, 10.0, 100.0]), np.array([0.0, np.pi / 2, np.pi / 4]), np.array([3.0, 1.0, 0.0])
    met = missing_momentum(counts, pt, phi, sigma, det)
    floor = 4.0 + 0.25 * np.array([40.0, 0.0, 100.0])
    np.testing.assert_allclose(met["sumEt"], [40.0, 0.0, 100.0])
    np.testing.assert_allclose(met["covXX"], floor + np.array([9.0, 0.0, 0.0]), atol=1e-12)
    np.testing.assert_allclose(met["covYY"], floor + np.array([1.0, 0.0, 0.0]), atol=1e-12)
    np.testing.assert_allclose(met["covXY"], [0.0, 0.0, 0.0], atol=1e-12)
    # an event without candidates still has a positive-definite covariance (σ₀² on the diagonal)
    assert met["covXX"][1] == met["covYY"][1] == 4.0
    assert set(missing_momentum(counts, pt, phi)) == {"pt", "phi", "sumEt"}


@pytest.mark.parametrize("sample", ["dy_pu0", "ztautau_pu0", "pu60:dy-ll", "pu60:htautau"])
def test_pulls_have_unit_width(sample: str, request: pytest.FixtureRequest) -> None:
    if sample.startswith("pu60:"):
        path = request.getfixturevalue("pu60_samples")[sample[5:]]
    else:
        path = request.getfixturevalue(sample)
    met = met_arrays(path)
    ok = ~met["escaped"]
    assert ok.sum() > 200
    for axis, cov in (("dx", "xx"), ("dy", "yy")):
        pull = met[axis][ok] / np.sqrt(met[cov][ok])
        assert 0.8 < width(pull) < 1.25, (sample, axis, width(pull))
        assert abs(np.median(pull)) < 0.2, (sample, axis)


@pytest.mark.parametrize("sample", ["ztautau_pu0", "pu60:htautau"])
def test_covariance_positive_definite_and_growing_with_sumet(sample: str, request: pytest.FixtureRequest) -> None:
    if sample.startswith("pu60:"):
        path = request.getfixturevalue("pu60_samples")[sample[5:]]
    else:
        path = request.getfixturevalue(sample)
    met = met_arrays(path)
    xx, xy, yy, sumet = met["xx"], met["xy"], met["yy"], met["sumEt"]
    assert np.all(xx > 0) and np.all(yy > 0) and np.all(xx * yy - xy**2 > 0)
    det = DEFAULT_DETECTOR
    floor = det.met_unclustered_sigma0**2 + det.met_unclustered_k**2 * sumet
    assert np.all(np.minimum(xx, yy) >= floor * (1 - 1e-6))
    # the trace grows with sumEt: medians in sumEt quartiles increase
    edges = np.percentile(sumet, [0, 25, 50, 75, 100])
    quartile = np.clip(np.searchsorted(edges, sumet, side="right") - 1, 0, 3)
    medians = [np.median((xx + yy)[quartile == q]) for q in range(4)]
    assert np.all(np.diff(medians) > 0), medians
