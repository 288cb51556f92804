"""`coffea-mlreco train mlpf`: train the MLPF model (elements → particles) on files made with ``--elements``.

Data: every event's elements (`coffea_mlreco.mlpf.inputs`: tracks then clusters) and their truth targets
(``PFTarget``, defined in `coffea_mlreco.simulation.element_targets`), converted once to flat arrays and
cached as .npz next to the output (keyed by the file's size and mtime).

Training: events are sorted by their number of elements and cut into mini-batches of ``--batch`` events of
similar size, padded to the batch's longest event (no chunk-wide padding); batch order is shuffled every
epoch; random φ rotation and η flip (z → −z: η, η at the calorimeter, dz change sign) augment each batch.
Loss `coffea_mlreco.mlpf.losses.mlpf_loss`: focal loss (γ = 2, optional class weights) for the class,
Huber for the momentum residuals (`regression_targets`) of elements with a particle, BCE for the charge — plus
``--none-energy-weight`` × a Huber loss that pulls the momentum output of clusters whose target is "none" (all
their energy belongs to tracks) to ≈ 0.7 % of the cluster's (`NONE_LOG_RATIO`). `mlpf_loss` leaves those
outputs free, so a cluster the classifier wrongly calls a neutral hadron would carry about the whole energy
of the tracks already counted — double counting that shows in jets and MET; with the extra term such a fake
carries almost nothing, and ambiguous clusters get a probability-weighted energy (the momentum head sees the
class probabilities). Optionally (``--energy-weight``) a Huber loss on the momentum of every cluster (the
"none" target for empty ones) weighted by the cluster's energy: the mean over elements lets the rare energetic
clusters (a small photon in the cell of a 100 GeV electron) count as little as a 0.2 GeV one, yet they decide
jets and MET. ``--init`` starts from earlier weights (fine-tuning). The loop is `coffea_mlreco.training.trainer`
(AdamW, one-cycle learning rate, gradients clipped to norm 1); the epoch with the lowest validation loss is kept.
Validation metrics per epoch: per-class efficiency and fake rate (element-level,
`coffea_mlreco.mlpf.performance.class_rates`).

Working point and calibration: after training, on validation events not used for the epoch choice, the
electron/muon logit offset that minimises misidentified tracks (`lepton_offset`) and the response correction
of neutral candidates (`neutral_pt_scale`) are written to the card as ``decision.class_logit_offsets`` and
``decision.neutral_pt_scale``, which `coffea_mlreco.mlpf.wrapper.shipped_mlpf_model` applies.

Outputs: the model directory ``--output DIR`` (default ``./coffea-mlreco-models/mlpf-mlpf``) with
``DIR/mlpf.safetensors`` and the model card ``DIR/mlpf.json`` (command, files with their generator metadata and
seeds, sample sizes, history, validation metrics, decision). The validation file must not be a training file
(see `coffea_mlreco.training.model_dir`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
from coffea_mlreco.training.trainer import Trainer

__all__ = [
    "MODEL",
    "LossSettings",
    "add_arguments",
    "lepton_offset",
    "load_mlpf_data",
    "mlpf_batches",
    "neutral_pt_scale",
    "predict",
    "run",
    "train_mlpf",
]

MODEL = "coffea_mlreco.mlpf.model:MLPF"
MODEL_NAME = "mlpf"
"""File stem of the trained model in its ``--output`` directory (``DIR/mlpf.{safetensors,json}``)."""
NONE_LOG_RATIO = -5.0
"""Momentum target (log pT and log E relative to the element's own, angles unchanged) of a cluster whose
target is "none": e^−5 ≈ 0.7 % of its energy."""
NONE_ENERGY_WEIGHT = 0.5
_ETA, _PHI, _ETA_CALO, _PHI_CALO, _DZ = 2, 3, 7, 8, 10


def mlpf_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Flat element rows ``x`` [M, 15], ``counts`` [N] and the targets (``cls``, ``pt``, ``eta``, ``phi``,
    ``e``, ``charge``, ``genVertex``; [M]) of a file."""
    import uproot

    from coffea_mlreco.mlpf.inputs import element_table_from_tree
    from coffea_mlreco.mlpf.targets import target_table_from_tree

    with uproot.open(path) as f:
        tree = f["Events"]
        if "nPFTarget" not in set(tree.keys()):
            raise KeyError(f"{path} has no PFTarget branches: generate it with --elements")
        x, counts = element_table_from_tree(tree)
        targets = target_table_from_tree(tree)
    return {"x": x, "counts": counts, **targets}


def load_mlpf_data(path: str | Path, cache_dir: str | Path) -> dict[str, np.ndarray]:
    """:func:`mlpf_arrays` of a file, cached as .npz in ``cache_dir``."""
    return cached_arrays(path, cache_dir, "mlpf", mlpf_arrays, ("elements-v2",), read=lambda p: p)


def mlpf_batches(counts: np.ndarray, batch: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Event indices of each mini-batch: events sorted by length (random tie order with ``rng``), cut into
    groups of ``batch``; batch order shuffled with ``rng``."""
    jitter = rng.random(counts.size) if rng is not None else np.zeros(counts.size)
    order = np.lexsort((jitter, counts))
    batches = [order[s : s + batch] for s in range(0, order.size, batch)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def _pad(data: dict[str, np.ndarray], offsets: np.ndarray, events: np.ndarray) -> dict[str, torch.Tensor]:
    """Pad the elements and targets of ``events`` to the longest of them."""
    lengths = offsets[events + 1] - offsets[events]
    width = max(int(lengths.max()), 1)
    slot = np.arange(width)[None, :]
    mask = slot < lengths[:, None]
    rows = np.where(mask, offsets[events][:, None] + slot, 0)
    out = {"mask": torch.from_numpy(mask)}
    for key in ("x", "cls", "pt", "eta", "phi", "e", "charge"):
        values = data[key][rows]
        values[~mask] = 0
        out[key] = torch.from_numpy(values)
    return out


def _augment(b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Random φ rotation and η flip of a padded batch (elements and targets)."""
    n = b["x"].shape[0]
    angle = random_angles(n)
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)[:, None]
    x = b["x"].clone()
    is_track = x[..., 0] == 1
    x[..., _PHI] = rotate_phi(x[..., _PHI], angle)
    x[..., _PHI_CALO] = torch.where(is_track, rotate_phi(x[..., _PHI_CALO], angle), x[..., _PHI_CALO])
    for column in (_ETA, _ETA_CALO, _DZ):
        x[..., column] = x[..., column] * flip
    out = dict(b)
    out.update(x=x.masked_fill(~b["mask"][..., None], 0.0), phi=rotate_phi(b["phi"], angle), eta=b["eta"] * flip)
    return out


@dataclass(frozen=True)
class LossSettings:
    """What `_loss` adds to `mlpf_loss` (module docstring): focal-loss class weights (6, or None), the weight of
    the "none"-cluster momentum term and of the energy-weighted cluster momentum term."""

    class_weights: tuple[float, ...] | None = None
    none_energy_weight: float = NONE_ENERGY_WEIGHT
    energy_weight: float = 0.0


def _loss(
    model: torch.nn.Module, b: dict[str, torch.Tensor], settings: LossSettings
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """`mlpf_loss` and the extra terms of ``settings``; ``total`` includes them, ``none_energy`` and
    ``energy_weighted`` report them."""
    import torch.nn.functional as F

    from coffea_mlreco.mlpf.losses import REGRESSION_SCALES, mlpf_loss, momentum_loss
    from coffea_mlreco.mlpf.model import CLUSTER, REGRESSION_TARGETS, regression_targets

    out = model(b["x"], b["mask"])
    target = regression_targets(
        b["pt"].double(), b["eta"].double(), b["phi"].double(), b["e"].double(), b["x"].double()
    ).float()
    cls = b["cls"].long()
    target = torch.where((cls != 0)[..., None], target, torch.zeros_like(target))
    weights = torch.tensor(settings.class_weights, dtype=torch.float32) if settings.class_weights else None
    parts = mlpf_loss(out, cls, target, b["charge"], b["mask"], class_weights=weights)
    clusters = (b["x"][..., 0] == CLUSTER) & b["mask"]
    empty = (cls == 0) & clusters
    none_target = torch.zeros(len(REGRESSION_TARGETS))
    none_target[0] = none_target[4] = NONE_LOG_RATIO
    if settings.none_energy_weight:
        parts["none_energy"] = momentum_loss(out["momentum"], none_target.expand_as(target), empty.long(), b["mask"])
        parts["total"] = parts["total"] + settings.none_energy_weight * parts["none_energy"]
    if settings.energy_weight:
        full = torch.where(empty[..., None], none_target.expand_as(target), target)
        scale = torch.tensor(REGRESSION_SCALES)
        huber = F.huber_loss(out["momentum"].float() / scale, full / scale, reduction="none").sum(-1)
        energy = b["x"][..., 4] * clusters
        parts["energy_weighted"] = (huber * energy).sum() / energy.sum().clamp(min=1e-6)
        parts["total"] = parts["total"] + settings.energy_weight * parts["energy_weighted"]
    return parts, out


def predict(model: torch.nn.Module, data: dict[str, np.ndarray], batch: int = 4) -> dict[str, np.ndarray]:
    """Flat model outputs (``class_logits`` [M, 6], ``momentum`` [M, 5], ``charge_logit`` [M]) on ``data``."""
    offsets = np.concatenate([[0], np.cumsum(data["counts"])]).astype(np.int64)
    outputs = {
        "class_logits": np.zeros((offsets[-1], 6), np.float32),
        "momentum": np.zeros((offsets[-1], 5), np.float32),
        "charge_logit": np.zeros(offsets[-1], np.float32),
    }
    model.eval()
    with torch.inference_mode():
        for events in mlpf_batches(data["counts"], batch):
            b = _pad(data, offsets, events)
            out = model(b["x"], b["mask"])
            mask = b["mask"].numpy()
            rows = (offsets[events][:, None] + np.arange(mask.shape[1])[None, :])[mask]
            for key, values in outputs.items():
                values[rows] = out[key].numpy()[mask]
    return outputs


def validation_metrics(
    model: torch.nn.Module, data: dict[str, np.ndarray], settings: LossSettings, batch: int
) -> dict[str, Any]:
    """Mean validation loss (per batch) and element-level efficiency / fake rate per class (one pass)."""
    from coffea_mlreco.mlpf.candidates import allowed_class_logits
    from coffea_mlreco.mlpf.performance import class_rates

    offsets = np.concatenate([[0], np.cumsum(data["counts"])]).astype(np.int64)
    logits = np.zeros((offsets[-1], 6), np.float32)
    model.eval()
    losses = []
    with torch.inference_mode():
        for events in mlpf_batches(data["counts"], batch):
            b = _pad(data, offsets, events)
            parts, out = _loss(model, b, settings)
            losses.append({k: float(v) for k, v in parts.items()})
            mask = b["mask"].numpy()
            rows = (offsets[events][:, None] + np.arange(mask.shape[1])[None, :])[mask]
            logits[rows] = out["class_logits"].numpy()[mask]
    predicted = allowed_class_logits(logits, data["x"][:, 0].astype(np.int64)).argmax(-1)
    rates = class_rates(data["cls"], predicted)
    return {
        "loss": round(float(np.mean([x["total"] for x in losses])), 5),
        **{
            f"loss_{k}": round(float(np.mean([x[k] for x in losses])), 5)
            for k in ("classification", "momentum", "charge", "none_energy", "energy_weighted")
            if k in losses[0]
        },
        **{
            k: {c: None if v is None else round(v, 5) for c, v in rates[k].items()} for k in ("efficiency", "fake_rate")
        },
    }


def train_mlpf(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    config: dict,
    epochs: int,
    lr: float,
    batch: int,
    seed: int,
    settings: LossSettings | None = None,
    progress: bool = True,
    init: str | Path | None = None,
) -> tuple[torch.nn.Module, list[dict], dict]:
    """Train `MLPF(**config)` (from the weights ``init`` if given); returns the best-epoch model, the history
    and its validation metrics."""
    from coffea_mlreco.mlpf.model import MLPF, expand_link_inputs

    settings = settings or LossSettings()
    trainer = Trainer(seed=seed, epochs=epochs, lr=lr, progress=progress, name="mlpf")
    model = MLPF(**config)
    if init is not None:
        from safetensors.torch import load_file

        state = load_file(str(init))
        model.load_state_dict(expand_link_inputs(state, model) if model.link_features else state)
    offsets = np.concatenate([[0], np.cumsum(train["counts"])]).astype(np.int64)

    def loss(model: torch.nn.Module, events: np.ndarray) -> torch.Tensor:
        return _loss(model, _augment(_pad(train, offsets, events)), settings)[0]["total"]

    fit = trainer.fit(
        model,
        lambda epoch: mlpf_batches(train["counts"], batch, trainer.rng),
        loss,
        lambda model: validation_metrics(model, val, settings, batch),
        monitor="loss",
        mode="min",
    )
    return model, fit.history, {"epoch": fit.best_epoch, **fit.best_metrics}


LEPTON_OFFSETS = tuple(-0.25 * k for k in range(13))
"""Candidate logit offsets (added to both electron and muon) that `lepton_offset` chooses from."""


def lepton_offset(model: torch.nn.Module, data: dict[str, np.ndarray], batch: int = 4) -> tuple[float, list[dict]]:
    """The offset o (from `LEPTON_OFFSETS`) added to the electron and muon logits that minimises the number of
    misidentified tracks (charged hadron ↔ electron ↔ muon) on ``data``: the class weights that help the rare
    leptons being learnt also inflate their logits by about log(weight); this takes the inflation back out.
    Returns o and, per offset tried, the count and the charged-hadron efficiency / fake rate."""
    from coffea_mlreco.mlpf.performance import class_rates

    logits = predict(model, data, batch)["class_logits"]
    tracks = data["x"][:, 0] == 1
    logits, target = logits[tracks], data["cls"][tracks]
    scan: list[dict[str, Any]] = []
    counts = []
    for o in LEPTON_OFFSETS:
        shifted = logits.copy()
        shifted[:, 4:6] += o
        shifted[:, [2, 3]] = -np.inf  # a track cannot give a neutral (`candidates.ALLOWED_CLASSES`)
        predicted = shifted.argmax(-1)
        rates = class_rates(target, predicted)
        counts.append(int(np.sum(predicted != target)))
        scan.append(
            {
                "offset": o,
                "misidentified_tracks": counts[-1],
                "charged_hadron_efficiency": rates["efficiency"]["charged_hadron"],
                "charged_hadron_fake_rate": rates["fake_rate"]["charged_hadron"],
            }
        )
    best = min(range(len(LEPTON_OFFSETS)), key=lambda k: (counts[k], -LEPTON_OFFSETS[k]))
    return float(LEPTON_OFFSETS[best]), scan


def neutral_pt_scale(
    model: torch.nn.Module, data: dict[str, np.ndarray], logit_offsets: np.ndarray, batch: int = 4
) -> list[list[float]]:
    """Response correction of neutral candidates: per region (row 0: |η| < 3, row 1: HF) and class, Σ pT_true /
    Σ pT_reco over clusters whose target class is predicted (1 for other classes). The regression is a Huber
    fit of log(pT) — a median in log space — which leaves the mean pT a few % low; summed into MET that is a
    bias along the hadronic recoil, which this factor removes."""
    from coffea_mlreco.mlpf.candidates import allowed_class_logits
    from coffea_mlreco.mlpf.model import decode_candidates

    out = predict(model, data, batch)
    kind = data["x"][:, 0].astype(np.int64)
    logits = allowed_class_logits(out["class_logits"] + logit_offsets, kind)
    decoded = decode_candidates(
        {"class_logits": logits[None], "momentum": out["momentum"][None], "charge_logit": out["charge_logit"][None]},
        data["x"][None],
    )
    cls = decoded["cls"].astype(np.int64)
    hf = np.abs(data["x"][:, 2]) >= 3.0
    scale = [[1.0] * 6, [1.0] * 6]
    for region, inside in enumerate((~hf, hf)):
        for c in (2, 3):
            matched = inside & (kind == 2) & (cls == c) & (data["cls"] == c)
            if matched.sum() >= 100:
                scale[region][c] = round(float(data["pt"][matched].sum() / decoded["pt"][matched].sum()), 4)
    return scale


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", nargs="+", required=True, help="training ROOT files made with --elements")
    parser.add_argument("--validation", required=True, help="held-out ROOT file (a different seed)")
    add_output_argument(parser, "mlpf", "mlpf")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle)")
    parser.add_argument("--batch", type=int, default=4, help="events per mini-batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dim", type=int, default=64, help="embedding width")
    parser.add_argument("--layers", type=int, default=3, help="binned graph layers")
    parser.add_argument("--heads", type=int, default=4, help="attention heads")
    parser.add_argument("--bin-size", type=int, default=64, help="elements per LSH bin")
    parser.add_argument(
        "--binning",
        choices=("position", "learned"),
        default="position",
        help="what the LSH hashes: the calorimeter-surface position (default; links tracks to their "
        "clusters) or the learned projection and the position",
    )
    parser.add_argument(
        "--class-weights",
        type=float,
        nargs=6,
        default=None,
        metavar="W",
        help="focal-loss weight per class (none, charged_hadron, neutral_hadron, photon, electron, "
        "muon); default all 1",
    )
    parser.add_argument(
        "--none-energy-weight",
        type=float,
        default=NONE_ENERGY_WEIGHT,
        help="weight of the loss pulling the momentum of 'none' clusters to ~0 (0: plain mlpf_loss)",
    )
    parser.add_argument(
        "--energy-weight",
        type=float,
        default=0.0,
        help="weight of the cluster momentum loss weighted by cluster energy (0: none)",
    )
    parser.add_argument(
        "--init",
        default=None,
        help="start from these weights (.safetensors of the same config, "
        "or of the same config without --link-features: the link inputs then start at zero)",
    )
    parser.add_argument(
        "--link-features",
        action="store_true",
        help="also read the detector's track–cluster links (e_linked, n_linked; models.mlpf.link_features)",
    )
    parser.add_argument(
        "--calibration-events",
        type=int,
        default=400,
        help="validation events after those of --max-validation-events on which the lepton logit "
        "offset is chosen (the same events if there are no others)",
    )
    parser.add_argument("--max-train-events", type=int, default=None, help="use at most this many training events")
    parser.add_argument(
        "--max-validation-events", type=int, default=None, help="validate on at most this many events (each epoch)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cache-dir", default=None, help="array cache (default: next to the output)")
    parser.add_argument("--quiet", action="store_true")


def _head(data: dict[str, np.ndarray], n_events: int) -> dict[str, np.ndarray]:
    n_rows = int(data["counts"][:n_events].sum())
    return {k: (v[:n_events] if k == "counts" else v[:n_rows]) for k, v in data.items()}


def _tail(data: dict[str, np.ndarray], n_events: int) -> dict[str, np.ndarray]:
    """The events after the first ``n_events``."""
    n_rows = int(data["counts"][:n_events].sum())
    return {k: (v[n_events:] if k == "counts" else v[n_rows:]) for k, v in data.items()}


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        check_validation_files(args.train, [args.validation])
        output = prepare_output(args.output, "mlpf", MODEL_NAME)
    except TrainingSetupError as err:
        return setup_error("mlpf", err)
    cache = args.cache_dir or str(output.parent / "mlpf-cache")
    try:
        train = concat_arrays([load_mlpf_data(f, cache) for f in args.train])
        val = load_mlpf_data(args.validation, cache)
    except (KeyError, OSError, ValueError) as err:
        print(f"coffea-mlreco train mlpf: error: {err}", file=sys.stderr)
        return 2
    if args.max_train_events:
        train = _head(train, args.max_train_events)
    calibration = val
    if args.max_validation_events:
        rest = _tail(val, args.max_validation_events)
        val = _head(val, args.max_validation_events)
        calibration = _head(rest, args.calibration_events) if rest["counts"].size else val
    config = {
        "dim": args.dim,
        "n_layers": args.layers,
        "n_heads": args.heads,
        "bin_size": args.bin_size,
        "binning": args.binning,
    }
    if args.link_features:
        config["link_features"] = True
    settings = LossSettings(
        tuple(args.class_weights) if args.class_weights else None, args.none_energy_weight, args.energy_weight
    )
    model, history, metrics = train_mlpf(
        train, val, config, args.epochs, args.lr, args.batch, args.seed, settings, not args.quiet, args.init
    )
    offset, scan = lepton_offset(model, calibration, args.batch)
    offsets = [0.0, 0.0, 0.0, 0.0, offset, offset]
    decision = {
        "class_logit_offsets": offsets,
        "criterion": "electron and muon logit offset minimising misidentified tracks (lepton_offset)",
        "neutral_pt_scale": neutral_pt_scale(model, calibration, np.asarray(offsets, np.float32), args.batch),
        "calibration_events": int(calibration["counts"].size),
        "scan": scan,
    }
    card = model_card(
        MODEL,
        config,
        MODEL_NAME,
        sum(p.numel() for p in model.parameters()),
        data=describe_data(args.train, args.validation, train["counts"].size, val["counts"].size)
        | {"training_elements": int(train["counts"].sum())},
        settings={
            "epochs": args.epochs,
            "learning_rate": args.lr,
            "batch": args.batch,
            "seed": args.seed,
            "class_weights": args.class_weights,
            "none_energy_weight": args.none_energy_weight,
            "energy_weight": args.energy_weight,
            "init": Path(args.init).name if args.init else None,
        },
        history=history,
        metrics=metrics,
        seconds=time.perf_counter() - start,
        decision=decision,
    )
    write_model(output, MODEL_NAME, model.state_dict(), card)  # complete or absent: model_dir.model_output
    print(json.dumps(metrics, indent=1))
    return 0
