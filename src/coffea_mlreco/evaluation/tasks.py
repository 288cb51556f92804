"""What ``coffea-mlreco evaluate`` and ``train`` need to know of a reconstruction task (:class:`Task`), and the
choice of tasks and models for a run.

A task names its column function, coffea processor, report section and trainer as ``"module:attribute"``
strings, imported only when the task runs, so a task whose optional stack (torch, ...) is heavy costs nothing
when it is not selected. The registry of every task is :data:`coffea_mlreco.tasks.TASKS` (the one place that
knows the task packages); the functions here take it as an argument.

Selection: with ``--tasks`` left out, every registered task whose required branches exist in all files
runs, and the others are skipped with a note naming the file and branch; a task asked for explicitly
whose branches are absent is an error naming the file and branch. A required entry may be a group of
alternatives, ``"MET_pt|PFMET_pt"`` (the NanoAOD versions' names): any one of them present will do, and a
message about it names them all.

Models: a task lists the methods that run a trained network (:attr:`Task.model_methods`); ``evaluate --model
TASK.METHOD=SPEC`` replaces the shipped model of such a method by ``SPEC``, a shipped name (a model card in the
task's ``weights`` folder) or a model directory written by ``coffea-mlreco train <task> --output DIR``.
:func:`parse_model_options` checks every such option (task, method, the card and its weights, the
architecture) before anything runs and returns :attr:`TaskOptions.models`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import hist

from coffea_mlreco.core.methods import MethodSet
from coffea_mlreco.evaluation.inputs import BRANCH_ALTERNATIVES, InputError, InputFile, first_missing_branch

if TYPE_CHECKING:
    from coffea_mlreco.inference.registry import ModelRegistry

__all__ = [
    "EVENT_ID_BRANCHES",
    "Task",
    "TaskOptions",
    "TaskReport",
    "check_model_spec",
    "describe_group",
    "load_attribute",
    "parse_model_options",
    "select_tasks",
]

EVENT_ID_BRANCHES = ("run", "luminosityBlock", "event")
"""Branches coffea's NanoAODSchema refuses to read a file without."""


@dataclass(frozen=True)
class TaskOptions:
    """Settings every task's processor may use.

    Attributes:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` for the networks.
        models: per task, per method, the model to use instead of the shipped default: a shipped name or a
            model directory (``{"met": {"perceiver": "/my/dir"}}``; ``evaluate --model met.perceiver=DIR``).
    """

    device: str = "cpu"
    models: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def models_for(self, task: str) -> dict[str, str]:
        """``{method: model}`` given for ``task`` (empty: the shipped defaults)."""
        return dict(self.models.get(task, {}))


class TaskReport(NamedTuple):
    """What a task's report section produces from the processor output.

    Attributes:
        metrics: the task's entry in metrics.json (``{METHOD: {...}}``; methods that did not run absent).
        throughput: ``{"task/method": events per second}``.
        html: an HTML fragment (tables, ``<img>`` tags of PNGs written next to index.html).
        root_histograms: 1-D/2-D histograms for histograms.root, keyed by path (``"met/pf/upar"``).
        histograms: the full ``hist.Hist`` objects for histograms.pkl, keyed ``"task/name"``.
        more_metrics: further top-level metrics.json entries the task writes (``{"met_references": {...}}``).
    """

    metrics: dict[str, Any]
    throughput: dict[str, float]
    html: str
    root_histograms: dict[str, hist.Hist]
    histograms: dict[str, hist.Hist]
    more_metrics: Mapping[str, Any] = MappingProxyType({})


def load_attribute(spec: str) -> Any:
    """The object a ``"module:attribute"`` string names (the module imported on first use)."""
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class Task:
    """One reconstruction task: its processor, required branches and report section."""

    name: str
    title: str
    reconstruct: str
    """``"module:function"``: the column function ``reconstruct(events, *, methods, models, device, on_invalid)``."""
    processor: str
    """``"module:Class"`` of a ``ProcessorABC`` whose constructor takes ``options=TaskOptions``."""
    section: str
    """``"module:function"`` with signature ``(output: dict, outdir: Path) -> TaskReport``."""
    trainer: str
    """Module of ``coffea-mlreco train <task>``: ``add_arguments(parser)`` and ``run(args) -> int``."""
    required_branches: tuple[str, ...]
    """Branches the task cannot run without; an entry ``"A|B"`` is satisfied by either (:func:`select_tasks`)."""
    methods: str
    """``"module:attribute"`` of the task's :class:`~coffea_mlreco.core.methods.MethodSet`."""
    needs: str = ""
    """What the task reads, in words, for the one-line refusal when a file lacks it (``"detector elements (...),
    which coffea-mlreco generate --elements writes and CMS NanoAOD does not carry"``)."""

    def missing_message(self, path: str, group: str) -> str:
        """Why the task cannot run on ``path``, which lacks the branch (group) ``group``: one line."""
        needs = f" (it needs {self.needs})" if self.needs else ""
        return f"task {self.name!r} cannot run on {path}{needs}: branch {describe_group(group)} is missing"

    @property
    def model_methods(self) -> dict[str, str]:
        """Methods that run a trained network → the prefix of their shipped model names (``{"deepmet": "deepmet"}``:
        ``deepmet_pu60``, ``deepmet_pu200``); the methods ``--model TASK.METHOD=SPEC`` accepts. Read from the
        task's :attr:`methods` (its package imported on first use)."""
        method_set: MethodSet = load_attribute(self.methods)
        return method_set.networks

    def models(self, method: str) -> ModelRegistry:
        """The model cards of ``method`` (one of :attr:`model_methods`): the task's shipped models
        (``coffea_mlreco/<task>/weights``), read without loading the task package; error messages name them
        ``"<task> <method>"``."""
        from coffea_mlreco.inference.registry import ModelRegistry  # torch: imported when a model is named

        return ModelRegistry(f"coffea_mlreco.{self.name}", f"{self.name} {method}")

    def make_processor(self, options: TaskOptions) -> Any:
        """A new processor instance for this task."""
        return load_attribute(self.processor)(options=options)

    def report(self, output: dict[str, Any], outdir: Path) -> TaskReport:
        """Run the report section on the processor ``output``, writing plots into ``outdir``."""
        section: Callable[[dict[str, Any], Path], TaskReport] = load_attribute(self.section)
        return section(output, outdir)


def describe_group(group: str) -> str:
    """A required group as messages name it: ``'MET_pt' (or 'PFMET_pt')``; a single branch as ``'MET_pt'``."""
    first, *others = group.split(BRANCH_ALTERNATIVES)
    return f"{first!r}" + (f" (or {' or '.join(repr(b) for b in others)})" if others else "")


def select_tasks(
    requested: Sequence[str] | None, files: Sequence[InputFile], registry: Mapping[str, Task]
) -> tuple[list[Task], list[str]]:
    """The tasks of ``registry`` to run on ``files`` and notes about skipped ones.

    Raises:
        InputError: an unknown task name; a requested task (or, with ``requested=None``, every task)
            lacking a branch in some file — the message names the file and the branch; a file without
            the NanoAOD event-ID branches.
    """
    missing_id = first_missing_branch(files, EVENT_ID_BRANCHES)
    if missing_id is not None:
        path, branch = missing_id
        raise InputError(f"{path}: branch {branch!r} is missing (NanoAOD files need run/luminosityBlock/event)")
    if requested is not None:
        unknown = [name for name in requested if name not in registry]
        if unknown:
            raise InputError(f"unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(registry)}")
        chosen = []
        for name in dict.fromkeys(requested):
            task = registry[name]
            missing = first_missing_branch(files, task.required_branches)
            if missing is not None:
                path, group = missing
                raise InputError(task.missing_message(path, group))
            chosen.append(task)
        return chosen, []
    chosen, reasons = [], []
    for task in registry.values():
        missing = first_missing_branch(files, task.required_branches)
        if missing is None:
            chosen.append(task)
        else:
            path, group = missing
            reasons.append(task.missing_message(path, group))
    if not chosen:
        raise InputError("no task can run on these files: " + "; ".join(reasons))
    return chosen, [f"skipping {reason}" for reason in reasons]


def check_model_spec(task_name: str, method: str, spec: str, registry: Mapping[str, Task]) -> str:
    """Check the model ``spec`` for ``task_name``'s ``method`` and return it as the processors take it: a shipped
    name as given, a model directory (or card file) as an absolute path (workers may run elsewhere).

    Raises:
        InputError: an unknown task, a method that runs no trained network, a shipped name that does not exist, a
            path that is no model directory (no card, several cards, unreadable card, missing weights), or a
            card of another architecture than the method's shipped models; one line naming the option.
    """
    from coffea_mlreco.inference.model_cards import ModelCardError

    option = f"--model {task_name}.{method}={spec}"
    task = registry.get(task_name)
    if task is None:
        raise InputError(f"{option}: unknown task {task_name!r}; known tasks: {', '.join(registry)}")
    if method not in task.model_methods:
        known = ", ".join(task.model_methods) or "none"
        raise InputError(
            f"{option}: task {task_name!r} has no method {method!r} that runs a trained model "
            f"(its model methods: {known})"
        )
    if not spec:
        raise InputError(f"{option}: give a shipped model name or a model directory after '='")
    try:
        models = task.models(method)
        card = models.card(spec)
        expected = models.architectures(task.model_methods[method])
    except ModelCardError as err:
        raise InputError(f"{option}: {err}") from None
    if expected and card["model"] not in expected:
        raise InputError(
            f"{option}: the model card describes a {card['model']} model, but {task_name}.{method} "
            f"runs {', '.join(sorted(expected))}"
        )
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def parse_model_options(options: Sequence[str], registry: Mapping[str, Task]) -> dict[str, dict[str, str]]:
    """``--model TASK.METHOD=SPEC`` options → :attr:`TaskOptions.models` (``{task: {method: spec}}``), every one
    checked with :func:`check_model_spec`; a later option for the same method replaces an earlier one.

    Raises:
        InputError: a malformed option (not ``TASK.METHOD=SPEC``) or one that :func:`check_model_spec` refuses.
    """
    models: dict[str, dict[str, str]] = {}
    for text in options:
        target, sep, spec = text.partition("=")
        task_name, dot, method = target.partition(".")
        if not sep or not dot or not task_name or not method:
            raise InputError(f"--model {text}: expected TASK.METHOD=SPEC, e.g. met.deepmet=./my-model-dir")
        models.setdefault(task_name, {})[method] = check_model_spec(task_name, method, spec.strip(), registry)
    return models
