"""MET at high pileup: PF and PUPPI MET, the DeepMET-style and Perceiver networks; ``reconstruct`` appends
their columns to an analyst's events."""

from coffea_mlreco.met.columns import COLUMNS, METHODS, input_columns, reconstruct, supported_methods

__all__ = ["COLUMNS", "METHODS", "input_columns", "reconstruct", "supported_methods"]
