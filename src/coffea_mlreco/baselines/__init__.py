"""Classical reconstruction baselines (numba kernels with awkward front ends)."""
