"""The neighbourhood inputs of the MET models: the numba sums against a direct computation, the pileup information
they carry on generated PU 60 events, and a neighbourhood model through training, fine-tuning and reconstruct."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_mlreco import met
from coffea_mlreco.cli import main
from coffea_mlreco.inference.batching import FlatJagged, pad_batch
from coffea_mlreco.met.deepmet import DeepMET
from coffea_mlreco.met.features import CANDIDATE_FEATURES, feature_names, met_inputs
from coffea_mlreco.met.neighbourhood import NEIGHBOURHOOD_FEATURES, NEIGHBOURHOOD_RADII, neighbourhood_features
from coffea_mlreco.met.perceiver import PerceiverMET
from coffea_mlreco.met.puppi import load_tune, pv_class
from coffea_mlreco.met.training import load_init


def events(path: Path, mode: str = "eager"):
    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode=mode).events()


def direct_sums(eta: np.ndarray, phi: np.ndarray, pt: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """The neighbourhood sums of one event by the full N × N distance matrix."""
    dphi = np.abs(phi[:, None] - phi[None, :])
    dphi = np.where(dphi > np.pi, 2 * np.pi - dphi, dphi)
    dr2 = (eta[:, None] - eta[None, :]) ** 2 + dphi**2
    np.fill_diagonal(dr2, np.inf)
    out = np.zeros((eta.size, 3 * len(NEIGHBOURHOOD_RADII)))
    for k, r in enumerate(NEIGHBOURHOOD_RADII):
        for c in range(3):
            out[:, 3 * k + c] = ((dr2 < r * r) * (cls == c)[None, :] * pt[None, :]).sum(axis=1)
    return out


def test_neighbourhood_sums_equal_the_direct_computation(dilep_pu60: Path) -> None:
    ev = events(dilep_pu60)[:6]
    cands = ev.PFCands
    around = neighbourhood_features(cands, ev.PV.npvsGood, load_tune("run3").delta_z_cut)
    assert ak.fields(around) == list(NEIGHBOURHOOD_FEATURES)
    cls = pv_class(cands, load_tune("run3").delta_z_cut)
    for e in range(len(ev)):
        eta, phi = ak.to_numpy(cands.eta[e]).astype(np.float64), ak.to_numpy(cands.phi[e]).astype(np.float64)
        expected = np.log1p(direct_sums(eta, phi, ak.to_numpy(cands.pt[e]).astype(np.float64), ak.to_numpy(cls[e])))
        got = np.stack([ak.to_numpy(around[name][e]) for name in NEIGHBOURHOOD_FEATURES[:-1]], axis=1)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert expected[:, :3].sum() > 0 and np.all(expected[:, 3:] >= expected[:, :3])  # 0.4 holds the 0.2 cone
        np.testing.assert_allclose(ak.to_numpy(around.log_npv[e]), np.log(max(int(ev.PV.npvsGood[e]), 1)))


def test_neighbourhood_tells_pileup_neutrals_from_hard_scatter_ones(dilep_pu60: Path) -> None:
    """The information the neighbourhood model learns from exists: within the tracker, a hard-scatter neutral has
    more charged-PV p_T and more neutral p_T around it than a pileup neutral of the same p_T (genPUFraction < 0.1
    against > 0.9, PU 60 tt̄)."""
    ev = events(dilep_pu60)
    cands = ev.PFCands
    around = neighbourhood_features(cands, ev.PV.npvsGood, load_tune("run3").delta_z_cut)
    neutral = ak.to_numpy(ak.flatten((cands.charge == 0) & (abs(cands.eta) < 2.4)))

    def flat(values: ak.Array) -> np.ndarray:
        return ak.to_numpy(ak.flatten(values))[neutral]

    pt, pu_fraction = flat(cands.pt), flat(cands.genPUFraction)
    for lo, hi in ((1.0, 3.0), (3.0, 10.0)):
        band = (pt > lo) & (pt < hi)
        hard, soft = band & (pu_fraction < 0.1), band & (pu_fraction > 0.9)
        assert hard.sum() > 100 and soft.sum() > 100
        for name, margin in (("pv_r02", 0.8), ("pv_r04", 1.0), ("neutral_r04", 0.2)):
            assert np.mean(flat(around[name])[hard]) > np.mean(flat(around[name])[soft]) + margin, (lo, name)


def test_met_inputs_with_the_neighbourhood(dilep_pu60: Path) -> None:
    ev = events(dilep_pu60)[:20]
    plain, _ = met_inputs(ev)
    with_around, _ = met_inputs(ev, neighbourhood=True)
    assert ak.fields(plain) == list(CANDIDATE_FEATURES)
    assert ak.fields(with_around) == list(feature_names(neighbourhood=True))
    for name in CANDIDATE_FEATURES:
        assert ak.all(plain[name] == with_around[name])


def padded(cands: ak.Array, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L, F] features (zero padded) and the [B, L] mask of candidates, as the inference runtime pads them."""
    flat = FlatJagged(
        tuple(ak.to_numpy(ak.flatten(cands[name])).astype(np.float32) for name in names),
        ak.to_numpy(ak.num(cands, axis=1)).astype(np.int64),
    )
    x, mask = pad_batch(flat, np.arange(len(cands)))
    return torch.from_numpy(x), torch.from_numpy(mask)


@pytest.mark.parametrize(
    ("build", "other"),
    [
        (lambda around: DeepMET(dim=16, neighbourhood=around), DeepMET(dim=16, n_layers=3, neighbourhood=True)),
        (
            lambda around: PerceiverMET(16, 8, target="direct", neighbourhood=around),
            PerceiverMET(16, 8, n_blocks=3, target="direct", neighbourhood=True),
        ),
    ],
    ids=["deepmet", "perceiver"],
)
def test_a_neighbourhood_model_starts_as_the_per_candidate_model(
    build, other, dilep_pu60: Path, tmp_path: Path
) -> None:
    """Its branch starts at zero, so loaded from a per-candidate model's weights it gives that model's MET (what
    ``train met --neighbourhood --init`` fine-tunes from); weights that differ otherwise are refused."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    plain, around = build(False), build(True)
    weights = tmp_path / "plain.safetensors"
    save_file(plain.state_dict(), str(weights))
    load_init(around, weights)
    ev = events(dilep_pu60)[:8]
    cands, event = met_inputs(ev, neighbourhood=True)
    x, mask = padded(cands, feature_names(neighbourhood=True))
    puppi = torch.from_numpy(np.stack([ak.to_numpy(event.puppi_px), ak.to_numpy(event.puppi_py)], 1).astype(np.float32))
    with torch.no_grad():
        expected = plain(x[..., : len(CANDIDATE_FEATURES)], mask, puppi)["met_xy"]
        got = around(x, mask, puppi)["met_xy"]
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-3)
        around.embed.neighbourhood[-1].bias.fill_(0.5)  # the branch is live: it changes the MET once trained
        assert not torch.allclose(around(x, mask, puppi)["met_xy"], expected, rtol=1e-3, atol=1e-2)
    with pytest.raises(ValueError, match="not weights of this model"):
        load_init(other, weights)


def test_train_a_neighbourhood_model_and_reconstruct_with_it(dilep_pu60: Path, tmp_path: Path) -> None:
    """``train met --neighbourhood``: the card records it, and met.reconstruct runs the model on eager and dask
    events alike (the dask graph reads only the declared columns)."""
    validation = Path(shutil.copy(dilep_pu60, tmp_path / "val.root"))
    output = tmp_path / "deepmet_around"
    args = ["train", "met", "--model", "deepmet", "--train", str(dilep_pu60), "--validation", str(validation)]
    assert main([*args, "--neighbourhood", "--dim", "16", "--epochs", "1", "--quiet", "--output", str(output)]) == 0
    card = json.loads((output / "deepmet.json").read_text())
    assert card["config"]["neighbourhood"] is True
    eager = met.reconstruct(events(dilep_pu60)[:50], methods=["deepmet"], models={"deepmet": output})
    assert np.all(np.isfinite(ak.to_numpy(eager.DeepMETReco.pt)))
    lazy = met.reconstruct(events(dilep_pu60, "dask"), methods=["deepmet"], models={"deepmet": output})
    np.testing.assert_allclose(
        ak.to_numpy(lazy.DeepMETReco.pt.compute())[:50], ak.to_numpy(eager.DeepMETReco.pt), rtol=1e-5, atol=1e-4
    )
