"""Check that two ``coffea-mlreco evaluate`` reports hold the same physics: metrics.json equal, timings aside.

Used for refactorings that must not change a result (the task-package layout, issue 17): run ``evaluate`` with
the old and the new code on the same files, then

    python benchmarks/metrics_unchanged.py BEFORE_REPORT AFTER_REPORT [MORE_BEFORE MORE_AFTER ...]

It prints one row per metrics.json section (``meta`` without its timing, and each task) with the number of
values compared and the number that differ, then the first differences, and exits 1 if any differ. Timings are
left out: ``meta.seconds`` and the ``throughput`` section. Values are compared exactly (floats bit for bit).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from coffea_mlreco.evaluation.report import metrics_leaves

TIMING = {("meta", "seconds"), ("throughput",)}
"""Paths (prefixes) of values that are timings and may differ."""


def is_nan(value: Any) -> bool:
    """Whether a JSON leaf is a NaN float (then it equals another NaN in the comparison)."""
    return isinstance(value, float) and math.isnan(value)


def is_timing(path: tuple[str, ...]) -> bool:
    return any(path[: len(prefix)] == prefix for prefix in TIMING)


def compare(before: Path, after: Path) -> tuple[list[tuple[str, int, int]], list[str]]:
    """Rows ``(section, values compared, values that differ)`` and the differences as text."""
    old = metrics_leaves(json.loads((before / "metrics.json").read_text()))
    new = metrics_leaves(json.loads((after / "metrics.json").read_text()))
    rows: dict[str, list[int]] = {}
    differences = []
    for path in sorted(set(old) | set(new)):
        if is_timing(path):
            continue
        section = rows.setdefault(path[0], [0, 0])
        section[0] += 1
        a, b = old.get(path, "<absent>"), new.get(path, "<absent>")
        if a != b and not (is_nan(a) and is_nan(b)):
            section[1] += 1
            differences.append(f"{'.'.join(path)}: {a!r} → {b!r}")
    return [(name, n, d) for name, (n, d) in rows.items()], differences


def main(argv: list[str]) -> int:
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__)
        return 2
    failed = False
    print(f"{'before':<40} {'after':<40} {'section':<12} {'values':>7} {'differ':>7}")
    for before, after in zip(argv[::2], argv[1::2], strict=True):
        rows, differences = compare(Path(before), Path(after))
        for section, n, d in rows:
            print(f"{before:<40} {after:<40} {section:<12} {n:>7} {d:>7}")
        for line in differences[:20]:
            print("  " + line)
        failed |= bool(differences)
    print("identical" if not failed else "DIFFERENT")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
