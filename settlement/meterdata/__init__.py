"""Meter data: a room of its own inside settlement (issue 14).

Interval data (``IntervalDay``) and its load jobs (``MeterDataLoad``): models, parsers (``csvreadings``,
``greenbutton``, ``intervals``), loaders (``loaders``: load jobs, streaming, binary COPY), monthly partitions of
the interval data on PostgreSQL (``partitions``), selectors, tasks, filtersets, admin and API. Settlement imports
meter data, never the other way round (an import-linter contract in ``pyproject.toml``). This package's ``__init__``
imports nothing, so the pure modules (``series``, ``intervals``) stay free of Django.
"""
