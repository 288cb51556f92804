"""`coffea-mlreco train ttbar`: train the SPANet-style attention model or the permutation DNN for
semileptonic tt̄ jet-parton assignment on generated files.

Data: the selected events (:mod:`coffea_mlreco.ttbar.inputs`) of each file, with their true jet of every
parton (−1 when unmatched) and the generated neutrino η, converted once to arrays and cached next to the
output (keyed by the file's size and mtime). Events where only one top is reconstructable are kept (SPANet's
partial-event training: the other top's assignment loss is masked).

- ``spanet``: loss = Σ_tops (−log p(true tuple)) over reconstructable tops (the tuple's probability summed over
  its symmetric orderings = the minimum over symmetric permutations) + BCE of the detection heads + Huber loss
  of ν η; φ-rotation and η-flip augmentation.
- ``pdnn``: softmax over each event's permutations of its first ``max_jets`` jets, trained on events whose
  true permutation is among them.

The loop is `coffea_mlreco.training.trainer` (AdamW, one-cycle learning rate; SPANet's gradients clipped to norm 1).
The epoch with the best validation event efficiency (all events, SPANet convention) is kept; the weights
(safetensors) and a model card (JSON: command, files and seeds, sample sizes, metrics) are written into the model
directory ``--output DIR`` (default ``./coffea-mlreco-models/ttbar-<model>``) as ``DIR/<model>.safetensors`` and
``DIR/<model>.json``. The validation file must not be a training file (see `coffea_mlreco.training.model_dir`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import awkward as ak
import numpy as np
import torch

from coffea_mlreco.core.columns import Events, to_numpy
from coffea_mlreco.core.truth import ttbar_partons
from coffea_mlreco.training.augment import random_angles, rotate_phi
from coffea_mlreco.training.cached_arrays import cached_arrays, concat_arrays
from coffea_mlreco.training.model_dir import (
    TrainingSetupError,
    add_output_argument,
    check_validation_files,
    model_card,
    prepare_output,
    setup_error,
    write_model,
)
from coffea_mlreco.training.provenance import describe_data
from coffea_mlreco.training.trainer import Trainer, shuffled_batches
from coffea_mlreco.ttbar.assignment import extract_assignments
from coffea_mlreco.ttbar.inputs import assignment_targets, semileptonic_inputs
from coffea_mlreco.ttbar.outcomes import event_efficiency, top_outcomes
from coffea_mlreco.ttbar.permutation_features import permutation_features
from coffea_mlreco.ttbar.permutations import best_permutation

if TYPE_CHECKING:  # the networks (torch modules) are imported where they are built
    from coffea_mlreco.ttbar.permutation_dnn import PermutationDNN
    from coffea_mlreco.ttbar.spanet import SPANet

__all__ = [
    "MODELS",
    "add_arguments",
    "load_assignment_data",
    "pdnn_predict",
    "run",
    "spanet_predict",
    "train_pdnn",
    "train_spanet",
]

MODELS = {"spanet": "coffea_mlreco.ttbar.spanet:SPANet", "pdnn": "coffea_mlreco.ttbar.permutation_dnn:PermutationDNN"}
_JET_FIELDS = ("pt", "eta", "phi", "mass", "btag")


def assignment_arrays(events: Events, max_jets: int = 10) -> dict[str, np.ndarray]:
    """Padded model inputs and truth of the selected events of ``events``.

    Returns jets [N, max_jets, 5] (pT, η, φ, m, b-tag; zero-padded), jets_mask [N, max_jets], lepton [N, 5]
    (pT, η, φ, m, is-muon), met [N, 2] (pT, φ), n_jets [N] (all selected jets), target [N, 4] (true jet
    positions, −1 when unmatched or beyond ``max_jets``), nu_eta [N] (generated neutrino η, NaN if none).
    """
    inputs = semileptonic_inputs(events)
    selected = to_numpy(inputs.selected, bool)
    events, inputs = events[selected], inputs[selected]
    jets = inputs.jets[:, :max_jets]
    padded = ak.pad_none(jets, max_jets, axis=1, clip=True)
    out: dict[str, np.ndarray] = {
        "jets": np.stack([to_numpy(ak.fill_none(padded[f], 0.0), np.float32) for f in _JET_FIELDS], -1),
        "jets_mask": to_numpy(~ak.is_none(padded, axis=1), bool),
        "lepton": np.stack(
            [to_numpy(inputs.lepton[f], np.float32) for f in ("pt", "eta", "phi", "mass")]
            + [to_numpy(abs(inputs.lepton.pdgId) == 13, np.float32)],
            -1,
        ),
        "met": np.stack([to_numpy(inputs.met[f], np.float32) for f in ("pt", "phi")], -1),
        "n_jets": to_numpy(inputs.n_jets, np.int64),
    }
    target = to_numpy(assignment_targets(events, inputs.jets), np.int64)
    out["target"] = np.where(target < max_jets, target, -1)
    out["nu_eta"] = to_numpy(ak.fill_none(ttbar_partons(events).neutrino.eta, np.nan), np.float32)
    return out


def load_assignment_data(path: str | Path, cache_dir: str | Path, max_jets: int = 10) -> dict[str, np.ndarray]:
    """:func:`assignment_arrays` of a file, cached as .npz in ``cache_dir``."""
    return cached_arrays(path, cache_dir, "ttbar", lambda events: assignment_arrays(events, max_jets), (max_jets,))


# ---- SPANet ----------------------------------------------------------------------------------------------
def _augment(jets: torch.Tensor, lepton: torch.Tensor, met: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Random global φ rotation and η flip (the physics is invariant under both)."""
    n = jets.shape[0]
    angle = random_angles(n)
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    jets, lepton, met = jets.clone(), lepton.clone(), met.clone()
    jets[..., 2] = rotate_phi(jets[..., 2], angle)
    jets[..., 1] = jets[..., 1] * flip[:, None]
    lepton[:, 2] = rotate_phi(lepton[:, 2], angle)
    lepton[:, 1] = lepton[:, 1] * flip
    met[:, 1] = rotate_phi(met[:, 1], angle)
    return jets, lepton, met, flip


def _tuple_log_prob(
    logp: torch.Tensor, tuples: torch.Tensor, orders: list[tuple[int, ...]], n_slots: int
) -> torch.Tensor:
    """log Σ_orderings p(tuple) for [B, k] true tuples (entries ≥ 0)."""
    terms = []
    for order in orders:
        flat = torch.zeros_like(tuples[:, 0])
        for a in order:
            flat = flat * n_slots + tuples[:, a]
        terms.append(logp.gather(1, flat[:, None])[:, 0])
    return torch.logsumexp(torch.stack(terms, 1), 1)


def spanet_loss(
    model: SPANet, out: dict[str, torch.Tensor], target: torch.Tensor, nu_eta: torch.Tensor
) -> torch.Tensor:
    """Partial-event assignment loss + detection BCE + ν η Huber loss (see the module docstring)."""
    topo = model.topology
    loss = torch.zeros(())
    start = 0
    for particle in topo.particles:
        k = particle.n_jets
        tuples = target[:, start : start + k]
        start += k
        reco = (tuples >= 0).all(1)
        if reco.any():
            lp = _tuple_log_prob(
                out[f"{particle.name}_logp"][reco], tuples[reco], particle.symmetric_permutations(), model.max_jets
            )
            loss = loss - lp.sum() / target.shape[0]
        loss = loss + torch.nn.functional.binary_cross_entropy(
            out[f"{particle.name}_detection"].clamp(1e-6, 1 - 1e-6), reco.float()
        )
    has_nu = torch.isfinite(nu_eta)
    if has_nu.any():
        loss = loss + 0.2 * torch.nn.functional.huber_loss(out["nu_eta"][has_nu], nu_eta[has_nu], delta=1.0)
    return loss


def _target_order(model: SPANet) -> list[int]:
    """Column of the [N, 4] (had_b, had_q1, had_q2, lep_b) target for each daughter in topology order."""
    names = ("had_b", "had_q1", "had_q2", "lep_b")
    columns = []
    for particle in model.topology.particles:
        for daughter in particle.jets:
            column = next(c for c, (p, d) in model.topology.outputs if p == particle.name and d == daughter)
            columns.append(names.index(column))
    return columns


def spanet_predict(model: SPANet, data: dict[str, np.ndarray], batch: int = 2048) -> np.ndarray:
    """[N, 4] predicted jet positions (had_b, had_q1, had_q2, lep_b) from the model on ``data``."""
    model.eval()
    logps: dict[str, list[np.ndarray]] = {p.name: [] for p in model.topology.particles}
    with torch.inference_mode():
        for s in range(0, len(data["n_jets"]), batch):
            out = model(
                torch.from_numpy(data["jets"][s : s + batch]),
                torch.from_numpy(data["jets_mask"][s : s + batch]),
                torch.from_numpy(data["lepton"][s : s + batch]),
                torch.from_numpy(data["met"][s : s + batch]),
            )
            for name, parts in logps.items():
                parts.append(out[f"{name}_logp"].numpy())
    result = extract_assignments([np.concatenate(v) for v in logps.values()], model.topology, data["n_jets"])
    predicted = np.empty_like(result.jets)
    predicted[:, _target_order(model)] = result.jets
    return predicted


def train_spanet(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    config: dict,
    epochs: int,
    lr: float,
    batch: int,
    seed: int,
    progress: bool = True,
) -> tuple[torch.nn.Module, list[dict], dict]:
    """Train ``SPANet(**config)``; returns the best epoch's model, the history and its validation metrics."""
    from coffea_mlreco.ttbar.spanet import SPANet

    trainer = Trainer(seed=seed, epochs=epochs, lr=lr, progress=progress, name="spanet")
    model = SPANet(**config)
    order = _target_order(model)
    tensors = {k: torch.from_numpy(v) for k, v in train.items()}

    def loss(model: SPANet, events: np.ndarray) -> torch.Tensor:
        idx = torch.from_numpy(events)
        jets, lepton, met, flip = _augment(tensors["jets"][idx], tensors["lepton"][idx], tensors["met"][idx])
        out = model(jets, tensors["jets_mask"][idx], lepton, met)
        return spanet_loss(model, out, tensors["target"][idx][:, order], tensors["nu_eta"][idx] * flip)

    fit = trainer.fit(
        model,
        lambda epoch: shuffled_batches(len(train["n_jets"]), batch, trainer.rng),
        loss,
        lambda model: _assignment_metrics(spanet_predict(model, val), val["target"]),
        monitor="event_efficiency",
        mode="max",
    )
    return model, fit.history, fit.best_metrics


# ---- permutation DNN -------------------------------------------------------------------------------------
def _pdnn_rows(data: dict[str, np.ndarray], max_jets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Permutation offsets, tables, features and the index of the true permutation per event (−1 if absent)."""
    jets_mask = data["jets_mask"]
    counts = jets_mask.sum(1)
    rec = {f: ak.unflatten(data["jets"][..., i][jets_mask], counts) for i, f in enumerate(_JET_FIELDS)}
    lepton = ak.zip({f: data["lepton"][:, i] for i, f in enumerate(("pt", "eta", "phi", "mass"))})
    met_pt, met_phi = data["met"][:, 0], data["met"][:, 1]
    met = ak.zip({"pt": met_pt, "px": met_pt * np.cos(met_phi), "py": met_pt * np.sin(met_phi)})
    inputs = ak.zip({"jets": ak.zip(rec), "lepton": lepton, "met": met}, depth_limit=1)
    offsets, perms, features = permutation_features(inputs, max_jets)
    truth = data["target"].copy()
    truth[:, 1:3] = np.sort(truth[:, 1:3], axis=1)
    event_of_row = np.repeat(np.arange(len(counts)), np.diff(offsets))
    hit = np.all(perms == truth[event_of_row], axis=1)
    label = np.full(len(counts), -1, np.int64)
    label[event_of_row[hit]] = np.flatnonzero(hit) - offsets[event_of_row[hit]]
    return offsets, perms, features, label


def pdnn_predict(model: PermutationDNN, data: dict[str, np.ndarray]) -> np.ndarray:
    """[N, 4] predicted jet positions from the permutation DNN (highest-scoring permutation)."""
    offsets, perms, features, _ = _pdnn_rows(data, model.max_jets)
    model.eval()
    with torch.inference_mode():
        chunk = 1 << 16
        scores = np.concatenate(
            [model(torch.from_numpy(features[s : s + chunk])).numpy() for s in range(0, len(features), chunk)]
            or [np.zeros(0, np.float32)]
        )
    return best_permutation(offsets, perms, scores)[0]


def train_pdnn(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    config: dict,
    epochs: int,
    lr: float,
    batch: int,
    seed: int,
    progress: bool = True,
) -> tuple[torch.nn.Module, list[dict], dict]:
    """Train ``PermutationDNN(**config)`` on the events whose true permutation is among its candidates; returns the
    best epoch's model, the history and its validation metrics."""
    from coffea_mlreco.ttbar.permutation_dnn import PermutationDNN

    trainer = Trainer(seed=seed, epochs=epochs, lr=lr, clip_grad_norm=None, progress=progress, name="pdnn")
    model = PermutationDNN(**config)
    offsets, _, features, label = _pdnn_rows(train, model.max_jets)
    model.set_standardisation(torch.from_numpy(features))
    usable = np.flatnonzero(label >= 0)
    feats = torch.from_numpy(features)
    slot = np.arange(int(np.diff(offsets).max()))[None, :]

    def loss(model: torch.nn.Module, events: np.ndarray) -> torch.Tensor:
        """Cross entropy of the softmax over each event's permutations (padded to the most of any event)."""
        valid = slot < (offsets[events + 1] - offsets[events])[:, None]
        rows = np.where(valid, offsets[events][:, None] + slot, 0)
        logits = model(feats[torch.from_numpy(rows)]).masked_fill(~torch.from_numpy(valid), -1e4)
        return torch.nn.functional.cross_entropy(logits, torch.from_numpy(label[events]))

    fit = trainer.fit(
        model,
        lambda epoch: shuffled_batches(usable, batch, trainer.rng),
        loss,
        lambda model: _assignment_metrics(pdnn_predict(model, val), val["target"]),
        monitor="event_efficiency",
        mode="max",
    )
    return model, fit.history, fit.best_metrics


# ---- command line ----------------------------------------------------------------------------------------
def _assignment_metrics(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    outcomes = top_outcomes(predicted, target)
    return {
        "event_efficiency": round(event_efficiency(outcomes), 5),
        "event_efficiency_reconstructable": round(event_efficiency(outcomes, full_only=True), 5),
        "thad_efficiency": round(float(outcomes.thad_ok[outcomes.thad_reco].mean()), 5),
        "tlep_efficiency": round(float(outcomes.tlep_ok[outcomes.tlep_reco].mean()), 5),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--train", nargs="+", required=True, help="training ROOT files (semileptonic tt̄)")
    parser.add_argument("--validation", required=True, help="held-out ROOT file (a different seed)")
    add_output_argument(parser, "ttbar", "<model>")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-3 spanet, 2e-3 pdnn)")
    parser.add_argument("--batch", type=int, default=256, help="events per mini-batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dim", type=int, default=64, help="spanet: embedding width; pdnn: hidden width (128)")
    parser.add_argument("--layers", type=int, default=None, help="spanet: encoder blocks (3); pdnn: hidden layers (3)")
    parser.add_argument("--max-jets", type=int, default=None, help="jets considered (spanet 10, pdnn 6)")
    parser.add_argument("--cache-dir", default=None, help="array cache (default: next to the output)")
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        check_validation_files(args.train, [args.validation])
        output = prepare_output(args.output, "ttbar", args.model)
    except TrainingSetupError as err:
        return setup_error("ttbar", err)
    cache = args.cache_dir or str(output.parent / "ttbar-cache")
    if args.model == "spanet":
        config = {
            "topology": "semileptonic_ttbar",
            "max_jets": args.max_jets or 10,
            "dim": args.dim,
            "encoder_layers": args.layers or 3,
        }
        data_jets, trainer, lr = config["max_jets"], train_spanet, args.lr or 1e-3
    else:
        config = {
            "hidden": args.dim if args.dim != 64 else 128,
            "layers": args.layers or 3,
            "max_jets": args.max_jets or 6,
        }
        data_jets, trainer, lr = 10, train_pdnn, args.lr or 2e-3
    try:
        train = concat_arrays([load_assignment_data(f, cache, data_jets) for f in args.train])
        val = load_assignment_data(args.validation, cache, data_jets)
    except (KeyError, OSError, ValueError) as err:
        print(f"coffea-mlreco train ttbar: error: {err}", file=sys.stderr)
        return 2
    model, history, metrics = trainer(train, val, config, args.epochs, lr, args.batch, args.seed, not args.quiet)
    card = model_card(
        MODELS[args.model],
        config,
        args.model,
        sum(p.numel() for p in model.parameters()),
        data=describe_data(args.train, args.validation, len(train["n_jets"]), len(val["n_jets"])),
        settings={"epochs": args.epochs, "learning_rate": lr, "batch": args.batch, "seed": args.seed},
        history=history,
        metrics=metrics,
        seconds=time.perf_counter() - start,
    )
    write_model(output, args.model, model.state_dict(), card)  # complete or absent: model_dir.model_output
    print(json.dumps(metrics, indent=1))
    return 0
