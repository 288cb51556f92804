"""The package version, recorded in model cards, reports and generated files (``pyproject.toml`` reads it here)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
