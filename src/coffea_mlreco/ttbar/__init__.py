"""Semileptonic tt̄ jet-parton assignment: χ², KLFitter-style fit, permutation DNN and SPANet;
``reconstruct`` appends their ``TTbarReco`` column to an analyst's events."""

from coffea_mlreco.ttbar.columns import COLUMN, METHODS, input_columns, reconstruct, supported_methods

__all__ = ["COLUMN", "METHODS", "input_columns", "reconstruct", "supported_methods"]
