"""Settlement models, split by concern: ``meterdata`` (interval data, load jobs) and ``credits`` (event and customer
settlements, bill-credit export batches)."""

from .meterdata import IntervalDay, MeterDataLoad  # noqa: F401
