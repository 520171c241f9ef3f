"""Data pipeline: raw files -> plain arrays -> cache -> windows -> batches."""
from vadflow.data.types import DataError, RawSplit, Track

__all__ = ["DataError", "RawSplit", "Track"]
