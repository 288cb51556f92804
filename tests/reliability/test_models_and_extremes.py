"""Wrong model directories and extreme events (issue #20, items 2 and 3).

Model directories: a copy of the shipped DeepMET model made wrong in one way — weights missing, truncated, one
tensor of another shape, a configuration the weights do not fit, an unknown card version, the card of another
architecture — is refused when the card is read, with one error naming the file, both by
``met.reconstruct(models=...)`` (before any event is touched) and by ``coffea-mlreco evaluate --model`` (exit 2,
one line, no report).

Extreme events: one event of a small sample gets its objects multiplied (copies of its own, rotated in φ; links
renumbered) — 100k PF candidates, 40 jets, 2000 tau decay products, 100k detector elements. The networks' wrapper
rejects an event with more than ``max_event_tokens`` objects (NaN outputs, `OversizedEventWarning`) so that no
mini-batch exceeds max(``max_tokens``, ``max_event_tokens``) padded objects; inputs with a ``max_objects``
truncation (SPANet's 10 jets, the di-tau transformer's 10 products per leg) and the fits' leading jets keep the
event small; PF MET and PUPPI (linear numba kernels) process it. In every case the other events' outputs equal
those of the run without the extreme event (integers exactly; floats to 1e-5 relative, the last bits of float32
products in mini-batches padded to another length).
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import torch
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from safetensors.torch import load_file, save_file

from coffea_mlreco import ditau, met, mlpf, ttbar
from coffea_mlreco.cli import main
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.ditau.inputs import Channel
from coffea_mlreco.ditau.transformer_inputs import MAX_PRODUCTS
from coffea_mlreco.inference import wrapper as inference_wrapper
from coffea_mlreco.inference.model_cards import ModelCardError, WeightsMismatchError, card_names, read_model_card
from coffea_mlreco.inference.wrapper import DEFAULT_TOKENS, MAX_EVENT_TOKENS, OversizedEventWarning
from coffea_mlreco.met.wrappers import MET_MODELS
from coffea_mlreco.simulation import generate_sample

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference:RuntimeWarning")

PACKAGE = Path(met.__file__).resolve().parents[1]
LINKS = {"clusterIdx": "PFCluster", "trackIdx": "PFTrack"}


# ---- fixtures -------------------------------------------------------------------------------------------------
def _events(path: Path, stop: int | None = None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager", entry_stop=stop
        ).events()


@pytest.fixture(scope="module")
def htautau_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 H→ττ events at pileup 0 with PF candidates, tau decay products and detector elements."""
    return generate_sample(
        "htautau", 20, 0, 21, tmp_path_factory.mktemp("extreme") / "htautau.root", progress=False, elements=True
    )


@pytest.fixture(scope="module")
def htautau(htautau_file: Path) -> Any:
    return _events(htautau_file)


def _copy_model(source: Path, name: str, target: Path) -> Path:
    """A model directory ``target`` holding a copy of the shipped model ``source/name`` (card + weights)."""
    target.mkdir()
    card = json.loads((source / f"{name}.json").read_text())
    shutil.copyfile(source / card["weights"], target / f"{name}.safetensors")
    card["weights"] = f"{name}.safetensors"
    (target / f"{name}.json").write_text(json.dumps(card))
    return target


@pytest.fixture
def deepmet_dir(tmp_path: Path) -> Path:
    """A model directory with a copy of the shipped ``deepmet_pu60``."""
    return _copy_model(PACKAGE / "met" / "weights", "deepmet_pu60", tmp_path / "my-deepmet")


@pytest.fixture
def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every padded mini-batch a model wrapper builds, as (events, longest event)."""
    seen: list[tuple[int, int]] = []
    pad = inference_wrapper.pad_batch

    def recording(jagged: Any, events: np.ndarray, *args: Any) -> tuple[np.ndarray, np.ndarray]:
        x, mask = pad(jagged, events, *args)
        seen.append((x.shape[0], x.shape[1]))
        return x, mask

    monkeypatch.setattr(inference_wrapper, "pad_batch", recording)
    return seen


# ---- wrong model directories ----------------------------------------------------------------------------------
def _rewrite_card(directory: Path, **changes: Any) -> None:
    path = directory / "deepmet_pu60.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def _missing_weights(directory: Path) -> tuple[Path, str]:
    (directory / "deepmet_pu60.safetensors").unlink()
    return directory / "deepmet_pu60.safetensors", "is missing"


def _truncated_weights(directory: Path) -> tuple[Path, str]:
    weights = directory / "deepmet_pu60.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return weights, "not a readable safetensors file"


def _tensor_of_another_shape(directory: Path) -> tuple[Path, str]:
    weights = directory / "deepmet_pu60.safetensors"
    state = load_file(str(weights))
    name = min(state)  # the first tensor by name
    state[name] = torch.zeros(state[name].shape[0] + 1, *state[name].shape[1:])
    save_file(state, str(weights))
    return weights, name


def _config_the_weights_do_not_fit(directory: Path) -> tuple[Path, str]:
    _rewrite_card(directory, config={"dim": 32})
    return directory / "deepmet_pu60.safetensors", "shape mismatch"


def _unknown_card_version(directory: Path) -> tuple[Path, str]:
    _rewrite_card(directory, card_version=2)
    return directory / "deepmet_pu60.json", "model card version 2 is unknown"


def _card_of_another_architecture(directory: Path) -> tuple[Path, str]:
    shutil.rmtree(directory)
    _copy_model(PACKAGE / "ttbar" / "weights", "spanet_pu60", directory)
    return directory / "spanet_pu60.json", "describes a coffea_mlreco.ttbar.spanet:SPANet model"


FAULTS: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "missing weights": _missing_weights,
    "truncated weights": _truncated_weights,
    "a tensor of another shape": _tensor_of_another_shape,
    "a config the weights do not fit": _config_the_weights_do_not_fit,
    "unknown card version": _unknown_card_version,
    "card of another architecture": _card_of_another_architecture,
}


def test_every_shipped_model_passes_the_check() -> None:
    for task in ("met", "ttbar", "ditau", "mem", "mlpf"):
        weights = PACKAGE / task / "weights"
        names = card_names(weights)
        assert names, task
        for name in names:
            assert Path(read_model_card(weights, name, task)["weights"]).is_file()


def test_a_good_model_directory_gives_the_shipped_model_results(deepmet_dir: Path, htautau: Any) -> None:
    ours = met.reconstruct(htautau, methods=("deepmet",), models={"deepmet": deepmet_dir}, device="cpu")
    shipped = met.reconstruct(htautau, methods=("deepmet",), models={"deepmet": "deepmet_pu60"}, device="cpu")
    np.testing.assert_array_equal(ak.to_numpy(ours.DeepMETReco.pt), ak.to_numpy(shipped.DeepMETReco.pt))


@pytest.mark.parametrize("fault", list(FAULTS))
def test_wrong_model_directory_through_reconstruct(
    fault: str, deepmet_dir: Path, htautau: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    named, message = FAULTS[fault](deepmet_dir)

    def no_processing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("events were processed with a wrong model")

    monkeypatch.setattr(met.columns, "reconstruct_columns", no_processing)
    with pytest.raises(ModelCardError) as info:
        met.reconstruct(htautau, methods=("deepmet",), models={"deepmet": deepmet_dir}, device="cpu")
    text = str(info.value)
    assert str(named) in text and message in text and "\n" not in text
    if fault in ("a tensor of another shape", "a config the weights do not fit"):
        assert isinstance(info.value, WeightsMismatchError) and "deepmet_pu60.json" in text  # the card too


@pytest.mark.parametrize("fault", list(FAULTS))
def test_wrong_model_directory_through_evaluate(
    fault: str, deepmet_dir: Path, htautau_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    named, message = FAULTS[fault](deepmet_dir)
    out = tmp_path / "report"
    argv = ["evaluate", str(htautau_file), "--tasks", "met", "--model", f"met.deepmet={deepmet_dir}", "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(named) in err and message in err
    assert not out.exists() and not list(tmp_path.glob("report*"))


# ---- extreme events -------------------------------------------------------------------------------------------
def _multiply(
    events: Any, names: tuple[str, ...], event: int, copies: int, keep: int | None = None, seed: int = 1
) -> Any:
    """``events`` with ``event``'s objects of each collection in ``names`` repeated ``copies`` times (copy k
    rotated in φ by a random angle, links between the collections renumbered to copy k, links to others −1 in
    the copies), cut to the first ``keep`` objects when given (only for a collection without links). Fields
    holding lists per object (coffea's derived cross-references) are left out."""
    rng = np.random.default_rng(seed)
    angles = np.concatenate([[0.0], rng.uniform(-np.pi, np.pi, copies - 1)])
    own = {name: len(events[name][event]) for name in names}
    for name in names:
        collection = events[name]
        counts = to_numpy(ak.num(collection), np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        n = own[name] * copies if keep is None else keep
        copy = np.repeat(np.arange(copies), own[name])[:n]
        fields = {}
        for field in collection.fields:
            if collection[field].ndim > 2:  # coffea's derived cross-references (Jet.muonIdxG): not read here
                continue
            flat = to_numpy(ak.flatten(collection[field]))
            mine = np.tile(flat[offsets[event] : offsets[event + 1]], copies)[:n]
            if field in ("phi", "phiCalo"):
                mine = (mine + angles[copy] + np.pi) % (2 * np.pi) - np.pi
            elif field in LINKS:
                target = LINKS[field]
                mine = (
                    np.where(mine >= 0, mine + copy * own[target], mine)
                    if target in names
                    else np.where(copy > 0, -1, mine)
                )
            fields[field] = np.concatenate(
                [flat[: offsets[event]], mine.astype(flat.dtype), flat[offsets[event + 1] :]]
            )
        new_counts = counts.copy()
        new_counts[event] = n
        record = ak.zip({f: ak.unflatten(v, new_counts) for f, v in fields.items()})
        events = ak.with_field(events, record, name)
    return events


def _assert_same_except(ours: ak.Array, reference: ak.Array, event: int) -> None:
    """Every leaf of ``ours`` equals ``reference`` outside ``event`` (ints/bools exactly, floats to 1e-5)."""
    keep = np.arange(len(reference)) != event
    for path, leaf in _leaves(reference):
        mine, theirs = _flat(_get(ours, path)[keep]), _flat(leaf[keep])
        if theirs.dtype.kind == "f":
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6, err_msg=".".join(path))
        else:
            np.testing.assert_array_equal(mine, theirs, err_msg=".".join(path))


def _leaves(array: ak.Array, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], ak.Array]]:
    if ak.fields(array):
        for field in ak.fields(array):
            yield from _leaves(array[field], (*path, field))
    else:
        yield path, array


def _get(array: ak.Array, path: tuple[str, ...]) -> ak.Array:
    for field in path:
        array = array[field]
    return array


def _flat(array: ak.Array) -> np.ndarray:
    return to_numpy(ak.flatten(array, axis=None))


def _rejections(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, OversizedEventWarning)]


def test_met_100k_candidates_rejected_by_the_networks_within_the_token_budget(
    htautau: Any, batch_sizes: list[tuple[int, int]]
) -> None:
    events = htautau[:12]
    copies = -(-100_000 // len(events.PFCands[5]))
    extreme = _multiply(events, ("PFCands",), 5, copies)
    assert ak.num(extreme.PFCands)[5] >= 100_000
    methods = ("pf", "puppi", "deepmet", "perceiver")
    reference = met.reconstruct(events, methods=methods, device="cpu")
    batch_sizes.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = met.reconstruct(extreme, methods=methods, device="cpu")
    rejections = _rejections(caught)
    assert len(rejections) == 2 and all(
        f"(first: event 5, {ak.num(extreme.PFCands)[5]} cands)" in m for m in rejections
    )
    assert max(b * length for b, length in batch_sizes) <= max(DEFAULT_TOKENS["cpu"], MAX_EVENT_TOKENS)
    for column in ("DeepMETReco", "MLMET"):
        assert np.isnan(out[column].pt[5]) and np.isnan(out[column].phi[5])
    for column in ("PFMETReco", "PuppiMETReco"):
        assert np.isfinite(out[column].pt[5]) and out[column].valid[5]
    new = [f for f in out.fields if f not in events.fields] + ["PFCands"]
    _assert_same_except(out[new], reference[new], 5)


def test_met_100k_candidates_run_alone_when_the_limit_allows(htautau: Any, batch_sizes: list[tuple[int, int]]) -> None:
    events = htautau[:12]
    extreme = _multiply(events, ("PFCands",), 5, -(-100_000 // len(events.PFCands[5])))
    deepmet = MET_MODELS.load("deepmet_pu60", device="cpu")
    reference = met.reconstruct(events, methods=("deepmet",), models={"deepmet": deepmet})
    deepmet.max_event_tokens = 1 << 17
    batch_sizes.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", OversizedEventWarning)
        out = met.reconstruct(extreme, methods=("deepmet",), models={"deepmet": deepmet})
    big = [(b, length) for b, length in batch_sizes if b * length > DEFAULT_TOKENS["cpu"]]
    assert big == [(1, int(ak.num(extreme.PFCands)[5]))]  # the extreme event alone; every other batch in budget
    assert np.isfinite(out.DeepMETReco.pt[5])
    _assert_same_except(out[["DeepMETReco"]], reference[["DeepMETReco"]], 5)


def test_ttbar_40_jets_processed_from_the_leading_jets(real_nano_tt: Path) -> None:
    events = _events(real_nano_tt, stop=40)
    methods = ("chi2", "klfitter", "pdnn", "spanet")
    reference = ttbar.reconstruct(events, methods=methods, device="cpu")
    event = int(np.flatnonzero(ak.to_numpy(reference.TTbarReco.chi2.had_b) >= 0)[0])
    extreme = _multiply(events, ("Jet",), event, -(-40 // len(events.Jet[event])), keep=40)
    assert ak.num(extreme.Jet)[event] == 40
    with warnings.catch_warnings():
        warnings.simplefilter("error", OversizedEventWarning)
        out = ttbar.reconstruct(extreme, methods=methods, device="cpu")
    for method in methods:
        jets = [int(out.TTbarReco[method][slot][event]) for slot in ("had_b", "had_q1", "had_q2", "lep_b")]
        assert all(0 <= j < 40 for j in jets) and len(set(jets)) == 4, (method, jets)
    assert out.TTbarReco.valid[event]
    _assert_same_except(out[["TTbarReco"]], reference[["TTbarReco"]], event)


def test_ditau_2000_decay_products_truncated_per_leg(htautau: Any, batch_sizes: list[tuple[int, int]]) -> None:
    reference = ditau.reconstruct(htautau, device="cpu")
    hadronic = np.isin(ak.to_numpy(reference.DiTauReco.channel), [Channel.TAUTAU, Channel.MUTAU, Channel.ETAU])
    event = int(np.flatnonzero(hadronic & (ak.to_numpy(ak.num(htautau.TauProd)) > 0))[0])  # a τh leg's products
    extreme = _multiply(htautau, ("TauProd",), event, -(-2000 // len(htautau.TauProd[event])), keep=2000)
    batch_sizes.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", OversizedEventWarning)
        out = ditau.reconstruct(extreme, device="cpu")
    assert max(length for _, length in batch_sizes) <= MAX_PRODUCTS  # tokens per leg (and at most 3 jets)
    assert np.isfinite(out.DiTauReco.mass_ml[event]) and out.DiTauReco.valid[event]
    _assert_same_except(out[["DiTauReco"]], reference[["DiTauReco"]], event)


def test_mlpf_100k_elements_rejected_within_the_token_budget(htautau: Any, batch_sizes: list[tuple[int, int]]) -> None:
    events = htautau[:8]
    own = len(events.PFTrack[3]) + len(events.PFCluster[3])
    extreme = _multiply(events, ("PFTrack", "PFCluster"), 3, -(-100_000 // own))
    reference = mlpf.reconstruct(events, device="cpu")
    batch_sizes.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = mlpf.reconstruct(extreme, device="cpu")
    rejections = _rejections(caught)
    assert (
        len(rejections) == 1
        and "1 of the 8 events given to the model rejected" in rejections[0]
        and "first: event 3" in rejections[0]
    )
    assert max(b * length for b, length in batch_sizes) <= max(DEFAULT_TOKENS["cpu"], MAX_EVENT_TOKENS)
    assert out.MLPFReco.n_cands[3] == 0 and len(out.MLPFCands[3]) == 0
    _assert_same_except(out[["MLPFCands", "MLPFReco"]], reference[["MLPFCands", "MLPFReco"]], 3)
