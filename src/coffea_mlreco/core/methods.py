"""The reconstruction methods of a task as data: one :class:`MethodSet` per task (``coffea_mlreco.<task>.methods``)
read by its column function, processor, report section and the task registry, and :func:`choose_methods`, the
one check of a ``methods=`` request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Method", "MethodSet", "choose_methods"]


@dataclass(frozen=True)
class Method:
    """One method of a task.

    Attributes:
        name: its key in ``methods=``, the histograms' method axes, metrics.json and the throughput
            (``"deepmet"``).
        title: its name in the report's tables (``"DeepMET"``).
        network: for a method that runs a trained network, the prefix of its shipped model names (``"deepmet"``:
            ``deepmet_pu60``, ``deepmet_pu200``); None for an algorithm without trained weights.
        short: a shorter title for plot legends (default: the title).
    """

    name: str
    title: str
    network: str | None = None
    short: str = ""

    @property
    def legend(self) -> str:
        """The plot legend label: :attr:`short`, else :attr:`title`."""
        return self.short or self.title


@dataclass(frozen=True)
class MethodSet:
    """The methods of one task.

    Attributes:
        task: the task as error messages name it (``"MET"``, ``"tt̄"``).
        methods: what the column function runs, in the order of the report.
        references: the other entries of the processor's and report's method axes, which the column function
            does not run (the file's own MET, rule-based PF, a derived variant such as ``mlpf_puppi``).
    """

    task: str
    methods: tuple[Method, ...]
    references: tuple[Method, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The names of :attr:`methods`, in order."""
        return tuple(m.name for m in self.methods)

    @property
    def networks(self) -> dict[str, str]:
        """``{method: model-name prefix}`` of the methods that run a trained network (the ``models=`` keys)."""
        return {m.name: m.network for m in self.methods if m.network is not None}

    @property
    def titles(self) -> dict[str, str]:
        """``{name: title}`` of the methods and the references."""
        return {m.name: m.title for m in (*self.methods, *self.references)}

    @property
    def legends(self) -> dict[str, str]:
        """``{name: legend label}`` of the methods and the references."""
        return {m.name: m.legend for m in (*self.methods, *self.references)}


def choose_methods(
    requested: str | Sequence[str] | None,
    available: MethodSet,
    *,
    default: Sequence[str] = (),
    allow_empty: bool = False,
) -> tuple[str, ...]:
    """The methods to run for a ``methods=`` request: ``default`` for None (the task's rule, e.g. every method
    the file supports), else the requested names (a single name may be given as a string) without repeats, in
    the order of ``available``.

    Raises:
        ValueError: a name not among ``available``'s methods (``unknown MET method(s) [...]; known: ...``), or an
            empty request unless ``allow_empty``.
    """
    if requested is None:
        return tuple(default)
    asked = (requested,) if isinstance(requested, str) else tuple(requested)
    known = ", ".join(available.names)
    unknown = [m for m in asked if m not in available.names]
    if unknown:
        raise ValueError(f"unknown {available.task} method(s) {unknown}; known: {known}")
    if not asked and not allow_empty:
        raise ValueError(f"no {available.task} method asked for; known: {known}")
    return tuple(m for m in available.names if m in asked)
