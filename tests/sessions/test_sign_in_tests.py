"""Test sign-in tickets (sessions/sign_in_tests.py): ours only, one workspace's only, for a
while only; the mark of a binding is stable and never the binding itself."""

from __future__ import annotations

from webwork_sso_middleware.sessions.sign_in_tests import (
    TICKET_LIFETIME,
    SignInTests,
    binding_mark,
)
from webwork_sso_middleware.signing import Purpose, Signing

KEY = "k" * 32


def test_a_ticket_reads_back_for_its_workspace_until_it_expires() -> None:
    now = [1000.0]
    tests = SignInTests(signing=Signing([KEY]), clock=lambda: now[0])
    ticket, test = tests.ticket(7, "binding")
    assert tests.read(ticket, 7) == test
    assert test.mark == binding_mark("binding") != "binding"
    assert tests.read(ticket, 8) is None  # another workspace's login
    now[0] += TICKET_LIFETIME.total_seconds()
    assert tests.read(ticket, 7) is None


def test_forged_foreign_and_odd_tickets_are_refused() -> None:
    tests = SignInTests(signing=Signing([KEY]))
    ticket, _ = tests.ticket(7, "binding")
    other_site = SignInTests(signing=Signing(["o" * 32])).ticket(7, "binding")[0]
    wrong_purpose = Signing([KEY])[Purpose.LOGIN_REQUESTS].dumps([1, 7, "n", "m", 2**40])
    odd_shape = Signing([KEY])[Purpose.SIGN_IN_TEST].dumps([1, 7, "n", 5, 2**40])
    for refused in (
        None,
        "",
        "forged",
        ticket[:-2],
        other_site,
        wrong_purpose,
        odd_shape,
        "x" * 600,
    ):
        assert tests.read(refused, 7) is None, refused


def test_two_tickets_have_their_own_nonces_and_bindings_their_own_marks() -> None:
    tests = SignInTests(signing=Signing([KEY]))
    (_, one), (_, two) = tests.ticket(7, "a"), tests.ticket(7, "a")
    assert one.nonce != two.nonce and one.mark == two.mark
    assert binding_mark("a") != binding_mark("b")
