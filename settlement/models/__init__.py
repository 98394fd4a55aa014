"""Settlement models, split by concern: ``meterdata`` (interval data, load jobs) and ``credits`` (event and customer
settlements, bill-credit export batches)."""

from .meterdata import IntervalDay, MeterDataLoad  # noqa: F401

try:  # credits lands separately
    from .credits import *  # noqa: F401,F403
except ImportError:  # pragma: no cover
    pass
