"""The ``coffea-mlreco evaluate`` report: input checks, task registry, running, report writing.

- :mod:`.inputs` — up-front checks of the ROOT files;
- :mod:`.tasks` — registry of reconstruction tasks (processor, required branches, report section);
- :mod:`.runner` — coffea ``processor.Runner`` with the iterative, futures or dask executor, and the dask-awkward
  path (``coffea.dataset_tools.apply_to_fileset`` on a ``distributed.Client``);
- :mod:`.report` — index.html, metrics.json, histograms.root/.pkl writers;
- :mod:`.met_report` — the MET task's section;
- :mod:`.evaluate` — the command line.
"""

from __future__ import annotations

from coffea_mlreco.evaluation.tasks import TASKS, Task, TaskOptions, TaskReport

__all__ = ["TASKS", "Task", "TaskOptions", "TaskReport"]
