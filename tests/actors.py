"""Named actors for tests: services refuse ``actor=None`` (``cpm.base.capabilities``)."""

from cpm.base.capabilities import system_actor

#: The test suite acting as trusted system code (every capability), shown as ``system:tests`` in the audit trail.
TEST_ACTOR = system_actor("tests")
