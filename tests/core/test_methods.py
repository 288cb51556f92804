"""The method records (``core.methods``), the one check of a ``methods=`` request, and the timing helper."""

from __future__ import annotations

import importlib

import pytest

from coffea_mlreco.core import Method, MethodSet, choose_methods, timed
from coffea_mlreco.tasks import TASKS

_SET = MethodSet(
    task="toy",
    methods=(Method("fit", "Likelihood fit"), Method("net", "Network", network="net", short="NN")),
    references=(Method("file", "In the file"),),
)


def test_method_set_views() -> None:
    assert _SET.names == ("fit", "net")
    assert _SET.networks == {"net": "net"}
    assert _SET.titles == {"fit": "Likelihood fit", "net": "Network", "file": "In the file"}
    assert _SET.legends == {"fit": "Likelihood fit", "net": "NN", "file": "In the file"}


def test_choose_methods_rules() -> None:
    assert choose_methods(None, _SET, default=("fit",)) == ("fit",)
    assert choose_methods("net", _SET) == ("net",)
    assert choose_methods(["net", "fit", "net"], _SET) == ("fit", "net")  # the set's order, no repeats
    assert choose_methods((), _SET, allow_empty=True) == ()
    with pytest.raises(ValueError, match=r"unknown toy method\(s\) \['mlp'\]; known: fit, net"):
        choose_methods(("fit", "mlp"), _SET)
    with pytest.raises(ValueError, match="no toy method asked for; known: fit, net"):
        choose_methods((), _SET)


def test_every_task_has_its_method_set() -> None:
    """The registry's method set is what the task's column function runs (``columns.METHODS``)."""
    for name, task in TASKS.items():
        module, _, attribute = task.methods.partition(":")
        method_set = getattr(importlib.import_module(module), attribute)
        assert isinstance(method_set, MethodSet), name
        columns = importlib.import_module(f"coffea_mlreco.{name}.columns")
        assert method_set.names == columns.METHODS, name
        assert not set(method_set.names) & {m.name for m in method_set.references}, name


def test_timed_adds_seconds() -> None:
    timings: dict[str, float] = {"fit": 1.0}
    with timed(timings, "fit"):
        pass
    with timed(timings, "net"):
        pass
    assert timings["fit"] >= 1.0 and timings["net"] >= 0.0 and set(timings) == {"fit", "net"}
    with timed(None, "fit"):  # nothing to fill
        pass
    with pytest.raises(RuntimeError), timed(timings, "failed"):
        raise RuntimeError
    assert "failed" not in timings
