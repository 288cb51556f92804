"""`coffea-mlreco train mem`: train the DeepMEM network on tables of integrated Matrix-Element-Method weights.

Input: MEM weight tables (`coffea_mlreco.mem.table_schema`, written by ``coffea-mlreco mem-weights``).

**Training.** The network (:class:`coffea_mlreco.mem.deepmem.DeepMEM`) regresses −log10 P per hypothesis, as
the DeepMEM seed did. The figure of merit is the MAPE of the weight P itself, ⟨|P̂/P − 1|⟩ (:func:`mape`), so the
loss is taken on δ = ln 10 · (log10 P̂ − log10 P), which equals the relative error of P to first order
(P̂/P − 1 = e^δ − 1 ≈ δ): ``huber`` (default; quadratic below ``huber_delta`` = 1 %, linear above — MAE, i.e.
MAPE, for the tails), ``mae`` or ``mse``. With ``--weight-by-error`` each entry is weighted by
1/(σ_rel² + (0.5 %)²), σ_rel = ln 10 · log10_weight_err, normalised to mean 1.

Data pipeline: both tables live on the device as tensors for the whole run; each epoch is a ``torch.randperm``
on the device sliced into full mini-batches (the remainder differs every epoch), with no DataLoader, collate
or host synchronisation inside the epoch. The loop is `coffea_mlreco.training.trainer` (AdamW, one-cycle
learning rate with a 5 % warm-up, no gradient clipping): validation MAPE every epoch, the best epoch's weights
kept, early stop after ``patience`` epochs without improvement. The log and the model card report epochs/s and
the GPU utilisation (NVML, sampled at the end of each epoch's training pass; "n/a" on the CPU or without NVML).

Writes the model directory ``--output DIR`` (default ``./coffea-mlreco-models/mem-<name>``, ``<name>`` =
``--name``, default ``deepmem``; never inside the installed package): ``DIR/<name>.safetensors`` and
``DIR/<name>.json`` (model card: architecture, command, seeds, tables and their provenance, sample sizes,
validation MAPE per hypothesis, epochs/s, GPU utilisation), loadable with ``inference.model_cards.card_backend``.
A ``--val-table`` that is also a ``--table`` is refused (see `coffea_mlreco.training.model_dir`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coffea_mlreco.core.metrics import roc_auc
from coffea_mlreco.inference.device import resolve_device
from coffea_mlreco.mem.datasets import dataset_kind
from coffea_mlreco.mem.deepmem import DeepMEM, DeepMEMConfig, input_names, output_name
from coffea_mlreco.mem.table_schema import MEMTable, concat_mem_tables, read_mem_table
from coffea_mlreco.training.model_dir import (
    TrainingSetupError,
    add_output_argument,
    check_validation_files,
    model_card,
    prepare_output,
    setup_error,
    write_model,
)
from coffea_mlreco.training.trainer import Trainer

__all__ = [
    "DEFAULT_NAME",
    "LOSSES",
    "MODEL",
    "DeepMEMTraining",
    "add_arguments",
    "deepmem_predict",
    "held_out_metrics",
    "mape",
    "mape_per_hypothesis",
    "run",
    "save_deepmem",
    "train_deepmem",
]

MODEL = "coffea_mlreco.mem.deepmem:DeepMEM"
LOSSES = ("huber", "mae", "mse")
_LN10 = math.log(10.0)
_ERROR_FLOOR = 0.005
DEFAULT_NAME = "deepmem"
"""``--name``: the trained model's file stem (the shipped model's)."""


# ---- figure of merit -------------------------------------------------------------------------------------
def mape_per_hypothesis(pred_log10: Any, true_log10: Any) -> np.ndarray:
    """MAPE of the weight, ⟨|P̂/P − 1|⟩ = ⟨|10^(log10 P̂ − log10 P) − 1|⟩, per column of [N, H] (or [N]) inputs.

    Returns fractions [H] (0.01 = 1 %), computed in float64.
    """
    pred = torch.as_tensor(pred_log10).double()
    true = torch.as_tensor(true_log10).double().to(pred.device)
    if pred.shape != true.shape or pred.dim() not in (1, 2) or pred.shape[0] == 0:
        raise ValueError(
            f"mape needs two non-empty [N] or [N, H] arrays of equal shape, got {tuple(pred.shape)} "
            f"and {tuple(true.shape)}"
        )
    rel = torch.expm1((pred - true) * _LN10).abs()
    return rel.reshape(len(rel), -1).mean(0).cpu().numpy()


def mape(pred_log10: Any, true_log10: Any) -> float:
    """MAPE of the weight P (a fraction) from predicted and true log10 P, averaged over events and hypotheses."""
    return float(mape_per_hypothesis(pred_log10, true_log10).mean())


def check_met_resolution(config: DeepMEMConfig, table: MEMTable) -> None:
    """A ValueError unless ``table``'s weights were integrated with the MET resolution the MET term of a model with
    ``config`` assumes: each event's (a table with ``met_sumEt``) for a model with ``met_sum_et_resolution``, the
    default ΣE_T's for the others. The two are different functions of the same kinematics."""
    if table.per_event_met_resolution != config.per_event_met_sigma:
        if config.per_event_met_sigma:
            raise ValueError(
                "a model with a per-event MET width (met_sum_et_resolution, --met-sigma-from-sum-et) needs tables "
                "integrated with each event's MET resolution (coffea-mlreco mem-weights --use-sum-et); this one "
                f"({table.provenance.get('file')}) was integrated at the default ΣE_T"
            )
        raise ValueError(
            f"the table {table.provenance.get('file')} was integrated with each event's MET resolution "
            "(mem-weights --use-sum-et): train with --met-sigma-from-sum-et, whose MET term and ΣE_T input match it"
        )


def table_features(config: DeepMEMConfig, table: MEMTable) -> np.ndarray:
    """The raw inputs of a model with ``config`` from ``table`` (:meth:`MEMTable.features`), once
    :func:`check_met_resolution` has found the table's MET resolution to be the model's."""
    check_met_resolution(config, table)
    return table.features(config.flavour_input, config.per_event_met_sigma)


def held_out_metrics(
    model: DeepMEM, tables: Sequence[tuple[str, MEMTable]], signal: str | None = None, background: str | None = None
) -> dict[str, Any]:
    """The network against the integration on held-out tables ``[(file name, table), ...]``.

    Returns ``{"mape": {hypothesis: fraction}, "events": N, "tables": [...]}`` and, given the ``signal`` and
    ``background`` hypotheses and tables of both kinds, ``auc_integrated``/``auc_network`` (of d = P_S/(P_S + P_B),
    i.e. of log10 P_S/P_B) and ``signal_events``/``background_events``. A table is signal or background by its
    file name, with the rules of :func:`coffea_mlreco.mem.datasets.dataset_kind` (e.g. ``zp_7221.npz``,
    ``dy_7121.npz``); others count in the MAPE only.
    """
    if not tables:
        raise ValueError("no held-out tables")
    hyps = model.hypotheses
    parts = [(name, t.in_order(hyps)) for name, t in tables]
    preds = [deepmem_predict(model, table_features(model.config, t)) for _, t in parts]
    true = np.concatenate([t.log10_weight for _, t in parts])
    per = mape_per_hypothesis(np.concatenate(preds), true)
    out: dict[str, Any] = {
        "mape": {h: float(m) for h, m in zip(hyps, per, strict=True)},
        "events": len(true),
        "tables": [Path(name).name for name, _ in parts],
    }
    if signal is None or background is None:
        return out
    s, b = hyps.index(signal), hyps.index(background)
    llr: dict[str, dict[str, list[np.ndarray]]] = {
        "integrated": {"signal": [], "background": []},
        "network": {"signal": [], "background": []},
    }
    for (name, t), pred in zip(parts, preds, strict=True):
        kind = dataset_kind(Path(name).stem)
        if kind is not None:
            llr["integrated"][kind].append(t.log10_weight[:, s] - t.log10_weight[:, b])
            llr["network"][kind].append(pred[:, s] - pred[:, b])
    if all(llr["integrated"][k] for k in ("signal", "background")):
        for method, scores in llr.items():
            out[f"auc_{method}"] = roc_auc(np.concatenate(scores["signal"]), np.concatenate(scores["background"]))
        out["signal_events"] = int(sum(len(x) for x in llr["integrated"]["signal"]))
        out["background_events"] = int(sum(len(x) for x in llr["integrated"]["background"]))
    return out


# ---- training --------------------------------------------------------------------------------------------
@dataclass
class DeepMEMTraining:
    """What :func:`train_deepmem` returns: the best-epoch model (on the CPU) and how the run went."""

    model: DeepMEM
    history: list[dict[str, Any]]
    val_mape: dict[str, float]  # per hypothesis, best epoch
    best_epoch: int
    epochs_run: int
    epochs_per_second: float  # whole epochs, training pass + validation
    train_epochs_per_second: float  # training pass only
    gpu_utilisation: float | None  # fraction, mean over epochs; None when not measurable (CPU, no NVML)
    device: str
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def val_mape_mean(self) -> float:
        return float(np.mean(list(self.val_mape.values())))


def deepmem_predict(model: DeepMEM, features: np.ndarray | torch.Tensor, batch: int = 1 << 16) -> np.ndarray:
    """log10 P [N, H] (note the sign: the model's output negated) for features [N, 14], on the model's device."""
    device = next(model.parameters()).device
    x = torch.as_tensor(features, dtype=torch.float32)
    model.eval()
    with torch.inference_mode():
        out = [model.neg_log10_weight(x[s : s + batch].to(device)) for s in range(0, len(x), batch)]
    return -torch.cat(out).double().cpu().numpy() if out else np.zeros((0, len(model.hypotheses)))


def _element_loss(delta: torch.Tensor, loss: str, huber_delta: float) -> torch.Tensor:
    if loss == "huber":
        return torch.nn.functional.huber_loss(delta, torch.zeros_like(delta), reduction="none", delta=huber_delta)
    if loss == "mae":
        return delta.abs()
    return delta * delta


def train_deepmem(
    train: MEMTable,
    val: MEMTable,
    config: DeepMEMConfig | Mapping[str, Any] | None = None,
    *,
    epochs: int = 200,
    lr: float = 2e-3,
    batch_size: int = 1024,
    weight_decay: float = 1e-5,
    seed: int = 1,
    device: str = "auto",
    loss: str = "huber",
    huber_delta: float = 0.01,
    weight_by_error: bool = False,
    patience: int = 30,
    amp: bool = False,
    progress: bool = True,
    init: DeepMEM | None = None,
) -> DeepMEMTraining:
    """Train a :class:`DeepMEM` on ``train`` and keep the epoch with the lowest mean validation MAPE.

    Args:
        train, val: MEM weight tables with the same hypotheses (``val`` is reordered to ``train``'s columns).
        config: architecture (:class:`DeepMEMConfig` or its keyword arguments, without ``hypotheses`` — they
            come from the table); None is the default architecture.
        epochs: maximum number of epochs; ``patience``: stop after this many epochs without a better val MAPE.
        lr: peak learning rate of the one-cycle schedule; ``batch_size``: events per step.
        seed: model initialisation and shuffling; ``device``: ``auto``/``cpu``/``cuda[:n]``.
        loss: one of :data:`LOSSES` on δ = ln 10 · Δlog10 P (see the module docstring).
        amp: bf16 autocast on CUDA (the output de-standardisation stays float32).
        init: a trained model to continue from (fine-tuning, e.g. on tables of other pileups): its architecture,
            input/output standardisation and weights are kept (``config`` is then ignored); a copy is trained.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
    if epochs < 1 or batch_size < 1 or patience < 1 or lr <= 0 or huber_delta <= 0:
        raise ValueError("epochs, batch_size, patience, lr and huber_delta must be positive")
    if len(train) < 2 or len(val) < 1:
        raise ValueError(f"need ≥ 2 training and ≥ 1 validation events, got {len(train)} and {len(val)}")
    val = val.in_order(train.hypotheses)
    cfg = dict(config.to_dict() if isinstance(config, DeepMEMConfig) else (config or {}))
    if "hypotheses" in cfg and tuple(cfg["hypotheses"]) != train.hypotheses:
        raise ValueError(f"config hypotheses {cfg['hypotheses']} differ from the table's {list(train.hypotheses)}")
    cfg["hypotheses"] = list(train.hypotheses)
    dev = resolve_device(device)
    use_amp = bool(amp and dev.type == "cuda")

    trainer = Trainer(
        seed=seed,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        warmup=0.05,
        clip_grad_norm=None,
        patience=patience,
        progress=progress,
        name="deepmem",
    )
    if init is not None:
        if tuple(init.hypotheses) != train.hypotheses:
            raise ValueError(
                f"--init model hypotheses {list(init.hypotheses)} differ from the table's {list(train.hypotheses)}"
            )
        model = copy.deepcopy(init).to(dev).train()
    else:
        model = DeepMEM(**cfg).to(dev)
    x = torch.from_numpy(table_features(model.config, train)).to(dev)
    y = torch.from_numpy(-train.log10_weight).float().to(dev)
    xv = torch.from_numpy(table_features(model.config, val)).to(dev)
    if init is None:
        model.set_standardisation(x, y)
    with torch.no_grad():
        x = model.transform(x)  # parameter-free: done once, not every step
    w = None
    if weight_by_error:
        rel = torch.from_numpy(train.log10_weight_err * _LN10).float().to(dev)
        w = 1.0 / (rel * rel + _ERROR_FLOOR**2)
        w = w / w.mean()
    batch = min(batch_size, len(x))

    def batches(epoch: int) -> list[torch.Tensor]:  # full mini-batches of a random order, drawn on the device
        order = torch.randperm(len(x), device=dev)
        return [order[s : s + batch] for s in range(0, len(x) - batch + 1, batch)]

    def batch_loss(trained: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:  # ``trained`` is ``model``
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            pred = model.network(x[idx])  # the network on inputs transformed once, above
        per = _element_loss((pred.float() - y[idx]) * _LN10, loss, huber_delta)
        return (per * w[idx]).mean() if w is not None else per.mean()

    def validate(model: torch.nn.Module) -> dict[str, Any]:
        per = mape_per_hypothesis(deepmem_predict(model, xv), val.log10_weight)  # type: ignore[arg-type]
        return {
            "val_mape": {h: float(m) for h, m in zip(train.hypotheses, per, strict=True)},
            "val_mape_mean": float(per.mean()),
        }

    fit = trainer.fit(model, batches, batch_loss, validate, monitor="val_mape_mean", mode="min")
    done = len(fit.history)
    utilisation = [h["gpu_utilisation"] for h in fit.history if "gpu_utilisation" in h]
    return DeepMEMTraining(
        model=model.cpu().eval(),
        history=fit.history,
        val_mape=fit.best_metrics["val_mape"],
        best_epoch=fit.best_epoch,
        epochs_run=done,
        epochs_per_second=done / sum(h["seconds"] for h in fit.history),
        train_epochs_per_second=done / sum(h["train_seconds"] for h in fit.history),
        gpu_utilisation=float(np.mean(utilisation)) if utilisation else None,
        device=str(dev),
        seconds=fit.seconds,
        settings={
            "epochs": epochs,
            "learning_rate": lr,
            "batch_size": batch,
            "weight_decay": weight_decay,
            "seed": seed,
            "loss": loss,
            "huber_delta": huber_delta,
            "weight_by_error": weight_by_error,
            "patience": patience,
            "amp": use_amp,
            "schedule": "one-cycle (cosine)",
            "optimiser": "AdamW",
            "initialised_from": "a trained model (--init)" if init is not None else "random",
        },
    )


def save_deepmem(result: DeepMEMTraining, output: str | Path, name: str, data: Mapping[str, Any], **extra: Any) -> Path:
    """Write ``<output>/<name>.safetensors`` and the model card ``<output>/<name>.json``; returns the card path.

    ``data``: the tables trained and validated on (``training_tables``, ``validation_tables``, ``training_events``,
    ``validation_events``); ``extra`` adds fields to the card (e.g. ``test_metrics``). Both files appear together,
    complete, or not at all (:func:`~coffea_mlreco.training.model_dir.write_model`).
    """
    model = result.model
    card = model_card(
        MODEL,
        model.config.to_dict(),
        name,
        sum(p.numel() for p in model.parameters()),
        data=data,
        settings=result.settings,
        history=result.history,
        metrics={
            "mape": {h: round(m, 6) for h, m in result.val_mape.items()},
            "mape_mean": round(result.val_mape_mean, 6),
        },
        seconds=result.seconds,
        inputs=list(input_names(model.config.flavour_input, model.config.per_event_met_sigma)),
        outputs=[output_name(h) for h in model.hypotheses],
        target="-log10 P (MEM weight) per hypothesis",
        device=result.device,
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        epochs_per_second=round(result.epochs_per_second, 3),
        train_epochs_per_second=round(result.train_epochs_per_second, 3),
        gpu_utilisation=round(result.gpu_utilisation, 3) if result.gpu_utilisation is not None else "n/a",
        **extra,
    )
    return write_model(output, name, model.state_dict(), card)


# ---- command line ----------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", nargs="+", required=True, help="training MEM weight table(s) (.npz)")
    parser.add_argument(
        "--val-table",
        nargs="+",
        default=None,
        help="held-out table(s), from a generator seed not used in training (default: split "
        "--val-fraction off the training tables)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.1)
    add_output_argument(parser, "mem", "<name>")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model name (file stem; default {DEFAULT_NAME})")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle)")
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--patience", type=int, default=30, help="early stop after this many epochs w/o improvement")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="continue from a trained model (a shipped name such as deepmem, or a model directory): its "
        "architecture, standardisation and weights; the architecture options are then ignored",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--loss", choices=LOSSES, default="huber")
    parser.add_argument("--huber-delta", type=float, default=0.01, help="in units of relative weight error")
    parser.add_argument("--weight-by-error", action="store_true", help="weight entries by 1/σ_rel² (floored)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--activation", choices=("relu", "gelu", "silu"), default="silu")
    parser.add_argument("--no-layer-norm", action="store_true")
    parser.add_argument("--no-phi-relative", action="store_true", help="feed raw φ (no rotation to lepton 1)")
    parser.add_argument("--no-log-pt", action="store_true")
    parser.add_argument("--no-dilepton-features", action="store_true")
    parser.add_argument("--mirror", action="store_true", help="reflect events so lepton 2 has Δφ ∈ [0, π]")
    parser.add_argument("--eta-flip", action="store_true", help="reflect events so the lepton pair has p_z ≥ 0")
    parser.add_argument("--met-components", action="store_true", help="append MET x, y in the lepton-1 frame")
    parser.add_argument(
        "--met-sigma",
        type=float,
        default=None,
        help="GeV: take the Gaussian MET term of this width out of the regression (needs "
        "--met-components; 6.55 for tables integrated at the default sum ET)",
    )
    parser.add_argument(
        "--met-sigma-from-sum-et",
        action="store_true",
        help="take out a MET term whose width is each event's recoil resolution sqrt(sigma0^2 + k^2 sumEt) (the "
        "simulated detector's, the MEM transfer functions'): for tables integrated with mem-weights --use-sum-et "
        "(needs --met-components; the model reads MET_sumEt; instead of --met-sigma)",
    )
    parser.add_argument(
        "--lepton-resolution-term",
        action="store_true",
        help="with --met-sigma or --met-sigma-from-sum-et: include the lepton pT resolutions of the MEM transfer "
        "functions (the simulated detector's) in that MET term (needs --flavour-input)",
    )
    parser.add_argument(
        "--flavour-input",
        action="store_true",
        help="a 15th input, 1 for e+e- and 0 for mu+mu- pairs (the lepton resolutions differ)",
    )
    parser.add_argument(
        "--test-table",
        nargs="+",
        default=None,
        help="held-out table(s) (generator seeds used neither in training nor validation): the card "
        "records the network's MAPE on them (test_metrics)",
    )
    parser.add_argument(
        "--signal",
        default=None,
        help="signal hypothesis of the discriminant d = P_S/(P_S + P_B) "
        "whose held-out AUC is recorded (signal/background tables recognised by file name)",
    )
    parser.add_argument("--background", default=None, help="background hypothesis of the discriminant")
    parser.add_argument("--quiet", action="store_true")


def _met_sum_et_resolution(enabled: bool) -> dict[str, Any]:
    """``met_sum_et_resolution`` of :class:`DeepMEMConfig` from the MEM's default transfer functions (the simulated
    detector's σ₀ and k: :class:`~coffea_mlreco.mem.transfer_functions.MetResolution`), or nothing."""
    if not enabled:
        return {}
    from coffea_mlreco.mem.transfer_functions import TransferFunctions

    met = TransferFunctions.from_detector().met
    return {"met_sum_et_resolution": (met.sigma0, met.k)}


def _lepton_resolutions(enabled: bool) -> dict[str, Any]:
    """``muon_resolution``/``electron_resolution`` of :class:`DeepMEMConfig` from the MEM's default transfer
    functions (the simulated detector), or nothing."""
    if not enabled:
        return {}
    from coffea_mlreco.mem.transfer_functions import TransferFunctions

    tf = TransferFunctions.from_detector()
    return {
        "muon_resolution": (tf.muon.a, tf.muon.b, tf.muon.endcap_factor, tf.muon.endcap_eta),
        "electron_resolution": (tf.electron.stochastic, tf.electron.constant, tf.electron.noise),
    }


def _generator_seeds(tables: Sequence[MEMTable]) -> set[Any]:
    """The generator seeds of tables: each table's is a seed or, for a table of several files, a (nested) list."""
    seeds: set[Any] = set()

    def add(value: Any) -> None:
        if isinstance(value, list):
            for v in value:
                add(v)
        else:
            seeds.add(value)

    for t in tables:
        add(t.provenance["generator_seed"])
    return seeds


def _describe(path: str, table: MEMTable) -> dict[str, Any]:
    return {"file": Path(path).name, "events": len(table), "provenance": table.provenance}


def run(args: argparse.Namespace) -> int:
    val_tables: list[MEMTable] = []
    test_tables: list[MEMTable] = []
    try:
        check_validation_files(args.table, args.val_table or [], "--val-table")
        output = prepare_output(args.output, "mem", args.name)
    except TrainingSetupError as err:
        return setup_error("mem", err)
    try:
        tables = [read_mem_table(p) for p in args.table]
        test_tables = [read_mem_table(p) for p in args.test_table or []]
        for role in (args.signal, args.background):
            if role is not None and role not in tables[0].hypotheses:
                raise ValueError(f"--signal/--background {role!r} is not among the hypotheses {tables[0].hypotheses}")
        train = concat_mem_tables(tables)
        if args.val_table:
            val_tables = [read_mem_table(p) for p in args.val_table]
            val = concat_mem_tables(val_tables).in_order(train.hypotheses)
            seeds = _generator_seeds(tables) - {None}
            shared = seeds & _generator_seeds(val_tables)
            if shared:
                print(
                    f"coffea-mlreco train mem: warning: validation shares generator seed(s) {sorted(shared)} "
                    "with training",
                    file=sys.stderr,
                )
        else:
            if not 0 < args.val_fraction < 1:
                raise ValueError("--val-fraction must be in (0, 1)")
            order = np.random.default_rng(args.seed).permutation(len(train))
            cut = max(1, round(args.val_fraction * len(train)))
            val, train = train.select(np.sort(order[:cut])), train.select(np.sort(order[cut:]))
        config = DeepMEMConfig(
            hypotheses=train.hypotheses,
            hidden=args.hidden,
            blocks=args.blocks,
            activation=args.activation,
            layer_norm=not args.no_layer_norm,
            phi_relative=not args.no_phi_relative,
            log_pt=not args.no_log_pt,
            dilepton_features=not args.no_dilepton_features,
            flavour_input=args.flavour_input,
            mirror=args.mirror,
            eta_flip=args.eta_flip,
            met_components=args.met_components,
            met_sigma=args.met_sigma,
            **_met_sum_et_resolution(args.met_sigma_from_sum_et),
            **_lepton_resolutions(args.lepton_resolution_term),
        )
        init = None
        if args.init is not None:
            from coffea_mlreco.mem.wrappers import MEM_MODELS

            init = MEM_MODELS.load(args.init, device="cpu").backend.load(torch.device("cpu"))
        for table in (train, val, *test_tables):  # every table's MET resolution is the model's, before training
            check_met_resolution(init.config if init is not None else config, table)
    except (OSError, ValueError, KeyError) as err:
        print(f"coffea-mlreco train mem: error: {err}", file=sys.stderr)
        return 2
    result = train_deepmem(
        train,
        val,
        config,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        seed=args.seed,
        device=args.device,
        loss=args.loss,
        huber_delta=args.huber_delta,
        weight_by_error=args.weight_by_error,
        patience=args.patience,
        amp=args.amp,
        progress=not args.quiet,
        init=init,
    )
    extra: dict[str, Any] = {}
    if args.init is not None:
        extra["initialised_from"] = str(args.init)
    if test_tables:
        extra["test_tables"] = [_describe(p, t) for p, t in zip(args.test_table, test_tables, strict=True)]
        extra["test_metrics"] = held_out_metrics(
            result.model, list(zip(args.test_table, test_tables, strict=True)), args.signal, args.background
        )
    card = save_deepmem(
        result,
        output,
        args.name,
        {
            "training_tables": [_describe(p, t) for p, t in zip(args.table, tables, strict=True)],
            "validation_tables": (
                [_describe(p, t) for p, t in zip(args.val_table, val_tables, strict=True)]
                if val_tables
                else f"random {args.val_fraction:.0%} of the training tables (seed {args.seed})"
            ),
            "training_events": len(train),
            "validation_events": len(val),
        },
        **extra,
    )
    summary = {
        "val_mape": result.val_mape,
        "best_epoch": result.best_epoch,
        "epochs_per_second": round(result.epochs_per_second, 3),
        "gpu_utilisation": result.gpu_utilisation if result.gpu_utilisation is not None else "n/a",
        "test_metrics": extra.get("test_metrics", "none"),
        "card": str(card),
    }
    print(json.dumps(summary, indent=1))
    return 0
