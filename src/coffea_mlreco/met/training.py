"""`coffea-mlreco train met`: train the DeepMET-style or the Perceiver MET model on generated files.

Data: NanoAOD-like files with PF candidates and GenMET (e.g. ``coffea-mlreco generate --process
ttbar-dilep --pileup 200``). The candidate features (`coffea_mlreco.met.features`, including our PUPPI
weights, and with ``--neighbourhood`` what surrounds each candidate, `coffea_mlreco.met.neighbourhood`) are computed
once per file and cached next to the output as memory-mapped ``.npy`` arrays, so a PU 200 sample never has to fit
in memory. Mini-batches are the inference runtime's length-sorted,
token-budget batches (shuffled batch order), each event rotated by a random φ (candidates, PUPPI MET and
the target together). Loss: Huber on the MET components (GeV/20) — for the Perceiver's ``seed`` target
on v* = (p_miss,GEN − p_miss,PUPPI)/max(|p_miss,PUPPI|, 10 GeV) instead — plus the response term
Σ_bins (⟨u∥ response⟩ − 1)² over gen-MET bins, as DeepMET balances its response (without it the
Perceiver's MET came out 7 GeV low on average at PU 60). The loop is `coffea_mlreco.training.trainer` (AdamW,
one-cycle learning rate following the ``--max-seconds`` budget when given, gradients clipped to norm 1).

Writes the model directory ``--output DIR`` (default ``./coffea-mlreco-models/met-<model>``):
``DIR/<model>.safetensors`` and ``DIR/<model>.json`` (the model card: command, data files and their
generator metadata, sample sizes, hyper-parameters, validation metrics against PUPPI and PF MET), which
``coffea_mlreco.met.reconstruct(events, models={"<model>": DIR})`` and ``evaluate --model met.<model>=DIR`` take.
The validation file must not be a training file (see `coffea_mlreco.training.model_dir`). The best epoch so far
is written after every epoch that improves on it, into the temporary model directory ``DIR.partial-XXXXXXXX``;
``DIR`` appears when training ends. Interrupted by Ctrl-C or SIGTERM, the run keeps that temporary directory (the
best epoch so far, a usable model directory) and names it; ``DIR`` is never left half written.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import awkward as ak
import numpy as np
import torch
import uproot
from safetensors.torch import load_file, save_file

from coffea_mlreco.core.constants import MET_BINS_GEV
from coffea_mlreco.core.metrics import met_residuals, resolution
from coffea_mlreco.core.outputs import atomic_directory, deferred_interrupts
from coffea_mlreco.inference.batching import NonFiniteValues, plan_batches
from coffea_mlreco.inference.device import resolve_device
from coffea_mlreco.met.embedding import PT_SCALE_GEV
from coffea_mlreco.met.features import candidate_features, event_features, feature_names
from coffea_mlreco.met.neighbourhood import neighbourhood_features
from coffea_mlreco.met.perceiver import SEED_REFERENCE_FLOOR_GEV
from coffea_mlreco.met.puppi import load_tune, puppi_weights
from coffea_mlreco.training.augment import random_angles, rotate_xy
from coffea_mlreco.training.model_dir import (
    TrainingSetupError,
    add_output_argument,
    check_validation_files,
    model_card,
    model_output,
    prepare_output,
    setup_error,
)
from coffea_mlreco.training.provenance import describe_data
from coffea_mlreco.training.trainer import EpochEnd, Trainer

__all__ = [
    "MODELS",
    "FeatureSet",
    "add_arguments",
    "batch_source",
    "evaluate",
    "load_features",
    "load_init",
    "predict",
    "run",
    "train",
]

MODELS = {
    "deepmet": "coffea_mlreco.met.deepmet:DeepMET",
    "perceiver": "coffea_mlreco.met.perceiver:PerceiverMET",
}
_PF_BRANCHES = ("pt", "eta", "phi", "charge", "pdgId", "fromPV", "pvAssocQuality", "dz")


@dataclass
class FeatureSet:
    """Per-candidate features [T, 9] (16 with the neighbourhood), per-event counts [N], PUPPI MET [N, 2], GenMET
    (px, py) [N, 2]."""

    features: np.ndarray
    counts: np.ndarray
    puppi: np.ndarray
    target: np.ndarray


def _file_digest(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def load_features(
    path: str | Path, cache_dir: str | Path, tune: str = "run3", step: int = 1000, neighbourhood: bool = False
) -> FeatureSet:
    """Features of one file, computed once (in chunks of ``step`` events) and then memory-mapped; with
    ``neighbourhood`` the candidates' `coffea_mlreco.met.features.feature_names` include the neighbourhood."""
    path = Path(path)
    suffix = "-neighbourhood" if neighbourhood else ""
    cache = Path(cache_dir) / f"{path.stem}-{_file_digest(path)}-{tune}{suffix}"
    if not (cache / "counts.npy").exists():
        feats, counts, puppi, target = [], [], [], []
        with uproot.open(path) as f:
            tree = f["Events"]
            missing = [b for b in ("PFCands_pt", "GenMET_pt", "PV_npvsGood") if b not in tree]
            if missing:
                raise KeyError(f"{path}: branches {missing} are missing (needed for MET training)")
            names = [f"PFCands_{b}" for b in _PF_BRANCHES if f"PFCands_{b}" in tree]
            for arrays in tree.iterate([*names, "GenMET_pt", "GenMET_phi", "PV_npvsGood"], step_size=step):
                cands = ak.zip({n.removeprefix("PFCands_"): arrays[n] for n in names})
                weights = puppi_weights(cands, tune, npv=arrays["PV_npvsGood"])
                around = None
                if neighbourhood:
                    around = neighbourhood_features(cands, arrays["PV_npvsGood"], load_tune(tune).delta_z_cut)
                rec = candidate_features(cands, weights, around)
                feats.append(
                    np.stack(
                        [ak.to_numpy(ak.flatten(rec[k])).astype(np.float32) for k in feature_names(neighbourhood)],
                        axis=1,
                    )
                )
                counts.append(ak.to_numpy(ak.num(cands)).astype(np.int64))
                ev = event_features(cands, weights)
                puppi.append(np.stack([ak.to_numpy(ev.puppi_px), ak.to_numpy(ev.puppi_py)], axis=1))
                gen_pt, gen_phi = ak.to_numpy(arrays["GenMET_pt"]), ak.to_numpy(arrays["GenMET_phi"])
                target.append(np.stack([gen_pt * np.cos(gen_phi), gen_pt * np.sin(gen_phi)], axis=1))
        with atomic_directory(cache, existing="replace") as partial:  # no half-written cache after an interruption
            for name, parts in (("features", feats), ("counts", counts), ("puppi", puppi), ("target", target)):
                np.save(
                    partial / f"{name}.npy", np.concatenate(parts).astype(np.int64 if name == "counts" else np.float32)
                )
    return FeatureSet(*(np.load(cache / f"{n}.npy", mmap_mode="r") for n in ("features", "counts", "puppi", "target")))


def _response_penalty(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    gen_pt = target.norm(dim=-1)
    response = (pred * target).sum(-1) / gen_pt.clamp(min=1e-3) ** 2  # (p̂_miss · n̂_gen) / |p_miss,gen|
    terms = []
    for lo, hi in itertools.pairwise(MET_BINS_GEV):
        sel = (gen_pt > max(lo, 20.0)) & (gen_pt <= hi)
        if sel.sum() > 2:
            terms.append((response[sel].mean() - 1.0) ** 2)
    return torch.stack(terms).mean() if terms else pred.new_zeros(())


def _batches(data: FeatureSet, tokens: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    batches = plan_batches(np.asarray(data.counts)[:, None], tokens, 512)
    if rng is not None:
        rng.shuffle(batches)
    return batches


class _HostBatches:
    """Mini-batches gathered on the host from the memory-mapped features and copied to ``device``. Only a batch's
    rows are read, so a training set larger than the memory trains (36k PU 200 events hold 19 GB of features)."""

    def __init__(self, data: FeatureSet, device: torch.device) -> None:
        self.data, self.device = data, device
        counts = np.asarray(data.counts, dtype=np.int64)
        self.counts, self.starts = counts, np.cumsum(counts) - counts

    def tensors(self, events: np.ndarray) -> tuple[torch.Tensor, ...]:
        events = np.asarray(events, dtype=np.int64)
        lengths = self.counts[events]
        slot = np.arange(max(int(lengths.max(initial=0)), 1))  # at least one slot, as pad_batch
        mask = slot[None, :] < lengths[:, None]
        rows = np.where(mask, self.starts[events][:, None] + slot[None, :], 0)
        x = np.where(mask[..., None], np.asarray(self.data.features[rows]), np.float32(0.0))
        if not np.isfinite(x).all():
            raise NonFiniteValues("non-finite candidate features in the training data")
        arrays = (x, mask, np.asarray(self.data.puppi[events]), np.asarray(self.data.target[events]))
        return tuple(torch.from_numpy(a).to(self.device, non_blocking=True) for a in arrays)


class _DeviceBatches:
    """The whole feature set resident on ``device`` (a GPU holds a PU 200 sample easily); a mini-batch is padded
    there by one gather, so the host does no per-step copying. Same tensors as `_HostBatches`."""

    def __init__(self, data: FeatureSet, device: torch.device) -> None:
        self.device = device
        # np.array copies: the memory-mapped cache is read-only
        self.features = torch.from_numpy(np.array(data.features, dtype=np.float32)).to(device)
        if not bool(torch.isfinite(self.features).all()):
            raise ValueError("non-finite candidate features in the training data")
        counts = torch.from_numpy(np.array(data.counts, dtype=np.int64))
        self.counts, self.starts = counts.to(device), (torch.cumsum(counts, 0) - counts).to(device)
        self.puppi = torch.from_numpy(np.array(data.puppi, dtype=np.float32)).to(device)
        self.target = torch.from_numpy(np.array(data.target, dtype=np.float32)).to(device)

    def tensors(self, events: np.ndarray) -> tuple[torch.Tensor, ...]:
        index = torch.from_numpy(np.asarray(events, dtype=np.int64)).to(self.device)
        lengths = self.counts[index]
        longest = int(lengths.max()) if len(index) else 0
        slot = torch.arange(max(longest, 1), device=self.device)  # at least one slot, as pad_batch
        mask = slot[None, :] < lengths[:, None]
        rows = torch.where(mask, self.starts[index][:, None] + slot[None, :], 0)
        x = torch.where(mask[..., None], self.features[rows], 0.0)
        return x, mask, self.puppi[index], self.target[index]


def batch_source(
    data: FeatureSet, device: torch.device, on_device: bool | None = None
) -> _HostBatches | _DeviceBatches:
    """Where mini-batches of ``data`` are padded: on the device when it is a GPU (default), else on the host."""
    if on_device is None:
        on_device = device.type == "cuda"
    return _DeviceBatches(data, device) if on_device else _HostBatches(data, device)


def load_all_features(
    files: list[str], cache_dir: str | Path, workers: int = 1, neighbourhood: bool = False
) -> list[FeatureSet]:
    """`load_features` of every file, ``workers`` files at a time in separate processes (PUPPI is per file)."""
    load = partial(load_features, cache_dir=cache_dir, neighbourhood=neighbourhood)
    if workers > 1 and len(files) > 1:
        unique = list(dict.fromkeys(str(Path(f).resolve()) for f in files))
        fill = partial(_fill_cache, cache_dir=cache_dir, neighbourhood=neighbourhood)
        with ProcessPoolExecutor(max_workers=min(workers, len(unique))) as pool:
            list(pool.map(fill, unique))  # fill the caches in parallel
    return [load(f) for f in files]  # then memory-map them here


def _fill_cache(path: str, cache_dir: str | Path, neighbourhood: bool) -> None:
    """`load_features` in a worker process, returning nothing: a returned `FeatureSet` would be pickled back whole
    (a memory map pickles as its data, 2 GB per 4000 PU 200 events)."""
    load_features(path, cache_dir=cache_dir, neighbourhood=neighbourhood)


def predict(
    model: torch.nn.Module, data: FeatureSet, tokens: int, source: _HostBatches | _DeviceBatches | None = None
) -> np.ndarray:
    """The model's MET (px, py) in GeV for every event of ``data`` (on the model's device)."""
    source = source or batch_source(data, next(model.parameters()).device)
    pred = np.zeros_like(np.asarray(data.target))
    model.eval()
    with torch.inference_mode():
        for events in _batches(data, tokens, None):
            x, mask, puppi, _ = source.tensors(events)
            pred[events] = model(cands=x, cands_mask=mask, event=puppi)["met_xy"].float().cpu().numpy()
    return pred


def _training_loss(
    model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, puppi: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Loss of one mini-batch, every event rotated by a random φ (candidates, PUPPI MET and target together):
    Huber on the MET (px, py)/20 GeV, or on v* for the Perceiver's ``seed`` target, plus the response term."""
    angle = random_angles(len(x), x.device)
    x = x.clone()
    x[..., :2] = rotate_xy(x[..., :2], angle)
    puppi, target = rotate_xy(puppi, angle), rotate_xy(target, angle)
    pred = model(cands=x, cands_mask=mask, event=puppi)["met_xy"]
    if getattr(model, "target", "direct") == "seed":  # v* = (p_gen − p_puppi)/max(|p_puppi|, 10 GeV)
        scale = puppi.norm(dim=-1, keepdim=True).clamp(min=SEED_REFERENCE_FLOOR_GEV)
        loss = torch.nn.functional.huber_loss((pred - puppi) / scale, (target - puppi) / scale, delta=1.0)
    else:
        loss = torch.nn.functional.huber_loss(pred / PT_SCALE_GEV, target / PT_SCALE_GEV, delta=1.0)
    return loss + _response_penalty(pred, target)  # keeps ⟨u∥ response⟩ at 1 in every gen-MET bin


def response_scale(pred: np.ndarray, target: np.ndarray) -> float:
    """Scale s with mean(u∥) = 0 for s·MET: Σ|p_gen| / Σ(p_reco · n̂_gen) over events with |p_gen| > 20 GeV.

    Derived on the validation sample and applied by the wrapper (the model card's ``response_scale``), as
    CMS calibrates the MET response; a Huber loss on its own regresses a resolution-limited MET low.
    """
    gen_pt = np.hypot(target[:, 0], target[:, 1])
    sel = gen_pt > 20.0
    projection = np.sum(pred[sel] * target[sel], axis=1) / gen_pt[sel]
    return float(np.sum(gen_pt[sel]) / np.sum(projection)) if sel.any() and np.sum(projection) > 0 else 1.0


def evaluate(
    model: torch.nn.Module,
    data: FeatureSet,
    tokens: int,
    scale: float = 1.0,
    source: _HostBatches | _DeviceBatches | None = None,
) -> dict[str, dict[str, float]]:
    """Resolution of u∥ and u⊥ (GeV) per gen-MET bin and overall, for the model (times ``scale``), PUPPI and PF."""
    pred = scale * predict(model, data, tokens, source)
    target = np.asarray(data.target)
    gen_pt, gen_phi = np.hypot(*target.T), np.arctan2(target[:, 1], target[:, 0])
    event = np.repeat(np.arange(len(data.counts)), data.counts)  # PF MET = −Σ (px, py); 0 without candidates
    pf = -np.stack(
        [
            np.bincount(event, weights=np.asarray(data.features[:, k], dtype=np.float64), minlength=len(data.counts))
            for k in (0, 1)
        ],
        axis=1,
    )
    out = {}
    for name, met in (("model", pred), ("puppi", np.asarray(data.puppi)), ("pf", pf)):
        r = met_residuals(np.hypot(*met.T), np.arctan2(met[:, 1], met[:, 0]), gen_pt, gen_phi)
        summary = {
            "bias_upar": float(np.mean(r.upar)),
            "resolution_upar": resolution(r.upar),
            "resolution_uperp": resolution(r.uperp),
        }
        for lo, hi in itertools.pairwise(MET_BINS_GEV):
            sel = (gen_pt >= lo) & (gen_pt < hi)
            summary[f"resolution_upar_{lo:g}_{hi:g}"] = resolution(r.upar[sel])
            summary[f"resolution_uperp_{lo:g}_{hi:g}"] = resolution(r.uperp[sel])
        out[name] = summary
    return out


def train(
    model_name: str,
    train_files: list[str],
    val_file: str,
    output: str,
    epochs: int,
    lr: float,
    tokens: int,
    seed: int,
    config: dict,
    cache_dir: str,
    progress: bool = True,
    device: str = "auto",
    workers: int = 1,
    max_seconds: float | None = None,
    on_device: bool | None = None,
    init: str | None = None,
) -> dict:
    """Train, keep the epoch with the best validation u∥ resolution, write weights and model card.

    The weights and card are (re)written after every epoch that improves on the best so far, so an
    interrupted run leaves a usable model. ``device`` is ``auto`` (CUDA when visible), ``cpu`` or ``cuda``.
    Learning rate: one cycle over all steps of ``epochs`` epochs; with ``max_seconds`` the cycle's progress
    is the larger of the step fraction and the elapsed fraction of ``max_seconds``, and training stops
    (after validating the epoch in progress) when the time is up, so a time budget still ends annealed.
    ``on_device``: keep the features on the device and pad there (default: on a GPU; `batch_source`).
    ``init``: fine-tune from these weights (``.safetensors`` of the same model and configuration; its model
    card, if next to it, goes into the new card). They are validated first as epoch 0, so the output is
    never worse on the validation sample than the weights it started from.
    """
    trainer = Trainer(seed=seed, epochs=epochs, lr=lr, max_seconds=max_seconds, progress=progress, name=model_name)
    dev = resolve_device(device)
    if dev.type == "cuda":  # TF32 matmuls for training (inference precision is the wrapper's own setting)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    module, _, cls = MODELS[model_name].partition(":")
    import importlib

    model = getattr(importlib.import_module(module), cls)(**config)
    if init is not None:
        load_init(model, init)
    model = model.to(dev)
    train_sets = load_all_features([*train_files, val_file], cache_dir, workers, bool(config.get("neighbourhood")))
    val = train_sets.pop()
    sources = [batch_source(d, dev, on_device) for d in train_sets]
    val_source = batch_source(val, dev, on_device)
    start = time.perf_counter()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    card: dict = {}

    def batches(epoch: int) -> list[tuple[_HostBatches | _DeviceBatches, np.ndarray]]:
        return [
            (source, events)
            for data, source in zip(train_sets, sources, strict=True)
            for events in _batches(data, tokens, trainer.rng)
        ]

    def loss(model: torch.nn.Module, batch: tuple[_HostBatches | _DeviceBatches, np.ndarray]) -> torch.Tensor:
        source, events = batch
        return _training_loss(model, *source.tensors(events))

    def validate(model: torch.nn.Module) -> dict[str, float]:
        metrics = evaluate(model, val, tokens, source=val_source)
        return {
            "val_resolution_upar": metrics["model"]["resolution_upar"],
            "val_resolution_upar_puppi": metrics["puppi"]["resolution_upar"],
            "val_resolution_upar_pf": metrics["pf"]["resolution_upar"],
        }

    def checkpoint(end: EpochEnd) -> None:
        """Write the best epoch so far (weights and card) and the card's history after every epoch."""
        nonlocal card
        if end.improved:
            scale = response_scale(predict(model, val, tokens, val_source), np.asarray(val.target))
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            with deferred_interrupts():  # a checkpoint's weights are written whole
                save_file(state, str(out.with_suffix(".safetensors")))
            card = model_card(
                MODELS[model_name],
                config,
                out.name,
                sum(p.numel() for p in model.parameters()),
                data=describe_data(train_files, val_file, sum(len(d.counts) for d in train_sets), len(val.counts)),
                settings={
                    "epochs": epochs,
                    "best_epoch": end.epoch,
                    "max_seconds": max_seconds,
                    "learning_rate": lr,
                    "tokens_per_batch": tokens,
                    "seed": seed,
                    "device": str(dev),
                },
                history=end.history,
                metrics=evaluate(model, val, tokens, scale, val_source),
                seconds=time.perf_counter() - start,
                metrics_key="validation_metrics_gev",
                response_scale=scale,
                **({"init": _init_provenance(Path(init))} if init is not None else {}),
            )
        card["history"], card["training_seconds"] = list(end.history), round(time.perf_counter() - start, 1)
        with deferred_interrupts():
            out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")

    trainer.fit(
        model,
        batches,
        loss,
        validate,
        monitor="val_resolution_upar",
        mode="min",
        validate_first=init is not None,  # epoch 0: the ``init`` weights as given
        on_epoch=checkpoint,
    )
    return card


def load_init(model: torch.nn.Module, weights: str | Path) -> None:
    """Load ``weights`` into ``model`` to fine-tune it. A neighbourhood model may start from a model without the
    neighbourhood (its branch, missing from the weights, stays at its zero start, so the start is that model);
    any other difference of the model or its configuration is an error."""
    state, own = load_file(str(weights)), model.state_dict()
    missing = [k for k in own if k not in state and not k.startswith("embed.neighbourhood.")]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        raise ValueError(
            f"--init {weights}: not weights of this model and configuration (missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}, of another shape {reshaped[:4]})"
        )
    model.load_state_dict(state, strict=False)


def _init_provenance(weights: Path) -> dict:
    """What a fine-tune started from: the weights' name and, when their model card lies next to them, that card
    (its command, data, history and metrics; nested, so a chain of fine-tunes keeps its whole history)."""
    card_path = weights.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    return {"weights": weights.name} | {k: v for k, v in card.items() if k not in ("model", "config", "weights")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--train", nargs="+", required=True, help="training ROOT files")
    parser.add_argument("--validation", required=True, help="held-out ROOT file (a different seed)")
    add_output_argument(parser, "met", "<model>")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--tokens", type=int, default=1 << 15, help="padded candidates per mini-batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", choices=("seed", "direct"), default="seed", help="Perceiver target mode")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--latents", type=int, default=64, help="Perceiver latents")
    parser.add_argument(
        "--neighbourhood",
        action="store_true",
        help="the model also reads the neutral, charged-PV and charged-pileup pT around each candidate "
        "(ΔR < 0.2, 0.4) and log N_PV; with --init from a model without them, their branch starts at zero",
    )
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: next to the output)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=1, help="processes computing the per-file feature caches")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="time budget: the one-cycle schedule follows elapsed time and training stops at it",
    )
    parser.add_argument(
        "--init",
        default=None,
        help="fine-tune from these weights (.safetensors of the same --model/--target/--dim/--latents); "
        "validated first as epoch 0",
    )
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    try:
        check_validation_files(args.train, [args.validation])
        output = prepare_output(args.output, "met", args.model)
    except TrainingSetupError as err:
        return setup_error("met", err)
    config: dict = {"dim": args.dim}
    if args.model == "perceiver":
        config.update(n_latents=args.latents, target=args.target)
    if args.neighbourhood:
        config["neighbourhood"] = True
    cache = args.cache_dir or str(output.parent / "feature-cache")
    try:
        with model_output(output, args.model, keep_on_interrupt=True) as work:  # DIR appears complete, at the end
            card = train(
                args.model,
                args.train,
                args.validation,
                str(work / args.model),
                args.epochs,
                args.lr,
                args.tokens,
                args.seed,
                config,
                cache,
                progress=not args.quiet,
                device=args.device,
                workers=args.workers,
                max_seconds=args.max_seconds,
                init=args.init,
            )
    except (KeyError, OSError, ValueError, RuntimeError) as err:
        print(f"coffea-mlreco train met: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(card["validation_metrics_gev"], indent=1))
    return 0
