"""Fault campaign: a dask worker process killed (SIGKILL) in the middle of a run.

Protection under test: a lost worker's work is recomputed, not failed — the scheduler reschedules the tasks that were
running or whose results were held on the dead worker (``distributed.scheduler.allowed-failures``, 3 by default,
bounds how often one task may take a worker down), and neither the Runner's ``DaskExecutor`` (its ``retries`` are 0)
nor :func:`coffea_mlreco.evaluation.runner.compute_on_client` (dask-awkward graphs, ``retries=0``, only transient
I/O errors retried) turns the loss into an error. The run completes and its output is identical to an undisturbed
run (the MET processor's histograms and counters, from which metrics.json is computed).

The kill is deterministic: :class:`KillOnce` runs in every chunk (Runner) or partition (dask-awkward) and, on the
first attempt of the chunk holding a chosen event, creates a marker file and SIGKILLs its own worker process; the
retry finds the marker and carries on. It never kills the test process itself.

The runs use the session's 2-worker ``LocalCluster`` (``dask_client``): its workers have nannies, which start a new
worker process in place of the killed one, so the cluster is whole again for the tests that follow.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea import processor
from coffea_mlreco.processors.met import METProcessor

from coffea_mlreco.core import count_true, map_events
from coffea_mlreco.core.columns import to_numpy
from coffea_mlreco.evaluation import runner
from coffea_mlreco.evaluation.tasks import TaskOptions

pytestmark = pytest.mark.filterwarnings("ignore:Missing cross-reference:RuntimeWarning")

N_EVENTS = 100
"""Events processed: 4 chunks of 25 (the kill hits the second)."""
CHUNKSIZE = 25
METHODS = ("pf",)
"""The MET methods run (see :func:`_met_processor`)."""
PROBE = "alive_events"
"""Output key of :class:`KillingProcessor`: events seen by :class:`KillOnce` (all of them, once the run is done)."""


class KillOnce:
    """Per chunk of events: on the first attempt of the chunk holding event number ``event``, create ``marker`` and
    SIGKILL the current process — unless that is the test process (``protected_pid``). Returns True per event.

    Reads only the ``event`` branch. The marker (created with ``O_EXCL``) holds the killed process's id.
    """

    def __init__(self, marker: Path, event: int) -> None:
        self.marker = str(marker)
        self.event = int(event)
        self.protected_pid = os.getpid()

    def __call__(self, events: Any) -> ak.Array:
        numbers = to_numpy(events.event)
        if os.getpid() != self.protected_pid and self.event in numbers:
            with contextlib.suppress(FileExistsError):
                descriptor = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(descriptor, str(os.getpid()).encode())
                os.close(descriptor)
                os.kill(os.getpid(), signal.SIGKILL)
        return ak.Array(np.ones(len(numbers), bool))


class KillingProcessor(processor.ProcessorABC):
    """``inner``'s output plus :data:`PROBE`, the number of events :class:`KillOnce` saw; the same code for eager
    (Runner) and dask-awkward events, through :func:`coffea_mlreco.core.map_events`."""

    def __init__(self, inner: processor.ProcessorABC, kill: KillOnce) -> None:
        self.inner = inner
        self.kill = kill

    def process(self, events: Any) -> dict[str, Any]:
        alive = map_events(self.kill, events, {"event": None}, label="kill-once")
        out = dict(self.inner.process(events))
        out[PROBE] = count_true(alive)
        return out

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


@pytest.fixture(scope="module")
def chunks(generated_nano: Path) -> list[Any]:
    """The first 100 events of the generated sample in 4 chunks of 25."""
    with runner.executor_session("iterative", status=False) as executor:
        return runner.plan_chunks([str(generated_nano)], executor, CHUNKSIZE, N_EVENTS)


@pytest.fixture(scope="module")
def undisturbed(chunks: list[Any]) -> dict[str, Any]:
    """The MET processor's output over the chunks, computed in this process (iterative executor)."""
    with runner.executor_session("iterative", status=False) as executor:
        return runner.run_processor(_met_processor(), chunks, executor, CHUNKSIZE).output


def _met_processor() -> METProcessor:
    """The ``evaluate`` MET processor with PF MET only: the networks and PUPPI add nothing to a worker-loss test
    but seconds of model loading and compilation in every (re)started worker."""
    return METProcessor(methods=METHODS, options=TaskOptions(device="cpu"))


def _first_event_number(chunk: Any) -> int:
    """The ``event`` number of the chunk's first entry."""
    with uproot.open(chunk.filename) as f:
        return int(
            f[chunk.treename]["event"].array(
                entry_start=chunk.entrystart, entry_stop=chunk.entrystart + 1, library="np"
            )[0]
        )


def assert_same_output(actual: Any, expected: Any, path: str = "output") -> None:
    """Equal histograms (every bin, flow included) and counters, recursively; per-method timings are ignored."""
    if isinstance(expected, dict):
        keys = set(expected) - {"seconds"}
        assert set(actual) - {"seconds"} == keys, path
        for key in keys:
            assert_same_output(actual[key], expected[key], f"{path}[{key!r}]")
    elif hasattr(expected, "view"):
        assert actual.axes == expected.axes, path
        np.testing.assert_array_equal(
            np.asarray(actual.view(flow=True)), np.asarray(expected.view(flow=True)), err_msg=path
        )
    else:
        assert actual == expected, path


def _worker_pids(client: Any) -> set[int]:
    return set(client.run(os.getpid).values())


def _killing_run(kind: str, chunks: list[Any], scheduler: str, marker: Path) -> dict[str, Any]:
    """Run the killing MET processor on the cluster at ``scheduler`` as ``evaluate --executor dask`` (the Runner's
    ``DaskExecutor``) or ``--executor dask-awkward`` (graphs computed on a client) does."""
    kill = KillOnce(marker, _first_event_number(chunks[1]))
    wrapped = KillingProcessor(_met_processor(), kill)
    if kind == "dask":
        with runner.executor_session("dask", scheduler=scheduler, status=False) as executor:
            return runner.run_processor(wrapped, chunks, executor, CHUNKSIZE).output
    with runner.client_session(scheduler=scheduler) as client:
        return runner.run_dask_awkward(wrapped, chunks, client).output


@pytest.mark.parametrize("kind", ["dask", "dask-awkward"])
def test_worker_killed_mid_run_gives_identical_output(
    kind: str, chunks: list[Any], undisturbed: dict[str, Any], dask_client: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "killed.pid"
    output = _killing_run(kind, chunks, dask_client.scheduler.address, marker)
    assert marker.is_file(), "no worker was killed"
    assert int(marker.read_text()) not in _worker_pids(dask_client)  # that worker process is gone
    assert output.pop(PROBE) == N_EVENTS  # every chunk ran to the end, the killed one on its second attempt
    assert output["events_per_method"]["pf"] == N_EVENTS
    assert_same_output(output, undisturbed)
