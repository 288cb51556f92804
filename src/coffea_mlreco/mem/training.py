"""`coffea-mlreco train mem`: train the DeepMEM network on a table of integrated Matrix-Element-Method weights.

**MEM weight table** (what the MEM integration writes and this module reads; one ``.npz`` file, written with
:func:`write_mem_table`, read with :func:`read_mem_table`, no pickles). Keys, N events and H hypotheses:

==================================  ===========  =====================================================================
key                                 shape/dtype  meaning
==================================  ===========  =====================================================================
``lep{1,2}_pt/_eta/_phi``           [N] f64      the two leptons (GeV, rad; φ in [−π, π]); lepton 1 is the φ reference
``lep{1,2}_pdgId``                  [N] i64      signed PDG id (±11, ±13, ±15)
``jet{1,2}_pt/_eta/_phi``           [N] f64      the two leading jets; an absent jet is pT = η = φ = 0
``met_pt``, ``met_phi``             [N] f64      missing transverse momentum (GeV, rad)
``hypotheses``                      [H] str      hypothesis names (identifiers), the column order below
``log10_weight``                    [N, H] f64   log10 P(x|α) of the integration (finite)
``log10_weight_err``                [N, H] f64   its uncertainty in log10 units (= relative error of P / ln 10), ≥ 0
``provenance``                      0-d str      JSON object with at least ``file`` and ``generator_seed`` (may be
                                                 null) — e.g. also ``vegas_seed``, ``precision``, ``integrator``
``event`` (optional)                [N] i64      event number in the source file
==================================  ===========  =====================================================================

Any other key, a missing one, a shape mismatch or a non-finite value is a ValueError (failed integrations are
dropped before writing, never stored as NaN).

**Training.** The network (:class:`coffea_mlreco.mem.deepmem.DeepMEM`) regresses −log10 P per hypothesis, as
the DeepMEM seed did. The figure of merit is the MAPE of the weight P itself, ⟨|P̂/P − 1|⟩ (:func:`mape`), so the
loss is taken on δ = ln 10 · (log10 P̂ − log10 P), which equals the relative error of P to first order
(P̂/P − 1 = e^δ − 1 ≈ δ): ``huber`` (default; quadratic below ``huber_delta`` = 1 %, linear above — MAE, i.e.
MAPE, for the tails), ``mae`` or ``mse``. With ``--weight-by-error`` each entry is weighted by
1/(σ_rel² + (0.5 %)²), σ_rel = ln 10 · log10_weight_err, normalised to mean 1.

Data pipeline: both tables live on the device as tensors for the whole run; each epoch is a ``torch.randperm``
on the device sliced into full mini-batches (the remainder differs every epoch), with no DataLoader, collate
or host synchronisation inside the epoch. AdamW with a one-cycle (cosine) schedule; validation MAPE every
epoch, the best epoch's weights kept, early stop after ``patience`` epochs without improvement. The log and the
model card report epochs/s and the GPU utilisation (NVML via ``torch.cuda.utilization``, sampled at the end of
each epoch's training pass; "n/a" on the CPU or without NVML).

Writes the model directory ``--output DIR`` (default ``./coffea-mlreco-models/mem-<name>``, never inside the
installed package): ``DIR/<name>.safetensors`` and ``DIR/<name>.json`` (model card: architecture, command, seeds,
tables and their provenance, sample sizes, validation MAPE per hypothesis, epochs/s, GPU utilisation), loadable
with ``inference.model_cards.card_backend``. A ``--val-table`` that is also a ``--table`` is refused (see
`coffea_mlreco.training.model_dir`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from coffea_mlreco.core.outputs import atomic_file
from coffea_mlreco.core.version import __version__
from coffea_mlreco.inference.device import resolve_device
from coffea_mlreco.mem.deepmem import INPUT_NAMES, DeepMEM, DeepMEMConfig, input_names, output_name
from coffea_mlreco.training.model_dir import (
    TrainingSetupError,
    add_output_argument,
    check_validation_files,
    prepare_output,
    setup_error,
    write_model,
)

__all__ = [
    "KINEMATICS",
    "LOSSES",
    "MODEL",
    "DeepMEMTraining",
    "MEMTable",
    "add_arguments",
    "concat_mem_tables",
    "deepmem_predict",
    "held_out_metrics",
    "mape",
    "mape_per_hypothesis",
    "read_mem_table",
    "run",
    "save_deepmem",
    "train_deepmem",
    "write_mem_table",
]

MODEL = "coffea_mlreco.mem.deepmem:DeepMEM"
KINEMATICS: tuple[str, ...] = (
    "lep1_pt",
    "lep1_eta",
    "lep1_phi",
    "lep1_pdgId",
    "lep2_pt",
    "lep2_eta",
    "lep2_phi",
    "lep2_pdgId",
    "jet1_pt",
    "jet1_eta",
    "jet1_phi",
    "jet2_pt",
    "jet2_eta",
    "jet2_phi",
    "met_pt",
    "met_phi",
)
"""Per-event kinematic columns of a MEM weight table."""
_PDGID = ("lep1_pdgId", "lep2_pdgId")
_REQUIRED = (*KINEMATICS, "hypotheses", "log10_weight", "log10_weight_err", "provenance")
_OPTIONAL = ("event",)
_PROVENANCE_KEYS = ("file", "generator_seed")
LOSSES = ("huber", "mae", "mse")
_LN10 = math.log(10.0)
_ERROR_FLOOR = 0.005


# ---- the MEM weight table --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MEMTable:
    """An in-memory MEM weight table (see the module docstring for the fields and their units)."""

    kinematics: dict[str, np.ndarray]
    hypotheses: tuple[str, ...]
    log10_weight: np.ndarray
    log10_weight_err: np.ndarray
    provenance: dict[str, Any]
    event: np.ndarray | None = None

    def __post_init__(self) -> None:
        missing = [k for k in KINEMATICS if k not in self.kinematics]
        unknown = sorted(set(self.kinematics) - set(KINEMATICS))
        if missing or unknown:
            raise ValueError(f"MEM table kinematics: missing {missing}, unknown {unknown}")
        kin = {k: np.asarray(self.kinematics[k], dtype=np.int64 if k in _PDGID else np.float64) for k in KINEMATICS}
        n = len(kin["lep1_pt"])
        for k, v in kin.items():
            if v.shape != (n,):
                raise ValueError(f"MEM table column {k!r} has shape {v.shape}, expected ({n},)")
            if not np.isfinite(v).all():
                raise ValueError(f"MEM table column {k!r} has {int((~np.isfinite(v)).sum())} non-finite value(s)")
        if (kin["lep1_pt"] <= 0).any() or (kin["lep2_pt"] <= 0).any():
            raise ValueError("MEM table: lepton pT must be positive")
        for k in _PDGID:
            if not np.isin(np.abs(kin[k]), (11, 13, 15)).all():
                raise ValueError(f"MEM table column {k!r} holds ids other than ±11, ±13, ±15")
        for j in ("jet1", "jet2"):
            if (kin[f"{j}_pt"] < 0).any():
                raise ValueError(f"MEM table: {j}_pt must be ≥ 0 (0 for an absent jet)")
            absent = kin[f"{j}_pt"] == 0
            if (kin[f"{j}_eta"][absent] != 0).any() or (kin[f"{j}_phi"][absent] != 0).any():
                raise ValueError(f"MEM table: an absent {j} (pT = 0) must have η = φ = 0")
        if (kin["met_pt"] < 0).any():
            raise ValueError("MEM table: met_pt must be ≥ 0")
        hyps = DeepMEMConfig(hypotheses=tuple(str(h) for h in np.atleast_1d(self.hypotheses))).hypotheses
        logw = np.asarray(self.log10_weight, dtype=np.float64)
        err = np.asarray(self.log10_weight_err, dtype=np.float64)
        for name, a in (("log10_weight", logw), ("log10_weight_err", err)):
            if a.shape != (n, len(hyps)):
                raise ValueError(f"MEM table {name} has shape {a.shape}, expected (N, H) = ({n}, {len(hyps)})")
            if not np.isfinite(a).all():
                raise ValueError(
                    f"MEM table {name} has {int((~np.isfinite(a)).sum())} non-finite value(s); "
                    "drop failed integrations before writing"
                )
        if (err < 0).any():
            raise ValueError("MEM table log10_weight_err must be ≥ 0")
        if not isinstance(self.provenance, Mapping) or any(k not in self.provenance for k in _PROVENANCE_KEYS):
            raise ValueError(
                f"MEM table provenance must be a mapping with keys {list(_PROVENANCE_KEYS)} "
                f"(values may be null), got {self.provenance!r}"
            )
        try:
            provenance = json.loads(json.dumps(dict(self.provenance)))
        except TypeError as err_:
            raise ValueError(f"MEM table provenance is not JSON-serialisable: {err_}") from err_
        event = None
        if self.event is not None:
            event = np.asarray(self.event)
            if event.shape != (n,) or not np.issubdtype(event.dtype, np.integer):
                raise ValueError(
                    f"MEM table event must be an integer array of shape ({n},), got {event.dtype} {event.shape}"
                )
            event = event.astype(np.int64)
        for name, value in (
            ("kinematics", kin),
            ("hypotheses", hyps),
            ("log10_weight", logw),
            ("log10_weight_err", err),
            ("provenance", provenance),
            ("event", event),
        ):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.kinematics["lep1_pt"])

    def features(self, flavour: bool = False) -> np.ndarray:
        """The DeepMEM inputs [N, 14] (float32, :data:`~coffea_mlreco.mem.deepmem.INPUT_NAMES`); with
        ``flavour`` [N, 15], the last column 1.0 for e⁺e⁻ and 0.0 for μ⁺μ⁻ (from ``lep1_pdgId``)."""
        columns = [self.kinematics[k] for k in INPUT_NAMES]
        if flavour:
            columns.append(np.abs(self.kinematics["lep1_pdgId"]) == 11)
        return np.stack(columns, axis=1).astype(np.float32)

    def select(self, index: np.ndarray) -> MEMTable:
        """The events ``index`` (integer or boolean array) as a new table with the same provenance."""
        return MEMTable(
            {k: v[index] for k, v in self.kinematics.items()},
            self.hypotheses,
            self.log10_weight[index],
            self.log10_weight_err[index],
            self.provenance,
            None if self.event is None else self.event[index],
        )

    def in_order(self, hypotheses: Sequence[str]) -> MEMTable:
        """The same table with its weight columns in the order ``hypotheses`` (the same set of names)."""
        if sorted(hypotheses) != sorted(self.hypotheses):
            raise ValueError(f"table hypotheses {list(self.hypotheses)} differ from {list(hypotheses)}")
        cols = [self.hypotheses.index(h) for h in hypotheses]
        return MEMTable(
            self.kinematics,
            tuple(hypotheses),
            self.log10_weight[:, cols],
            self.log10_weight_err[:, cols],
            self.provenance,
            self.event,
        )


def write_mem_table(
    path: str | Path,
    kinematics: Mapping[str, Any],
    hypotheses: Sequence[str],
    log10_weight: np.ndarray,
    log10_weight_err: np.ndarray,
    provenance: Mapping[str, Any],
    event: np.ndarray | None = None,
) -> Path:
    """Validate and write a MEM weight table to ``path`` (must end in ``.npz``; compressed, no pickles).

    The table is written under a temporary name in ``path``'s folder and renamed when complete
    (`coffea_mlreco.core.outputs.atomic_file`): ``path`` holds a whole table or is left as it was.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"a MEM weight table is an .npz file, got {path}")
    table = MEMTable(dict(kinematics), tuple(hypotheses), log10_weight, log10_weight_err, dict(provenance), event)
    arrays: dict[str, np.ndarray] = dict(table.kinematics)
    arrays["hypotheses"] = np.asarray(table.hypotheses, dtype=str)
    arrays["log10_weight"] = table.log10_weight
    arrays["log10_weight_err"] = table.log10_weight_err
    arrays["provenance"] = np.asarray(json.dumps(table.provenance, sort_keys=True))
    if table.event is not None:
        arrays["event"] = table.event
    with atomic_file(path) as partial, partial.open("wb") as stream:
        np.savez_compressed(stream, **arrays)  # type: ignore[arg-type]  # numpy's stub confuses **kwds with allow_pickle
    return path


def read_mem_table(path: str | Path) -> MEMTable:
    """Read and validate a MEM weight table written by :func:`write_mem_table`."""
    with np.load(Path(path), allow_pickle=False) as f:
        keys = set(f.files)
        missing = [k for k in _REQUIRED if k not in keys]
        unknown = sorted(keys - set(_REQUIRED) - set(_OPTIONAL))
        if missing or unknown:
            raise ValueError(f"{path}: not a MEM weight table (missing keys {missing}, unknown keys {unknown})")
        data = {k: f[k] for k in f.files}
    try:
        provenance = json.loads(str(data["provenance"][()]))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: provenance is not JSON: {err}") from err
    return MEMTable(
        {k: data[k] for k in KINEMATICS},
        tuple(str(h) for h in np.atleast_1d(data["hypotheses"])),
        data["log10_weight"],
        data["log10_weight_err"],
        provenance,
        data.get("event"),
    )


def concat_mem_tables(tables: Sequence[MEMTable]) -> MEMTable:
    """One table from several with the same hypotheses (columns put in the first table's order).

    The provenance becomes ``{"file": [...], "generator_seed": [...], "parts": [each table's provenance]}``.
    """
    if not tables:
        raise ValueError("no MEM tables to concatenate")
    if len(tables) == 1:
        return tables[0]
    hyps = tables[0].hypotheses
    tables = [t.in_order(hyps) for t in tables]
    events = [t.event for t in tables]
    provenance = {
        "file": [t.provenance["file"] for t in tables],
        "generator_seed": [t.provenance["generator_seed"] for t in tables],
        "parts": [t.provenance for t in tables],
    }
    return MEMTable(
        {k: np.concatenate([t.kinematics[k] for t in tables]) for k in KINEMATICS},
        hyps,
        np.concatenate([t.log10_weight for t in tables]),
        np.concatenate([t.log10_weight_err for t in tables]),
        provenance,
        None if any(e is None for e in events) else np.concatenate(events),
    )  # type: ignore[arg-type]


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


def _rank_auc(signal: np.ndarray, background: np.ndarray) -> float:
    """ROC AUC of a score larger for ``signal`` (Mann–Whitney U from ranks, ties averaged)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([signal, background]))
    n_s, n_b = len(signal), len(background)
    return float((ranks[:n_s].sum() - n_s * (n_s + 1) / 2) / (n_s * n_b))


def held_out_metrics(
    model: DeepMEM, tables: Sequence[tuple[str, MEMTable]], signal: str | None = None, background: str | None = None
) -> dict[str, Any]:
    """The network against the integration on held-out tables ``[(file name, table), ...]``.

    Returns ``{"mape": {hypothesis: fraction}, "events": N, "tables": [...]}`` and, given the ``signal`` and
    ``background`` hypotheses and tables of both kinds, ``auc_integrated``/``auc_network`` (of d = P_S/(P_S + P_B),
    i.e. of log10 P_S/P_B) and ``signal_events``/``background_events``. A table is signal or background by its
    file name, with the rules of :func:`coffea_mlreco.mem.report.dataset_kind` (e.g. ``zp_7221.npz``,
    ``dy_7121.npz``); others count in the MAPE only.
    """
    from coffea_mlreco.mem.report import dataset_kind

    if not tables:
        raise ValueError("no held-out tables")
    hyps = model.hypotheses
    flavour = model.config.flavour_input
    parts = [(name, t.in_order(hyps)) for name, t in tables]
    preds = [deepmem_predict(model, t.features(flavour)) for _, t in parts]
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
            out[f"auc_{method}"] = _rank_auc(np.concatenate(scores["signal"]), np.concatenate(scores["background"]))
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


def _gpu_utilisation(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device)) / 100.0
    except Exception:
        return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    start = time.perf_counter()

    torch.manual_seed(seed)
    model = DeepMEM(**cfg).to(dev)
    flavour = model.config.flavour_input
    x = torch.from_numpy(train.features(flavour)).to(dev)
    y = torch.from_numpy(-train.log10_weight).float().to(dev)
    xv = torch.from_numpy(val.features(flavour)).to(dev)
    model.set_standardisation(x, y)
    with torch.no_grad():
        x = model.transform(x)  # parameter-free: done once, not every step
    w = None
    if weight_by_error:
        rel = torch.from_numpy(train.log10_weight_err * _LN10).float().to(dev)
        w = 1.0 / (rel * rel + _ERROR_FLOOR**2)
        w = w / w.mean()

    n = len(x)
    batch = min(batch_size, n)
    steps = n // batch
    generator = torch.Generator(device=dev)
    generator.manual_seed(seed)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=weight_decay, fused=dev.type == "cuda"
    )  # one kernel per step on a GPU
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=epochs * steps, pct_start=0.05)

    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor], np.ndarray] | None = None
    train_seconds = total_seconds = 0.0
    utilisation: list[float] = []
    bar = tqdm(range(epochs), desc="deepmem", disable=not progress)
    for epoch in bar:
        _sync(dev)
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, device=dev, generator=generator)
        running = torch.zeros((), device=dev)
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                pred = model.network(x[idx])
            per = _element_loss((pred.float() - y[idx]) * _LN10, loss, huber_delta)
            value = (per * w[idx]).mean() if w is not None else per.mean()
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
            schedule.step()
            running += value.detach()
        _sync(dev)
        t1 = time.perf_counter()
        util = _gpu_utilisation(dev)
        if util is not None:
            utilisation.append(util)
        per_hyp = mape_per_hypothesis(deepmem_predict(model, xv), val.log10_weight)
        _sync(dev)
        t2 = time.perf_counter()
        train_seconds += t1 - t0
        total_seconds += t2 - t0
        mean_mape = float(per_hyp.mean())
        history.append(
            {
                "epoch": epoch + 1,
                "loss": round(float(running) / steps, 7),
                "val_mape": {h: round(float(m), 6) for h, m in zip(train.hypotheses, per_hyp, strict=True)},
                "val_mape_mean": round(mean_mape, 6),
                "lr": schedule.get_last_lr()[0],
                "seconds": round(t2 - t0, 3),
            }
        )
        if best is None or mean_mape < best[0]:
            best = (mean_mape, epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()}, per_hyp)
        if progress:
            util_text = f"{util:.0%}" if util is not None else "n/a"
            bar.write(
                f"epoch {epoch + 1}/{epochs}: loss {history[-1]['loss']:.5f}, val MAPE {mean_mape:.4%} "
                f"(best {best[0]:.4%} @ {best[1]}), {1 / (t2 - t0):.2f} epochs/s, GPU {util_text}"
            )
        if epoch + 1 - best[1] >= patience:
            break
    assert best is not None
    model.load_state_dict(best[2])
    done = len(history)
    return DeepMEMTraining(
        model=model.cpu().eval(),
        history=history,
        val_mape={h: float(m) for h, m in zip(train.hypotheses, best[3], strict=True)},
        best_epoch=best[1],
        epochs_run=done,
        epochs_per_second=done / total_seconds,
        train_epochs_per_second=done / train_seconds,
        gpu_utilisation=float(np.mean(utilisation)) if utilisation else None,
        device=str(dev),
        seconds=time.perf_counter() - start,
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
        },
    )


def save_deepmem(result: DeepMEMTraining, output: str | Path, name: str, **card: Any) -> Path:
    """Write ``<output>/<name>.safetensors`` and the model card ``<output>/<name>.json``; returns the card path.

    ``card`` adds fields to the card (e.g. ``command``, ``training_tables``). Both files appear together, complete,
    or not at all (:func:`~coffea_mlreco.training.model_dir.write_model`).
    """
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"model name {name!r} must be a plain file stem")
    out = Path(output)
    model = result.model
    weights = out / f"{name}.safetensors"
    full = {
        "model": MODEL,
        "config": model.config.to_dict(),
        "weights": weights.name,
        "card_version": 1,  # the card format: inference.model_cards.CARD_VERSION
        "package_version": __version__,
        "inputs": list(input_names(model.config.flavour_input)),
        "outputs": [output_name(h) for h in model.hypotheses],
        "target": "-log10 P (MEM weight) per hypothesis",
        **card,
        **result.settings,
        "device": result.device,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "epochs_per_second": round(result.epochs_per_second, 3),
        "train_epochs_per_second": round(result.train_epochs_per_second, 3),
        "gpu_utilisation": round(result.gpu_utilisation, 3) if result.gpu_utilisation is not None else "n/a",
        "training_seconds": round(result.seconds, 1),
        "validation_metrics": {
            "mape": {h: round(m, 6) for h, m in result.val_mape.items()},
            "mape_mean": round(result.val_mape_mean, 6),
        },
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "history": result.history,
    }
    return write_model(out, name, model.state_dict(), full)


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
    parser.add_argument("--name", required=True, help="model name (file stem)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle)")
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--patience", type=int, default=30, help="early stop after this many epochs w/o improvement")
    parser.add_argument("--seed", type=int, default=1)
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
        "--lepton-resolution-term",
        action="store_true",
        help="with --met-sigma: include the lepton pT resolutions of the MEM transfer functions "
        "(the simulated detector's) in that MET term (needs --flavour-input)",
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
            **_lepton_resolutions(args.lepton_resolution_term),
        )
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
    )
    extra: dict[str, Any] = {}
    if test_tables:
        extra["test_tables"] = [_describe(p, t) for p, t in zip(args.test_table, test_tables, strict=True)]
        extra["test_metrics"] = held_out_metrics(
            result.model, list(zip(args.test_table, test_tables, strict=True)), args.signal, args.background
        )
    card = save_deepmem(
        result,
        output,
        args.name,
        command="coffea-mlreco " + " ".join(sys.argv[1:]),
        **extra,
        training_tables=[_describe(p, t) for p, t in zip(args.table, tables, strict=True)],
        validation_tables=(
            [_describe(p, t) for p, t in zip(args.val_table, val_tables, strict=True)]
            if val_tables
            else f"random {args.val_fraction:.0%} of the training tables (seed {args.seed})"
        ),
        training_events=len(train),
        validation_events=len(val),
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
