"""The reservation ledger's pure arithmetic (rule checks themselves are ``programs.rules``, tested there)."""

from events import ledger


def test_rotation_least_called_then_larger_capacity():
    order = ledger.rotation_order([(1, 3, 5.0), (2, 0, 1.0), (3, 0, 4.0), (4, 1, 9.0), (5, 0, 4.0)])
    assert order == [3, 5, 2, 4, 1]
    assert ledger.pick_until_target([(3, 4.0), (5, 4.0), (2, 1.0)], 6.0) == {3, 5}
    assert ledger.pick_until_target([(3, 4.0), (5, 4.0)], 4.0) == {3}
