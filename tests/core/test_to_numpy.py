"""core.columns.to_numpy: a flat awkward array as numpy, jagged arrays refused."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from coffea_mlreco.core.columns import to_numpy


def test_flat_arrays_become_numpy_of_the_asked_dtype() -> None:
    values = to_numpy(ak.Array([1, 2, 3]), np.float32)
    assert isinstance(values, np.ndarray) and values.dtype == np.float32
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0])
    assert to_numpy(ak.Array([True, False])).dtype == np.bool_
    pt = ak.Array([[10.0, 20.0], [], [5.0]])
    np.testing.assert_array_equal(to_numpy(ak.num(pt, axis=1), np.int64), [2, 0, 1])


def test_jagged_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="regular"):
        to_numpy(ak.Array([[1.0], [2.0, 3.0]]))
