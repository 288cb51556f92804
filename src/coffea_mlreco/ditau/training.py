"""`coffea-mlreco train ditau`: train the di-tau transformer (m_ττ) on generated files.

Data: the events with a selected di-tau pair (:func:`coffea_mlreco.ditau.inputs.ditau_candidates`) whose two
legs both match a generator tau (:mod:`coffea_mlreco.ditau.targets`), converted once to padded arrays and
cached next to the output (keyed by the file's size and mtime). Train on a broad mass spectrum
(``--process scalar-tautau`` files plus some ``ztautau``) so the model does not learn a prior peaked at one
mass; evaluate on held-out H(125) and Z.

Loss (the seed's): per-tau mean absolute error of (log pT, η, φ) — the targets are their differences to the
visible leg — plus 0.07 × |m_pred/m_gen − 1|. Augmentation: the two exact symmetries η → −η and φ → −φ
(:func:`coffea_mlreco.ditau.transformer_inputs.symmetry_signs`; no φ rotation: the inputs are in the frame of the
first leg). The loop is `coffea_mlreco.training.trainer` (AdamW, one-cycle learning rate with a 10 % warm-up,
gradients clipped to norm 1). The epoch with the best validation
resolution of m_pred/m_gen − 1 ((P84 − P16)/2), divided by the response 1 + median (so an epoch that merely scales
the masses down does not win), is kept; weights (safetensors) and a model card (JSON: command,
files and seeds, sample sizes, metrics) are written into the model directory ``--output DIR`` (default
``./coffea-mlreco-models/ditau-transformer``) as ``DIR/transformer.safetensors`` and ``DIR/transformer.json``.
The validation file must not be a training file (see `coffea_mlreco.training.model_dir`).

MET input (``--met-input``): the file's MET (the shipped model's), or a MET method's column (``perceiver``: the ML
MET) reconstructed on the selected events with the shipped networks and their calibrated covariance; the model card
records it as ``met_input`` and ``ditau.reconstruct`` then hands the model that MET. The command line gives the
trainer ``args.reconstruct_task`` (task name → its ``reconstruct``), since a task package imports no other task.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from coffea_mlreco.core.columns import MET_COLUMNS, Events, to_numpy
from coffea_mlreco.core.constants import M_H
from coffea_mlreco.ditau.inputs import FILE_MET, ditau_candidates, met_with_covariance
from coffea_mlreco.ditau.targets import tau_targets
from coffea_mlreco.ditau.transformer_inputs import MAX_JETS, MAX_PRODUCTS, symmetry_signs, transformer_inputs
from coffea_mlreco.training.cached_arrays import cached_arrays, concat_arrays, event_chunks
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

__all__ = [
    "MASS_LOSS_WEIGHT",
    "MODEL",
    "add_arguments",
    "ditau_arrays",
    "load_ditau_data",
    "predict",
    "run",
    "train_transformer",
]

MODEL = "coffea_mlreco.ditau.transformer:DiTauTransformer"
MODEL_NAME = "transformer"
"""File stem of the trained model in its ``--output`` directory (``DIR/transformer.{safetensors,json}``)."""
MASS_LOSS_WEIGHT = 0.07
"""Weight of |m_pred/m_gen − 1| relative to the per-tau MAE (the seed's 7 %)."""
_INPUTS = ("products1", "products1_mask", "products2", "products2_mask", "jets", "jets_mask", "legs", "met")


def _padded(tokens: ak.Array, size: int) -> tuple[np.ndarray, np.ndarray]:
    padded = ak.pad_none(tokens, size, axis=1, clip=True)
    mask = to_numpy(~ak.is_none(padded, axis=1), bool)
    x = np.stack([to_numpy(ak.fill_none(padded[f], 0.0), np.float32) for f in ak.fields(tokens)], -1)
    return x, mask


def _dense(record: ak.Array) -> np.ndarray:
    return np.stack([to_numpy(record[f], np.float32) for f in ak.fields(record)], -1)


MetAppender = Callable[[Any], Any]
"""``events -> events`` with the MET column a model reads appended (``met.reconstruct`` for that method, handed in
by the command line: a task package does not import another)."""


def ditau_arrays(
    events: Events, met_input: str = FILE_MET, append_met: MetAppender | None = None
) -> dict[str, np.ndarray]:
    """Padded model inputs, targets and visible legs of the selected, truth-matched events of ``events``.

    ``met_input``: the MET the model reads, ``"file"`` or a MET method (``"perceiver"``); for a method,
    ``append_met`` appends its column to the selected events (the MET and the FastMTT fit among the inputs are
    then that MET's).

    Keys: the model inputs (``products1`` [N, 10, F] + mask, ``products2``, ``jets`` [N, 3, Fj] + mask, ``legs``,
    ``met``), ``target`` [N, 2, 3], ``visible`` [N, 2, 3] (reco legs' pT, η, φ − φ_leg1), ``mass_gen`` [N] (GeV),
    ``channel`` [N].
    """
    candidates = ditau_candidates(events)
    selected = to_numpy(candidates.selected, bool)
    events, candidates = events[selected], candidates[selected]
    if met_input != FILE_MET:
        if append_met is None:
            raise ValueError(f"met_input {met_input!r} needs append_met (the command line passes met.reconstruct)")
        events = append_met(events)
        candidates = ak.with_field(candidates, met_with_covariance(events, MET_COLUMNS[met_input]), "met")
    truth = tau_targets(events, candidates.leg1, candidates.leg2)
    keep = truth.matched
    events, candidates = events[keep], candidates[keep]
    inputs = transformer_inputs(events, candidates)
    out: dict[str, np.ndarray] = {}
    out["products1"], out["products1_mask"] = _padded(inputs.products1, MAX_PRODUCTS)
    out["products2"], out["products2_mask"] = _padded(inputs.products2, MAX_PRODUCTS)
    out["jets"], out["jets_mask"] = _padded(inputs.jets, MAX_JETS)
    out["legs"], out["met"] = _dense(inputs.legs), _dense(inputs.met)
    out["target"] = truth.target[keep].astype(np.float32)
    out["visible"] = visible_legs(candidates.leg1, candidates.leg2)
    out["mass_gen"] = truth.mass[keep].astype(np.float32)
    out["channel"] = to_numpy(candidates.channel, np.int64)
    return out


def visible_legs(leg1: ak.Array, leg2: ak.Array) -> np.ndarray:
    """[N, 2, 3] (pT, η, φ − φ_leg1) of the visible legs (GeV, rad), the frame the transformer works in."""
    cols = [[to_numpy(leg[f], np.float64) for f in ("pt", "eta", "phi")] for leg in (leg1, leg2)]
    ref = cols[0][2]
    for c in cols:
        c[2] = np.mod(c[2] - ref + np.pi, 2 * np.pi) - np.pi
    return np.stack([np.stack(c, -1) for c in cols], 1).astype(np.float32)


def load_ditau_data(
    path: str | Path, cache_dir: str | Path, met_input: str = FILE_MET, append_met: MetAppender | None = None
) -> dict[str, np.ndarray]:
    """:func:`ditau_arrays` of a file, built chunk by chunk (:func:`~coffea_mlreco.training.cached_arrays.
    event_chunks`) and cached as .npz in ``cache_dir`` (per ``met_input``)."""
    build = functools.partial(ditau_arrays, met_input=met_input, append_met=append_met)

    def build_in_chunks(file: Path) -> dict[str, np.ndarray]:
        return concat_arrays([build(events) for events in event_chunks(file)])

    key = ("fastmtt-inputs",) if met_input == FILE_MET else ("fastmtt-inputs", f"met-{met_input}")
    return cached_arrays(path, cache_dir, "ditau", build_in_chunks, key_parts=key, read=Path)


def _augment(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply η → −η and/or φ → −φ to random halves of the batch (inputs, targets and visible legs)."""
    n = batch["legs"].shape[0]
    flips = torch.rand(n, 2) < 0.5
    out = dict(batch)
    for group, names in (
        ("products", ("products1", "products2")),
        ("jets", ("jets",)),
        ("legs", ("legs",)),
        ("met", ("met",)),
    ):
        odd_eta = torch.from_numpy(symmetry_signs(group, True, False))
        odd_phi = torch.from_numpy(symmetry_signs(group, False, True))
        factor = torch.where(flips[:, :1], odd_eta, torch.ones_like(odd_eta)) * torch.where(
            flips[:, 1:], odd_phi, torch.ones_like(odd_phi)
        )  # [B, F]
        for name in names:
            x = batch[name]
            out[name] = x * (factor[:, None, :] if x.dim() == 3 else factor)
    sign_eta = 1.0 - 2.0 * flips[:, 0].float()
    sign_phi = 1.0 - 2.0 * flips[:, 1].float()
    factor = torch.stack([torch.ones(n), sign_eta, sign_phi], dim=-1)[:, None, :]
    out["target"] = batch["target"] * factor
    out["visible"] = batch["visible"] * factor
    return out


def mass_flattening_weights(
    mass_gen: np.ndarray,
    n_bins: int = 20,
    max_weight: float = 5.0,
    channel: np.ndarray | None = None,
    prior_power: float = 0.0,
) -> np.ndarray:
    """Per-event weights [N] (mean 1) that make the training sample's m_gen distribution flat in log m.

    The selection favours heavy resonances (harder legs), so an unweighted broad-mass sample still has a
    prior that pulls light events (Z, H) up; weighting each event by 1/density of its log m_gen, in
    ``n_bins`` equal bins over the sample's range (at most ``max_weight`` × the mean), removes that prior.

    ``channel`` [N] (the reconstructed channel): flatten within each channel, each keeping its share of the
    events. The model sees the channel, so its prior is the channel's own m_gen spectrum, and the ℓℓ channels
    are selected more often at high mass. Measured (``benchmarks/RESULTS.md``): this does not remove the
    upward pull of ℓℓ Z → ττ events, which is the regression towards the sample's middle, not this slope.

    ``prior_power`` k > 0: the prior is not flat but falls as (m_gen / m_H)^−k in log m (m_H = 125 GeV), like
    the m^−k term the reference FastMTT multiplies its likelihood with. A regression estimates the posterior's
    middle, so where the measurement says little (the ℓℓ channels, two neutrinos per leg) the prior decides
    where the mass lands; a falling prior keeps those events near the Z and the H instead of pulling them
    towards the sample's middle (about 160 GeV), at the cost of a downward scale at high mass.
    """
    mass_gen = np.asarray(mass_gen, np.float64)
    falling = (np.maximum(mass_gen, 1e-3) / M_H) ** -prior_power
    if channel is None:
        return _mean_one_clipped(_inverse_log_mass_density(mass_gen, n_bins) * falling, max_weight)
    channel = np.asarray(channel)
    weights = np.ones(mass_gen.size, np.float64)
    for c in np.unique(channel):
        mine = channel == c
        inverse = _inverse_log_mass_density(mass_gen[mine], n_bins)
        weights[mine] = inverse / inverse.mean()
    return _mean_one_clipped(weights * falling, max_weight)


def _inverse_log_mass_density(mass_gen: np.ndarray, n_bins: int) -> np.ndarray:
    """1 / (events in the event's bin), in ``n_bins`` equal bins of log m_gen over the sample's range."""
    log_m = np.log(np.maximum(mass_gen, 1e-3))
    if log_m.size == 0:
        return np.ones(0, np.float64)
    edges = np.linspace(log_m.min(), log_m.max() + 1e-9, n_bins + 1)
    counts, _ = np.histogram(log_m, edges)
    return 1.0 / counts[np.clip(np.digitize(log_m, edges) - 1, 0, n_bins - 1)].astype(np.float64)


def channel_balancing_weights(channel: np.ndarray, max_weight: float = 3.0) -> np.ndarray:
    """Per-event weights [N] (mean 1) ∝ 1/(events of the event's reconstructed channel), clipped at ``max_weight`` ×
    the mean before the final normalisation: the ℓℓ channels (eμ, μμ, ee) are ~10 % of a ττ sample, so unweighted
    they get little of the loss."""
    _, index, counts = np.unique(np.asarray(channel), return_inverse=True, return_counts=True)
    return _mean_one_clipped(1.0 / counts[index].astype(np.float64), max_weight)


def _mean_one_clipped(weights: np.ndarray, max_weight: float) -> np.ndarray:
    """``weights`` scaled to mean 1, clipped at ``max_weight``, then scaled to mean 1 again (float32)."""
    if weights.size == 0:
        return np.ones(0, np.float32)
    weights = np.minimum(weights / weights.mean(), max_weight)
    return (weights / weights.mean()).astype(np.float32)


def _loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], mass_weight: float = MASS_LOSS_WEIGHT
) -> torch.Tensor:
    from coffea_mlreco.ditau.transformer import ditau_mass

    out = model(**{k: batch[k] for k in _INPUTS})["tau"]
    mae = (out - batch["target"]).abs().mean(dim=(1, 2))
    mass = ditau_mass(out, batch["visible"])
    per_event = mae + mass_weight * (mass / batch["mass_gen"] - 1.0).abs()
    weight = batch["weight"]
    return (weight * per_event).sum() / weight.sum()


def predict(model: torch.nn.Module, data: dict[str, np.ndarray], batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(m_ττ [N] in GeV, raw outputs [N, 2, 3]) of ``model`` on arrays from :func:`ditau_arrays`."""
    from coffea_mlreco.ditau.transformer import ditau_mass

    model.eval()
    masses, outs = [], []
    with torch.inference_mode():
        for s in range(0, len(data["legs"]), batch):
            tensors = {k: torch.from_numpy(data[k][s : s + batch]) for k in (*_INPUTS, "visible")}
            out = model(**{k: tensors[k] for k in _INPUTS})["tau"]
            outs.append(out.numpy())
            masses.append(ditau_mass(out, tensors["visible"]).numpy())
    if not outs:
        return np.zeros(0), np.zeros((0, 2, 3))
    return np.concatenate(masses).astype(np.float64), np.concatenate(outs)


def mass_metrics(mass: np.ndarray, mass_gen: np.ndarray) -> dict[str, float]:
    """Bias (mean), median and resolution ((P84 − P16)/2) of m/m_gen − 1, and the event count."""
    r = mass / mass_gen - 1.0
    r = r[np.isfinite(r)]
    if r.size == 0:
        return {"bias": float("nan"), "median": float("nan"), "resolution": float("nan"), "n": 0}
    p16, p50, p84 = np.percentile(r, [16, 50, 84])
    return {"bias": float(r.mean()), "median": float(p50), "resolution": float((p84 - p16) / 2), "n": int(r.size)}


def _scale_free(metrics: dict[str, float]) -> float:
    """Resolution divided by the response (1 + median): a model that scales every mass down would otherwise
    look narrower. The best epoch minimises this (``val_scale_free_resolution`` in the history)."""
    return metrics["resolution"] / max(1.0 + metrics["median"], 1e-3)


def train_transformer(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    config: dict[str, Any],
    epochs: int,
    lr: float,
    batch: int,
    seed: int,
    progress: bool = True,
    flatten_mass: bool = False,
    balance_channels: bool = False,
    flatten_per_channel: bool = False,
    mass_loss_weight: float = MASS_LOSS_WEIGHT,
    mass_prior_power: float = 0.0,
) -> tuple[torch.nn.Module, list[dict], dict]:
    """Train :class:`~coffea_mlreco.ditau.transformer.DiTauTransformer`; returns (best model, history,
    best validation metrics). ``flatten_mass``: weight events by :func:`mass_flattening_weights` (within each
    channel with ``flatten_per_channel``); ``balance_channels``: also by :func:`channel_balancing_weights`.
    ``mass_loss_weight``: weight of |m/m_gen − 1| in the loss, relative to the per-tau MAE; ``mass_prior_power``:
    the flattened prior falls as m_gen^−k (``prior_power`` of :func:`mass_flattening_weights`)."""
    from coffea_mlreco.ditau.transformer import DiTauTransformer

    trainer = Trainer(seed=seed, epochs=epochs, lr=lr, warmup=0.1, progress=progress, name="ditau")
    model = DiTauTransformer(**config)
    n = len(train["legs"])
    tensors = {k: torch.from_numpy(train[k]) for k in (*_INPUTS, "target", "visible", "mass_gen")}
    by_channel = train["channel"] if flatten_per_channel else None
    weight = (
        mass_flattening_weights(train["mass_gen"], channel=by_channel, prior_power=mass_prior_power)
        if flatten_mass
        else np.ones(n, np.float32)
    )
    if balance_channels:
        weight = weight * channel_balancing_weights(train["channel"])
    tensors["weight"] = torch.from_numpy(weight)  # the loss divides by the batch's summed weight

    def loss(model: torch.nn.Module, events: np.ndarray) -> torch.Tensor:
        idx = torch.from_numpy(events)
        return _loss(model, _augment({k: v[idx] for k, v in tensors.items()}), mass_loss_weight)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        metrics = mass_metrics(predict(model, val)[0], val["mass_gen"].astype(np.float64))
        return {f"val_{k}": v for k, v in metrics.items()} | {"val_scale_free_resolution": _scale_free(metrics)}

    fit = trainer.fit(
        model,
        lambda epoch: shuffled_batches(n, batch, trainer.rng),
        loss,
        validate,
        monitor="val_scale_free_resolution",
        mode="min",
    )
    best = {k.removeprefix("val_"): v for k, v in fit.best_metrics.items() if k != "val_scale_free_resolution"}
    return model, fit.history, best


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--train",
        nargs="+",
        required=True,
        help="training ROOT files (e.g. scalar-tautau and ztautau; generator truth needed)",
    )
    parser.add_argument("--validation", required=True, help="held-out ROOT file (a different seed)")
    add_output_argument(parser, "ditau", "transformer")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one-cycle)")
    parser.add_argument("--batch", type=int, default=256, help="events per mini-batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dim", type=int, default=128, help="token width")
    parser.add_argument("--blocks", type=int, default=3, help="blocks of (within-group, across-group) attention")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument(
        "--no-flatten-mass",
        dest="flatten_mass",
        action="store_false",
        help="do not weight events to a flat log m_gen spectrum (mass_flattening_weights)",
    )
    parser.add_argument(
        "--mass-loss-weight",
        type=_non_negative,
        default=MASS_LOSS_WEIGHT,
        help="weight of |m/m_gen - 1| in the loss relative to the per-tau MAE (default: the seed's %(default)s)",
    )
    parser.add_argument(
        "--mass-prior-power",
        type=_non_negative,
        default=0.0,
        help="k >= 0: the flattened m_gen prior falls as m_gen^-k in log m (mass_flattening_weights), which keeps "
        "the poorly measured ℓℓ events near the Z and the H instead of the sample's middle (default %(default)s: "
        "flat)",
    )
    parser.add_argument(
        "--flatten-per-channel",
        action="store_true",
        help="flatten log m_gen within each reconstructed channel (mass_flattening_weights with channel): the "
        "model's prior is then flat in every channel, not only summed over them",
    )
    parser.add_argument(
        "--balance-channels",
        action="store_true",
        help="weight events by 1/(events of their channel) (channel_balancing_weights): the ℓℓ channels are "
        "~10 %% of the sample",
    )
    parser.add_argument(
        "--no-fastmtt-prior",
        dest="fastmtt_prior",
        action="store_false",
        help="regress log pT from scratch instead of as a residual on the FastMTT-style fit",
    )
    parser.add_argument(
        "--met-input",
        default=FILE_MET,
        choices=(FILE_MET, *MET_COLUMNS),
        help="the MET the model reads: the file's, or a MET method's column with its calibrated covariance "
        "(e.g. perceiver: the ML MET, reconstructed on the selected events with the shipped networks); "
        "recorded in the model card as met_input",
    )
    parser.add_argument("--cache-dir", default=None, help="array cache (default: next to the output)")
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        if args.mass_prior_power > 0 and not args.flatten_mass:
            raise TrainingSetupError(
                "--mass-prior-power shapes the flattened prior; it cannot be combined with --no-flatten-mass"
            )
        check_validation_files(args.train, [args.validation])
        output = prepare_output(args.output, "ditau", MODEL_NAME)
    except TrainingSetupError as err:
        return setup_error("ditau", err)
    cache = args.cache_dir or str(output.parent / "ditau-cache")
    config = {
        "dim": args.dim,
        "heads": args.heads,
        "blocks": args.blocks,
        "ff": 2 * args.dim,
        "fastmtt_prior": args.fastmtt_prior,
    }
    append_met = None
    if args.met_input != FILE_MET:
        reconstruct_met = args.reconstruct_task("met")  # the command line's registry (module docstring)
        append_met = functools.partial(reconstruct_met, methods=(args.met_input,), device="cpu")
    try:
        train = concat_arrays([load_ditau_data(f, cache, args.met_input, append_met) for f in args.train])
        val = load_ditau_data(args.validation, cache, args.met_input, append_met)
    except (KeyError, OSError, ValueError) as err:
        print(f"coffea-mlreco train ditau: error: {err}", file=sys.stderr)
        return 2
    if len(train["legs"]) == 0 or len(val["legs"]) == 0:
        print(
            "coffea-mlreco train ditau: error: no selected, truth-matched di-tau events in the training or "
            "validation files",
            file=sys.stderr,
        )
        return 2
    model, history, metrics = train_transformer(
        train,
        val,
        config,
        args.epochs,
        args.lr,
        args.batch,
        args.seed,
        not args.quiet,
        flatten_mass=args.flatten_mass,
        balance_channels=args.balance_channels,
        flatten_per_channel=args.flatten_per_channel,
        mass_loss_weight=args.mass_loss_weight,
        mass_prior_power=args.mass_prior_power,
    )
    card = model_card(
        MODEL,
        config,
        MODEL_NAME,
        sum(p.numel() for p in model.parameters()),
        data=describe_data(args.train, args.validation, len(train["legs"]), len(val["legs"])),
        settings={
            "epochs": args.epochs,
            "learning_rate": args.lr,
            "batch": args.batch,
            "seed": args.seed,
            "flatten_mass": args.flatten_mass,
            "balance_channels": args.balance_channels,
            "flatten_per_channel": args.flatten_per_channel,
            "mass_loss_weight": args.mass_loss_weight,
            "mass_prior_power": args.mass_prior_power,
        },
        history=history,
        metrics=metrics,
        seconds=time.perf_counter() - start,
    )
    card["met_input"] = args.met_input
    write_model(output, MODEL_NAME, model.state_dict(), card)  # complete or absent: model_dir.model_output
    print(json.dumps(metrics, indent=1))
    return 0
