"""The order of a /Bulk request's operations (bulk_order.py): request order unless waiting
for a later POST, cycles left over, and a cost linear in operations and references."""

from __future__ import annotations

from webwork_sso_middleware.scim.bulk_order import Order


def drain(order: Order) -> list[int]:
    ran = []
    while (index := order.next()) is not None:
        ran.append(index)
        order.ran(index)
    return ran


def test_request_order_unless_waiting_for_a_later_post():
    declared = {"u": 2, "g": 1, "own": 3}
    refs = [frozenset({"g"}), frozenset({"u"}), frozenset(), frozenset({"own", "nope"})]
    order = Order(refs, declared)
    # 0 waits for 1, which waits for 2; its own bulkId and an undeclared one hold 3 back not.
    assert drain(order) == [2, 1, 0, 3]
    assert order.stuck() == []


def test_operations_in_or_waiting_on_a_cycle_are_left_over_in_request_order():
    declared = {"a": 1, "b": 2, "c": 4}
    refs = [frozenset({"c"}), frozenset({"b"}), frozenset({"a"}), frozenset(), frozenset({"a"})]
    order = Order(refs, declared)
    assert drain(order) == [3]
    assert order.stuck() == [0, 1, 2, 4]


def test_a_hostile_chain_costs_steps_linear_in_its_length():
    n = 1000
    declared = {f"b{i}": i for i in range(n)}
    undeclared = {f"z{k}" for k in range(40)}
    refs = [frozenset({f"b{i + 1}", *undeclared}) for i in range(n)]
    order = Order(refs, declared)
    assert drain(order) == list(range(n - 1, -1, -1))
    assert order.steps <= 2 * n
