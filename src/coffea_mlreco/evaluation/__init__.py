"""The ``coffea-mlreco evaluate`` report: input checks, task registry, running, report writing.

- :mod:`.inputs` — up-front checks of the ROOT files;
- :mod:`.tasks` — what a task is to evaluate (processor, required branches, report section) and the choice of
  tasks and models for a run (the registry itself is :data:`coffea_mlreco.tasks.TASKS`);
- :mod:`.runner` — coffea ``processor.Runner`` with the iterative, futures or dask executor, and the dask-awkward
  path (``coffea.dataset_tools.apply_to_fileset`` on a ``distributed.Client``);
- :mod:`.report` — index.html, metrics.json, histograms.root/.pkl writers;
- :mod:`.evaluate` — the command line.
"""

from __future__ import annotations

from coffea_mlreco.evaluation.tasks import Task, TaskOptions, TaskReport

__all__ = ["Task", "TaskOptions", "TaskReport"]
