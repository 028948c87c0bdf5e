"""The tracker's seats and activity (examples/timetracker/directory.py), kept from the
middleware's lifecycle events: SCIM and sign-in move the seat count at once (the in-process
subscription), a restarted tracker catches up from its stored cursor, an event delivered twice
counts once, and a hostile workspace's events never reach another's seats or activity."""

from __future__ import annotations

import sqlite3
import threading

import requests

from webwork_sso_middleware.devserver import DEMO_SLUG

from ..devidp.browser import sign_in
from .conftest import EVIL, TrackerSite

ALICE = "alice.smith@example.com"
BOB = "bob.jones@example.com"
CAROL = "carol@example.com"


def kinds(site: TrackerSite, slug: str = DEMO_SLUG) -> list[tuple[str, str]]:
    """(kind, who) of the workspace's activity, newest first."""
    return [(event.kind, event.subject) for event in site.tracker.directory.activity(slug)]


def test_scim_provisioning_moves_the_seat_count_at_once(tracker_site: TrackerSite) -> None:
    site = tracker_site
    assert site.seats() == 0

    alice = site.demo.create_user(ALICE)
    bob = site.demo.create_user(BOB)
    site.demo.create_user(CAROL, active=False)  # provisioned inactive: no seat
    assert site.seats() == 2

    site.demo.set_active(bob, False)
    assert site.seats() == 1
    site.demo.set_active(bob, True)
    assert site.seats() == 2
    site.demo.delete_user(alice)
    assert site.seats() == 1

    roster = {seat.identity: seat.active for seat in site.tracker.directory.roster(DEMO_SLUG)}
    assert roster == {BOB: True, CAROL: False}
    assert kinds(site)[:3] == [
        ("member.deleted", ALICE),
        ("member.reactivated", BOB),
        ("member.deactivated", BOB),
    ]


def test_a_first_sign_in_takes_a_seat(tracker_site: TrackerSite) -> None:
    site = tracker_site

    landed = sign_in(requests.Session(), site.url, ALICE, ALICE)

    assert landed.status_code == 200 and "Signed in as" in landed.text
    assert site.seats() == 1
    assert [kind for kind, who in kinds(site) if who == ALICE] == [
        "member.signed_in",
        "member.created",
    ]


def test_a_restarted_tracker_catches_up_and_counts_nothing_twice(
    tracker_site: TrackerSite,
) -> None:
    site = tracker_site
    site.demo.create_user(ALICE)
    bob = site.demo.create_user(BOB)
    seen = kinds(site)

    # Down: the middleware (another process, say) goes on without a follower.
    site.middleware.events.unsubscribe(site.tracker.follower.on_event)
    site.demo.create_user(CAROL)
    site.demo.set_active(bob, False)
    assert site.seats() == 2  # nothing heard meanwhile

    site.restart()  # a new tracker on the same file, following from its stored cursor

    assert site.seats() == 2  # alice and carol
    assert kinds(site) == [("member.deactivated", BOB), ("member.created", CAROL), *seen]

    site.restart()  # nothing new: nothing applied twice
    assert site.seats() == 2 and len(kinds(site)) == len(seen) + 2


def test_an_event_delivered_twice_is_applied_once(tracker_site: TrackerSite) -> None:
    site = tracker_site
    site.demo.create_user(ALICE)
    bob = site.demo.create_user(BOB)
    site.demo.set_active(bob, False)
    before = kinds(site)

    # At-least-once: the stored cursor falls back (a crash before it was saved), so the
    # whole feed is read again.
    with sqlite3.connect(site.tracker_path) as connection:
        connection.execute("DELETE FROM feed_cursors")
    connection.close()
    assert site.tracker.follower.catch_up() == 0

    assert site.seats() == 1 and kinds(site) == before
    # The in-process delivery of an event already read from the feed changes nothing either.
    (last,) = site.middleware.events.since(None, limit=1000)[-1:]
    site.tracker.follower.on_event(last)
    assert site.seats() == 1 and kinds(site) == before


def test_two_workers_on_one_file_count_each_event_once(tracker_site: TrackerSite) -> None:
    site = tracker_site
    for number in range(12):
        site.demo.create_user(f"person{number}@example.com")
    workers = [site.new_tracker() for _ in range(4)]  # four processes' trackers, one file
    for worker in workers:
        worker.follow(site.middleware)
    # Forget everything, then let all of them read the whole feed at once.
    with sqlite3.connect(site.tracker_path) as connection:
        connection.execute("DELETE FROM feed_cursors")
        connection.execute("DELETE FROM activity")
        connection.execute("DELETE FROM seats")
    connection.close()
    start = threading.Barrier(len(workers))
    applied: list[int] = []

    def catch_up(worker: object) -> None:
        start.wait(10)
        applied.append(worker.follower.catch_up())  # type: ignore[attr-defined]

    threads = [threading.Thread(target=catch_up, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(applied) == 12 and len(applied) == len(workers)
    assert site.seats() == 12
    assert len(kinds(site)) == 12


def test_a_hostile_workspace_never_reaches_another_workspaces_seats_or_activity(
    tracker_site: TrackerSite,
) -> None:
    site = tracker_site
    site.demo.create_user(ALICE)
    # evil may not provision demo's verified addresses; it churns through people of its own.
    refused = requests.post(
        f"{site.evil.url}/Users",
        json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": ALICE},
        headers=site.evil.headers,
        timeout=10,
    )
    assert refused.status_code == 400
    for user_name in ("alice.smith@evil.test", "bob.jones@evil.test", "owner@evil.test"):
        member = site.evil.create_user(user_name)
        site.evil.set_active(member, False)
        site.evil.set_active(member, True)
    evil_member = site.evil.create_user("mallory@evil.test")
    site.evil.create_group("Admins", [evil_member])
    site.evil.delete_user(evil_member)

    assert site.seats() == 1
    assert kinds(site) == [("member.created", ALICE)]
    assert site.seats(EVIL) == 3  # and evil's own view is whole: the test can tell them apart
    evil_kinds = kinds(site, EVIL)
    assert ("group.created", "Admins") in evil_kinds
    # No domain verified: evil's people are "evil:<id>", never an address demo's people hold.
    people = [who for kind, who in evil_kinds if kind != "group.created"]
    assert len(people) == 3 * 3 + 3 and all(who.startswith(f"{EVIL}:") for who in people)
