"""MLPF learns a toy particle-flow task on CPU in a few seconds: matching needs message passing between elements.

Toy events (GeV, rad): charged hadrons leave a track (→ "charged_hadron", pT from the track) and a hadronic
cluster at the track's calorimeter position (→ "none": its energy belongs to the track's candidate); neutral
hadrons and photons leave a cluster only (→ "neutral_hadron" / "photon", told apart by E_em/E). A track-matched
cluster and a neutral hadron's cluster have the same EM-fraction range, so > 95 % accuracy needs the model to
find, for each cluster, whether a track points at it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from coffea_mlreco.mlpf.losses import mlpf_loss
from coffea_mlreco.mlpf.model import ELEMENT_FEATURES, MLPF, PARTICLE_CLASSES, regression_targets
from coffea_mlreco.training.trainer import Trainer, shuffled_batches

F = {name: i for i, name in enumerate(ELEMENT_FEATURES)}
CHH, NH, PHOTON = (PARTICLE_CLASSES.index(c) for c in ("charged_hadron", "neutral_hadron", "photon"))
HADRON_RESPONSE = 0.7
"""Neutral-hadron clusters measure 70 % of the energy (e/h > 1), photons 100 %: the regression must learn it."""


def toy_events(n_events: int, seed: int, max_elements: int = 64) -> dict[str, torch.Tensor]:
    """Padded toy events: elements [B, N, 15], mask, class, true (pT, η, φ, E) and charge per element."""
    rng = np.random.default_rng(seed)
    el = np.zeros((n_events, max_elements, len(ELEMENT_FEATURES)), np.float32)
    mask = np.zeros((n_events, max_elements), bool)
    cls = np.zeros((n_events, max_elements), np.int64)
    truth = np.zeros((n_events, max_elements, 4), np.float32)  # pT, η, φ, E of the particle
    charge = np.zeros((n_events, max_elements), np.float32)
    for b in range(n_events):
        rows: list[tuple[np.ndarray, int, tuple[float, ...], float]] = []
        for _ in range(min(rng.poisson(10), 14)):  # charged hadrons: track + matched hadronic cluster
            pt, eta, phi, q = (
                rng.exponential(5.0) + 1.0,
                rng.uniform(-2.5, 2.5),
                rng.uniform(-np.pi, np.pi),
                rng.choice([-1.0, 1.0]),
            )
            eta_c, phi_c = eta + rng.normal(0, 0.01), phi + 0.2 * q / pt
            p = pt * np.cosh(eta)
            track = np.zeros(len(ELEMENT_FEATURES), np.float32)
            track[
                [
                    F["type"],
                    F["pt"],
                    F["eta"],
                    F["phi"],
                    F["eta_calo"],
                    F["phi_calo"],
                    F["charge"],
                    F["dz"],
                    F["quality"],
                ]
            ] = 1, pt, eta, phi, eta_c, phi_c, q, rng.normal(0, 0.05), rng.uniform(0.6, 1)
            rows.append((track, CHH, (pt * (1 + rng.normal(0, 0.01)), eta, phi, p), q))
            rows.append(
                (
                    _cluster(
                        rng,
                        p * np.exp(rng.normal(0, 0.2)),
                        rng.uniform(0.0, 0.4),
                        eta_c + rng.normal(0, 0.01),
                        phi_c + rng.normal(0, 0.01),
                    ),
                    0,
                    (0, 0, 0, 0),
                    0.0,
                )
            )
        for kind, em in ((NH, (0.0, 0.4)), (PHOTON, (0.85, 1.0))):
            for _ in range(min(rng.poisson(6), 12)):
                e, eta, phi = rng.exponential(8.0) + 1.0, rng.uniform(-2.5, 2.5), rng.uniform(-np.pi, np.pi)
                e_true = e / (HADRON_RESPONSE if kind == NH else 1.0) * np.exp(rng.normal(0, 0.05))
                rows.append(
                    (_cluster(rng, e, rng.uniform(*em), eta, phi), kind, (e_true / np.cosh(eta), eta, phi, e_true), 0.0)
                )
        for i in rng.permutation(len(rows))[:max_elements]:
            j = int(mask[b].sum())
            el[b, j], cls[b, j], truth[b, j], charge[b, j] = rows[i][0], rows[i][1], rows[i][2], rows[i][3]
            mask[b, j] = True
    return {
        "elements": torch.from_numpy(el),
        "mask": torch.from_numpy(mask),
        "cls": torch.from_numpy(cls),
        "truth": torch.from_numpy(truth),
        "charge": torch.from_numpy(charge),
    }


def _cluster(rng: np.random.Generator, e: float, em: float, eta: float, phi: float) -> np.ndarray:
    c = np.zeros(len(ELEMENT_FEATURES), np.float32)
    c[[F["type"], F["e"], F["e_em"], F["e_had"], F["eta"], F["phi"], F["width"]]] = (
        2,
        e,
        em * e,
        (1 - em) * e,
        eta,
        phi,
        rng.uniform(0.01, 0.05),
    )
    return c


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small batches train ~10× faster on one intra-op thread than on two busy shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_toy_particle_flow_is_learned_above_95_percent() -> None:
    trainer = Trainer(seed=0, epochs=5, lr=5e-3, weight_decay=0.01, clip_grad_norm=None, progress=False)
    train, val, test = toy_events(512, seed=1), toy_events(128, seed=3), toy_events(128, seed=2)
    for data in (train, val, test):
        data["momentum"] = regression_targets(*data["truth"].unbind(-1), data["elements"])
    model = MLPF(dim=32, n_layers=2, n_heads=2, bin_size=64, dist_dim=8)

    def loss(model: torch.nn.Module, events: np.ndarray) -> torch.Tensor:
        idx = torch.from_numpy(events)
        out = model(train["elements"][idx], train["mask"][idx])
        return mlpf_loss(out, train["cls"][idx], train["momentum"][idx], train["charge"][idx], train["mask"][idx])[
            "total"
        ]

    def val_accuracy(model: torch.nn.Module) -> dict[str, float]:
        model.eval()
        predicted = model(val["elements"], val["mask"])["class_logits"].argmax(-1)
        return {"accuracy": float((predicted == val["cls"])[val["mask"]].float().mean())}

    trainer.fit(
        model,
        lambda epoch: shuffled_batches(512, 16, trainer.rng),
        loss,
        val_accuracy,
        monitor="accuracy",
        mode="max",
    )
    model.eval()
    with torch.inference_mode():
        out = model(test["elements"], test["mask"])
    mask = test["mask"]
    predicted = out["class_logits"].argmax(-1)
    accuracy = float((predicted == test["cls"])[mask].float().mean())
    assert accuracy > 0.95, accuracy
    for c in (0, CHH, NH, PHOTON):  # every class is found, not only the frequent ones
        assert float((predicted == c)[mask & (test["cls"] == c)].float().mean()) > 0.85, PARTICLE_CLASSES[c]
    charged = mask & (test["cls"] == CHH)
    assert float(((out["charge_logit"] > 0) == (test["charge"] > 0))[charged].float().mean()) > 0.99
    # the hadronic response is learned: log(E/E_cluster) of neutral hadrons is log(1/0.7) = 0.36 ± 0.05
    neutral = mask & (test["cls"] == NH)
    error = (out["momentum"][..., 4] - test["momentum"][..., 4])[neutral].abs().median()
    assert float(error) < 0.08, float(error)
    tracks = mask & (test["cls"] == CHH)  # charged hadrons keep the track's pT (1 % smearing)
    assert float((out["momentum"][..., 0] - test["momentum"][..., 0])[tracks].abs().median()) < 0.03
