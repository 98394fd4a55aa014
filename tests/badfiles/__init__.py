"""The bad-file corpus (issue 15): bad inputs written by ``tests/badfiles/generate.py`` under ``corpus/<family>/``,
each listed in ``corpus/<family>/manifest.json`` with the errors it must produce, and one test module per
entry-point family (``test_cis_devices.py``: CIS extracts and aggregator device lists) that runs every file through
every entry point. Shared assertions live in ``runner.py``. To add a family: a ``write_<family>()`` in
``generate.py`` and a ``test_<family>.py`` using ``runner.load_manifest``."""
