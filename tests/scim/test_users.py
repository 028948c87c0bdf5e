"""/Users: Okta's and Entra's request sequences replayed, plus the RFC's corners."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import pytest
import requests
from sqlalchemy import select

from webwork_sso_middleware.errors import NotFound
from webwork_sso_middleware.store.models import AuditEvent, Member, Membership, Workspace

from ..constants import PATCH_OP, SCIM_HEADERS
from ..store_helpers import Statements, transaction
from .conftest import ScimClient, okta_user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def stored_member(middleware, member_id: str) -> Member:
    with transaction(middleware.database) as unit:
        member = unit.session.get(Member, member_id)
        assert member is not None
        unit.session.expunge_all()
        return member


# -- Okta, over real HTTP -----------------------------------------------------------------------


def test_okta_provisioning_lifecycle_over_http(live: requests.Session, middleware):
    base = live.base  # type: ignore[attr-defined]
    email = "ada@acme.test"
    # 1. Okta checks whether the user exists.
    found = live.get(
        f"{base}/Users", params={"filter": f'userName eq "{email}"', "startIndex": 1, "count": 100}
    )
    assert found.status_code == 200
    assert found.headers["Content-Type"].startswith("application/scim+json")
    assert found.json()["totalResults"] == 0 and found.json()["Resources"] == []
    # 2. Push new user.
    created = live.post(f"{base}/Users", json=okta_user(email), headers=SCIM_HEADERS)
    assert created.status_code == 201
    user = created.json()
    assert created.headers["Location"] == user["meta"]["location"]
    assert user["meta"]["location"] == f"https://tracker.example.com/scim/v2/Users/{user['id']}"
    assert created.headers["ETag"] == user["meta"]["version"]
    assert user["userName"] == email and user["active"] is True
    assert user["name"] == {"givenName": "Ada", "familyName": "Lovelace"}
    assert user["emails"] == [{"value": email, "type": "work", "primary": True}]
    assert user["externalId"] == "00uada" and user["locale"] == "en-US"
    assert "password" not in user
    # The lookup now finds exactly that user, whatever the case Okta uses.
    found = live.get(
        f"{base}/Users",
        params={"filter": 'userName eq "ADA@acme.TEST"', "startIndex": 1, "count": 100},
    ).json()
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == user["id"]
    # 3. Profile push: GET then PUT of the whole object.
    current = live.get(f"{base}/Users/{user['id']}").json()
    current["name"]["familyName"] = "King"
    current["displayName"] = "Ada King"
    current["password"] = "ignored"
    updated = live.put(f"{base}/Users/{user['id']}", json=current, headers=SCIM_HEADERS)
    assert updated.status_code == 200
    assert updated.json()["name"]["familyName"] == "King"
    assert updated.json()["meta"]["version"] != user["meta"]["version"]
    # 4. Deactivate, then reactivate.
    off = live.patch(
        f"{base}/Users/{user['id']}",
        headers=SCIM_HEADERS,
        json=patch_body({"op": "replace", "value": {"active": False}}),
    )
    assert off.status_code == 200 and off.json()["active"] is False
    assert off.json()["displayName"] == "Ada King"  # every field kept
    member = stored_member(middleware, user["id"])
    assert member.active is False and member.deactivated_at is not None
    assert member.session_generation == 1  # live sessions end
    on = live.patch(
        f"{base}/Users/{user['id']}",
        headers=SCIM_HEADERS,
        json=patch_body({"op": "replace", "value": {"active": True}}),
    )
    assert on.json()["active"] is True
    assert stored_member(middleware, user["id"]).deactivated_at is None
    with transaction(middleware.database) as unit:
        actions = list(
            unit.session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.target_id == user["id"])
                .order_by(AuditEvent.id)
            )
        )
    assert actions == ["created", "updated", "deactivated", "reactivated"]


def test_okta_password_is_accepted_and_never_stored(scim: ScimClient, middleware):
    user = scim.post("/Users", okta_user("p@acme.test", password="S3cret!pass")).json
    assert "password" not in user
    with middleware.database.engine.connect() as conn:
        dump = "\n".join(
            str(row)
            for table in ("members", "member_values", "audit_events")
            for row in conn.exec_driver_sql(f"SELECT * FROM {table}")
        )
    assert "S3cret!pass" not in dump


def test_duplicate_username_in_any_case_is_409_uniqueness(scim: ScimClient, middleware):
    scim.post("/Users", okta_user("dup@acme.test"))
    response = scim.post("/Users", okta_user("DUP@Acme.Test"), status=409)
    assert response.json["scimType"] == "uniqueness"
    assert response.json["status"] == "409"
    assert scim.get("/Users").json["totalResults"] == 1
    # Nothing of the refused create stays: its values, audit record and event went with it.
    with middleware.database.engine.connect() as conn:
        counts = [
            conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()
            for table in ("members", "member_values", "audit_events", "lifecycle_events")
        ]
    assert counts == [1, 1, 1, 1]


def test_a_created_members_unset_columns_hold_sql_null(scim: ScimClient, middleware):
    """A create is plain INSERTs (store/members.insert_new): what it leaves unset is NULL, as
    the ORM left it, and never JSON's 'null' (which IS NULL would not find)."""
    scim.post("/Users", okta_user("nul@acme.test"))
    with middleware.database.engine.connect() as conn:
        unset = conn.exec_driver_sql(
            "SELECT sign_in_groups IS NULL, extensions IS NULL, last_login_at IS NULL,"
            " deactivated_at IS NULL, deleted_at IS NULL FROM members"
        ).one()
    assert tuple(unset) == (True,) * 5


def most_values(email: str, count: int = 100) -> dict[str, Any]:
    """A User with ``count`` values of every multi-valued attribute (100: the most it takes)."""
    body = okta_user(email)
    for attribute in ("emails", "phoneNumbers", "ims", "photos", "entitlements", "roles"):
        body[attribute] = [{"value": f"{attribute}{n}-{email}"} for n in range(count)]
    body["x509Certificates"] = [{"value": f"MII{n}"} for n in range(count)]
    body["addresses"] = [{"locality": f"Town {n}", "country": "DE"} for n in range(count)]
    return body


def test_the_largest_create_lands_whole_and_reads_back_in_order(scim: ScimClient, middleware):
    """800 values (the most SCIM takes) are 11,255 parameters: one statement on PostgreSQL,
    within its 65,535."""
    created = scim.post("/Users", most_values("most@acme.test")).json
    read = scim.get(f"/Users/{created['id']}").json
    assert read == created
    assert [e["value"] for e in read["emails"]] == [f"emails{n}-most@acme.test" for n in range(100)]
    assert [a["locality"] for a in read["addresses"]] == [f"Town {n}" for n in range(100)]
    with middleware.database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM member_values").scalar_one() == 800


def test_creates_of_many_values_leave_no_large_statement_prepared(scim: ScimClient, middleware):
    """psycopg prepares what a connection ran 5 times and keeps up to 100 statements; a
    create's combined statement differs with its count of values, and one of some hundred
    writes holds megabytes of the server's memory once prepared. A client varying the count
    must not make the server keep one such statement after another."""
    if middleware.database.is_sqlite:
        pytest.skip("nothing is prepared on SQLite")
    for n in range(6):
        scim.post("/Users", most_values(f"many{n}@acme.test", count=10))
    with middleware.database.engine.connect() as conn:
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements")
        largest = max((s.count("INSERT INTO") for s in prepared.scalars()), default=0)
    assert largest <= 8


@pytest.mark.parametrize(
    "spelling",
    [
        "dave@acme.test ",
        " dave@acme.test",
        "Dave@ACME.test",
        "\uff44ave@acme.test",  # full-width d
        "da\u0301ve@acme.test",  # NFD of the NFC name below
    ],
)
def test_look_alike_spellings_are_one_member(scim: ScimClient, spelling: str):
    first = "d\u00e1ve@acme.test" if "\u0301" in spelling else "dave@acme.test"
    created = scim.post("/Users", okta_user(first)).json
    response = scim.post("/Users", okta_user(spelling), status=409)
    assert response.json["scimType"] == "uniqueness"
    # ... and Okta's and Entra's look-up by userName finds the member whatever the spelling.
    found = scim.get("/Users", filter=f'userName eq "{spelling}"').json
    assert [r["id"] for r in found["Resources"]] == [created["id"]]


def test_user_names_are_stored_trimmed_in_nfc(scim: ScimClient):
    created = scim.post("/Users", okta_user("  da\u0301ve@acme.test\t")).json
    assert created["userName"] == "d\u00e1ve@acme.test"


@pytest.mark.parametrize("invisible", ["\u200b", "\u00ad", "\u200d", "\u202e", "\x07", "\u2028"])
def test_user_names_with_invisible_or_control_characters_are_refused(
    scim: ScimClient, invisible: str
):
    response = scim.post("/Users", okta_user(f"da{invisible}ve@acme.test"), status=400)
    assert response.json["scimType"] == "invalidValue"
    assert f"U+{ord(invisible):04X}" in response.json["detail"]
    assert scim.get("/Users").json["totalResults"] == 0


def test_get_unknown_id_is_404(scim: ScimClient):
    body = scim.get("/Users/does-not-exist", status=404).json
    assert body["status"] == "404" and "does-not-exist" in body["detail"]


# -- Entra ID -----------------------------------------------------------------------------------


def test_entra_dialect(scim: ScimClient):
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "entra-42",
        "userName": "grace@acme.test",
        "active": True,
        "displayName": "Grace Hopper",
        "emails": [{"primary": True, "type": "work", "value": "grace@acme.test"}],
        "name": {"formatted": "Grace Hopper", "familyName": "Hopper", "givenName": "Grace"},
        ENTERPRISE: {"department": "Navy", "employeeNumber": 1906},
    }
    user = scim.post("/Users", body).json
    assert user[ENTERPRISE] == {"department": "Navy", "employeeNumber": "1906"}
    # Entra's lookups.
    by_external = scim.get("/Users", filter='externalId eq "entra-42"').json
    assert [r["id"] for r in by_external["Resources"]] == [user["id"]]
    assert scim.get("/Users", filter='externalId eq "ENTRA-42"').json["totalResults"] == 0
    by_email = scim.get("/Users", filter='emails[type eq "work"].value eq "GRACE@acme.test"').json
    assert [r["id"] for r in by_email["Resources"]] == [user["id"]]
    # Capitalised ops, string booleans, dotted and URN keys.
    patched = scim.patch(
        f"/Users/{user['id']}",
        patch_body(
            {"op": "Replace", "path": "active", "value": "False"},
            {
                "op": "replace",
                "value": {
                    "name.givenName": "Amazing Grace",
                    f"{ENTERPRISE}:department": "Computing",
                },
            },
        ),
    ).json
    assert patched["active"] is False
    assert patched["name"]["givenName"] == "Amazing Grace"
    assert patched["name"]["familyName"] == "Hopper"
    assert patched[ENTERPRISE]["department"] == "Computing"
    assert patched[ENTERPRISE]["employeeNumber"] == "1906"
    manager = scim.patch(
        f"/Users/{user['id']}",
        patch_body({"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "mgr-1"}),
    ).json
    assert manager[ENTERPRISE]["manager"]["value"] == "mgr-1"


# -- the RFC's corners --------------------------------------------------------------------------


@pytest.fixture
def five(scim: ScimClient) -> list[dict[str, Any]]:
    names = ["carol", "alice", "erin", "bob", "dave"]
    return [scim.post("/Users", okta_user(f"{n}@acme.test", given=n.title())).json for n in names]


def test_pagination_per_rfc(scim: ScimClient, five):
    page = scim.get("/Users", startIndex=2, count=2, sortBy="userName").json
    assert page["totalResults"] == 5 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert [r["userName"] for r in page["Resources"]] == ["bob@acme.test", "carol@acme.test"]
    zero = scim.get("/Users", count=0).json
    assert zero["totalResults"] == 5 and zero["Resources"] == [] and zero["itemsPerPage"] == 0
    negative = scim.get("/Users", startIndex=-3, count=-1).json
    assert negative["startIndex"] == 1 and negative["itemsPerPage"] == 0
    beyond = scim.get("/Users", startIndex=50).json
    assert beyond["totalResults"] == 5 and beyond["Resources"] == []
    assert scim.get("/Users", count="many", status=400).json["scimType"] == "invalidValue"


def test_the_last_page_read_backwards_over_http_matches_the_whole_list(scim: ScimClient, five):
    """A page past the middle is read from the end (store/scim_totals.py): the same users, in
    the same order, as the slice of the whole list; totalResults follows a delete."""
    everyone = [r["userName"] for r in scim.get("/Users", sortBy="userName").json["Resources"]]
    scim.delete(f"/Users/{scim.get('/Users', sortBy='userName').json['Resources'][1]['id']}")
    del everyone[1]
    for start in range(1, 6):
        page = scim.get("/Users", startIndex=start, count=2, sortBy="userName").json
        assert page["totalResults"] == 4
        assert [r["userName"] for r in page["Resources"]] == everyone[start - 1 : start + 1]


def test_a_create_reads_no_memberships_back(scim: ScimClient, middleware):
    """A new member is in no group: the 201 is rendered without a SELECT of memberships."""
    with Statements(middleware.database) as statements:
        scim.post("/Users", okta_user("new@acme.test"))
    assert statements.seen and not statements.matching("FROM memberships")


def test_count_is_capped_at_the_advertised_ceiling(scim: ScimClient, middleware, five):
    ceiling = middleware.settings.scim_max_results
    page = scim.get("/Users", count=ceiling * 10).json
    assert page["itemsPerPage"] == 5  # all there are, and never more than the ceiling
    assert ceiling < ceiling * 10


def test_sort_by_and_order(scim: ScimClient, five):
    down = scim.get("/Users", sortBy="name.givenName", sortOrder="descending").json
    assert [r["name"]["givenName"] for r in down["Resources"]] == [
        "Erin",
        "Dave",
        "Carol",
        "Bob",
        "Alice",
    ]
    assert scim.get("/Users", sortBy="password", status=400).json["scimType"] == "invalidPath"


def test_a_filter_is_checked_before_the_sort(scim: ScimClient):
    """Both wrong: the filter's error is the one answered, for Users and for Groups."""
    for endpoint in ("/Users", "/Groups"):
        refused = scim.get(endpoint, filter="nosuch pr", sortBy="password", status=400).json
        assert refused["scimType"] == "invalidFilter"


def test_attributes_and_excluded_attributes(scim: ScimClient, five):
    only = scim.get("/Users", attributes="userName,name.givenName", count=1).json["Resources"][0]
    assert set(only) == {"schemas", "id", "userName", "name"}
    assert set(only["name"]) == {"givenName"}
    without = scim.get("/Users", excludedAttributes="emails,name", count=1).json["Resources"][0]
    assert "emails" not in without and "name" not in without and "userName" in without
    assert "id" in scim.get("/Users", excludedAttributes="id", count=1).json["Resources"][0]


def test_search_endpoint(scim: ScimClient, five):
    result = scim.post(
        "/Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'name.givenName sw "a" or userName ew "bob@acme.test"',
            "sortBy": "userName",
            "startIndex": 1,
            "count": 10,
            "attributes": ["userName"],
        },
        status=200,
    ).json
    assert [r["userName"] for r in result["Resources"]] == ["alice@acme.test", "bob@acme.test"]


def test_bad_filter_is_400_invalid_filter_naming_the_problem(scim: ScimClient):
    for bad in ["userName eq", 'userName zz "x"', 'bogus eq "x"', '(userName eq "x"']:
        body = scim.get("/Users", filter=bad, status=400).json
        assert body["scimType"] == "invalidFilter" and body["detail"], bad


def test_put_replaces_whole_resource_and_id_is_immutable(scim: ScimClient):
    user = scim.post("/Users", okta_user("r@acme.test", title="Engineer")).json
    replaced = scim.put(f"/Users/{user['id']}", {"userName": "r@acme.test", "active": True}).json
    assert "title" not in replaced and "name" not in replaced and "emails" not in replaced
    assert replaced["id"] == user["id"]
    moved = scim.put(
        f"/Users/{user['id']}", {"id": "other", "userName": "r@acme.test"}, status=400
    ).json
    assert moved["scimType"] == "mutability"
    missing = scim.put(f"/Users/{user['id']}", {"displayName": "no username"}, status=400).json
    assert missing["scimType"] == "invalidValue"


def test_put_to_a_taken_username_is_409_and_changes_nothing(scim: ScimClient):
    scim.post("/Users", okta_user("first@acme.test"))
    second = scim.post("/Users", okta_user("second@acme.test")).json
    changed = dict(second, userName="FIRST@acme.test", displayName="Changed")
    assert scim.put(f"/Users/{second['id']}", changed, status=409).json["scimType"] == "uniqueness"
    assert scim.get(f"/Users/{second['id']}").json["displayName"] == second["displayName"]


def test_etag_and_if_match(scim: ScimClient):
    user = scim.post("/Users", okta_user("e@acme.test")).json
    fetched = scim.get(f"/Users/{user['id']}")
    tag = fetched.headers["ETag"]
    assert tag == user["meta"]["version"] and tag.startswith('W/"')
    scim.get(f"/Users/{user['id']}", status=304, headers={"If-None-Match": tag})
    op = patch_body({"op": "replace", "path": "title", "value": "CTO"})
    stale = scim.patch(f"/Users/{user['id']}", op, status=412, headers={"If-Match": 'W/"999"'})
    assert stale.json["status"] == "412"
    assert "title" not in scim.get(f"/Users/{user['id']}").json
    fresh = scim.patch(f"/Users/{user['id']}", op, headers={"If-Match": tag})
    assert fresh.json["title"] == "CTO" and fresh.headers["ETag"] != tag
    scim.delete(f"/Users/{user['id']}", status=412, headers={"If-Match": tag})


def test_patch_without_change_keeps_version(scim: ScimClient):
    user = scim.post("/Users", okta_user("same@acme.test")).json
    again = scim.patch(
        f"/Users/{user['id']}", patch_body({"op": "replace", "value": {"active": True}})
    ).json
    assert again["meta"]["version"] == user["meta"]["version"]


def test_patch_errors_are_scim_errors_and_write_nothing(scim: ScimClient):
    user = scim.post("/Users", okta_user("pe@acme.test")).json
    for body, scim_type in [
        ({"Operations": [{"op": "jump", "path": "title", "value": "x"}]}, "invalidSyntax"),
        (patch_body({"op": "replace", "path": "nosuch", "value": "x"}), "invalidPath"),
        (patch_body({"op": "replace", "path": "active", "value": "maybe"}), "invalidValue"),
        (
            patch_body(
                {"op": "replace", "path": "title", "value": "ok"},
                {"op": "replace", "path": "groups", "value": []},
            ),
            "mutability",
        ),
        (patch_body({"op": "remove"}), "noTarget"),
    ]:
        response = scim.patch(f"/Users/{user['id']}", body, status=400)
        assert response.json["scimType"] == scim_type, body
    assert "title" not in scim.get(f"/Users/{user['id']}").json


def test_deactivation_keeps_fields_and_memberships(scim: ScimClient, middleware):
    user = scim.post("/Users", okta_user("keep@acme.test", title="Lead")).json
    group = scim.post("/Groups", {"displayName": "Eng", "members": [{"value": user["id"]}]}).json
    off = scim.patch(
        f"/Users/{user['id']}", patch_body({"op": "replace", "value": {"active": False}})
    ).json
    assert off["title"] == "Lead" and off["groups"][0]["value"] == group["id"]
    assert scim.get(f"/Groups/{group['id']}").json["members"][0]["value"] == user["id"]
    on = scim.put(f"/Users/{user['id']}", dict(off, active=True)).json
    assert on["active"] is True and on["groups"][0]["display"] == "Eng"


def test_delete_hides_from_scim_but_keeps_the_member_deactivated(scim: ScimClient, middleware):
    user = scim.post("/Users", okta_user("gone@acme.test")).json
    group = scim.post("/Groups", {"displayName": "G", "members": [{"value": user["id"]}]}).json
    scim.delete(f"/Users/{user['id']}")
    scim.get(f"/Users/{user['id']}", status=404)
    scim.delete(f"/Users/{user['id']}", status=404)
    assert scim.get("/Users", filter='userName eq "gone@acme.test"').json["totalResults"] == 0
    assert "members" not in scim.get(f"/Groups/{group['id']}").json
    member = stored_member(middleware, user["id"])
    assert member.active is False and member.deleted_at is not None
    assert member.user_name == "gone@acme.test" and member.given_name == "Ada"
    # The name is free again: an IdP may provision the person anew.
    again = scim.post("/Users", okta_user("gone@acme.test")).json
    assert again["id"] != user["id"]


def test_unknown_core_attributes_are_ignored_and_foreign_extensions_kept(scim: ScimClient):
    body = okta_user("x@acme.test", nonsense=1, **{"urn:okta:custom:1.0:User": {"shoe": 42}})
    user = scim.post("/Users", body).json
    assert "nonsense" not in user
    # An IdP's own extension is kept as sent (scim/extensions.py; tests/scim/test_extensions.py).
    assert user["urn:okta:custom:1.0:User"] == {"shoe": 42}
    assert "urn:okta:custom:1.0:User" in user["schemas"]


def test_attribute_names_in_bodies_are_case_insensitive(scim: ScimClient):
    user = scim.post(
        "/Users",
        {
            "USERNAME": "case@acme.test",
            "Name": {"GIVENNAME": "C"},
            "Emails": [{"Value": "case@acme.test", "Primary": True}],
        },
    ).json
    assert user["userName"] == "case@acme.test"
    assert user["name"] == {"givenName": "C"}
    assert user["emails"] == [{"value": "case@acme.test", "primary": True}]


@pytest.mark.parametrize(
    "body",
    [
        {"userName": 5},
        {"userName": "a@b.test", "active": "sometimes"},
        {"userName": "a@b.test", "emails": "a@b.test"},
        {"userName": "a@b.test", "name": "Ada"},
        {"userName": "x" * 300},
        {"userName": "a@b.test", "emails": [{"value": "a@b.test"}] * 101},
    ],
)
def test_invalid_user_bodies_are_400_and_write_nothing(scim: ScimClient, body):
    response = scim.post("/Users", body, status=400)
    assert response.json["scimType"] in ("invalidValue", "invalidSyntax")
    assert scim.get("/Users").json["totalResults"] == 0


# -- concurrency ------------------------------------------------------------------------------


def test_parallel_creates_of_one_username_give_one_201(live: requests.Session, middleware):
    base = live.base  # type: ignore[attr-defined]
    token = live.headers["Authorization"]
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        with requests.Session() as session:
            session.headers["Authorization"] = token
            barrier.wait()
            body = okta_user("race@acme.test" if i % 2 else "RACE@acme.test")
            statuses.append(session.post(f"{base}/Users", json=body, timeout=60).status_code)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [409] * 7
    with transaction(middleware.database) as unit:
        assert len(list(unit.session.scalars(select(Member.id)))) == 1


def test_parallel_patches_lose_no_update(live: requests.Session, middleware):
    """Each client adds its own email; version checks and retries keep all of them."""
    base = live.base  # type: ignore[attr-defined]
    user = live.post(f"{base}/Users", json={"userName": "many@acme.test"}).json()
    errors: list[int] = []

    def add(i: int) -> None:
        with requests.Session() as session:
            session.headers["Authorization"] = live.headers["Authorization"]
            response = session.patch(
                f"{base}/Users/{quote(user['id'])}",
                json=patch_body(
                    {"op": "add", "path": "emails", "value": [{"value": f"m{i}@acme.test"}]}
                ),
                timeout=60,
            )
            if response.status_code != 200:
                errors.append(response.status_code)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = live.get(f"{base}/Users/{user['id']}").json()
    assert sorted(e["value"] for e in final["emails"]) == sorted(
        f"m{i}@acme.test" for i in range(6)
    )


def test_memberships_survive_only_for_live_rows(scim: ScimClient, middleware):
    user = scim.post("/Users", okta_user("m@acme.test")).json
    scim.post("/Groups", {"displayName": "A", "members": [{"value": user["id"]}]})
    scim.delete(f"/Users/{user['id']}")
    with transaction(middleware.database) as unit:
        assert list(unit.session.scalars(select(Membership))) == []


# -- fidelity: what a client writes is what it reads back -----------------------------------------

MULTI_VALUED = ("emails", "phoneNumbers", "ims", "photos", "roles", "entitlements")


@pytest.mark.parametrize("op", ["add", "replace"])
def test_primary_false_reads_back_false_and_absent_reads_back_absent(scim: ScimClient, op: str):
    user = scim.post("/Users", {"userName": f"p-{op}@acme.test"}).json
    values = {
        name: [
            {"value": f"{name}-1", "type": "work", "primary": False},
            {"value": f"{name}-2", "type": "home", "primary": True},
            {"value": f"{name}-3", "type": "other"},
        ]
        for name in (*MULTI_VALUED, "x509Certificates")
    }
    values["addresses"] = [
        {"locality": "Paris", "type": "work", "primary": False},
        {"locality": "Lyon", "type": "home"},
    ]
    operations = [{"op": op, "path": name, "value": value} for name, value in values.items()]
    patched = scim.patch(f"/Users/{user['id']}", patch_body(*operations)).json
    read = scim.get(f"/Users/{user['id']}").json
    for name, value in values.items():
        assert patched[name] == value and read[name] == value, name
    # A pathless PUT writes the same way.
    put = scim.put(f"/Users/{user['id']}", {"userName": user["userName"], **values}).json
    assert all(put[name] == value for name, value in values.items())


def test_filtered_primary_false_is_kept(scim: ScimClient):
    user = scim.post("/Users", okta_user("pf@acme.test")).json
    path = 'emails[type eq "work"].primary'
    patched = scim.patch(
        f"/Users/{user['id']}", patch_body({"op": "replace", "path": path, "value": False})
    ).json
    assert patched["emails"] == [{"value": "pf@acme.test", "type": "work", "primary": False}]
    # Marking another primary sets the former one's to false (RFC 7644 section 3.5.2).
    added = scim.patch(
        f"/Users/{user['id']}",
        patch_body(
            {"op": "replace", "path": path, "value": True},
            {"op": "add", "path": "emails", "value": [{"value": "h@acme.test", "primary": True}]},
        ),
    ).json
    assert added["emails"] == [
        {"value": "pf@acme.test", "type": "work", "primary": False},
        {"value": "h@acme.test", "primary": True},
    ]


def _session_cookie(middleware, member_id: str) -> dict[str, Any]:
    """Start a session the way the ACS does; the environ of a request that carries it."""
    with transaction(middleware.database, write=True) as unit:
        member = unit.session.get(Member, member_id)
        assert member is not None
        # A session identifies only while SSO is on; these tests need no IdP to start one.
        unit.session.get(Workspace, member.workspace_id).sso_enabled = True  # type: ignore[union-attr]
        set_cookie = middleware.sessions.start(member_id, member.workspace_id, unit)
    return {"HTTP_COOKIE": set_cookie.split(";", 1)[0]}


def test_removing_active_unassigns_it_and_the_member_stays_signed_in(scim: ScimClient, middleware):
    """An unassigned ``active`` reads back absent and counts as active for sign-in."""
    user = scim.post("/Users", okta_user("ra@acme.test")).json
    environ = _session_cookie(middleware, user["id"])
    removed = scim.patch(f"/Users/{user['id']}", patch_body({"op": "remove", "path": "active"}))
    assert (
        "active" not in removed.json and removed.json["meta"]["version"] != user["meta"]["version"]
    )
    assert "active" not in scim.get(f"/Users/{user['id']}").json
    found = middleware.sessions.identify(environ)
    assert found is not None and found[0].active is True  # the live session goes on
    member = stored_member(middleware, user["id"])
    assert member.active is True and member.deactivated_at is None
    assert member.session_generation == 0
    _session_cookie(middleware, user["id"])  # and a new one may start
    # Given again, it reads back again.
    again = scim.patch(
        f"/Users/{user['id']}", patch_body({"op": "add", "path": "active", "value": True})
    ).json
    assert again["active"] is True


def test_removing_active_of_a_deactivated_member_reactivates_it(scim: ScimClient, middleware):
    user = scim.post("/Users", okta_user("rd@acme.test")).json
    scim.patch(f"/Users/{user['id']}", patch_body({"op": "replace", "value": {"active": False}}))
    _session_cookie_refused(middleware, user["id"])
    scim.patch(f"/Users/{user['id']}", patch_body({"op": "remove", "path": "active"}))
    member = stored_member(middleware, user["id"])
    assert member.active is True and member.deactivated_at is None
    _session_cookie(middleware, user["id"])  # may sign in again
    with transaction(middleware.database) as unit:
        actions = unit.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.target_id == user["id"])
            .order_by(AuditEvent.id)
        ).all()
    assert actions == ["created", "deactivated", "reactivated"]


def _session_cookie_refused(middleware, member_id: str) -> None:
    """A deactivated member gets no session."""
    workspace_id = stored_member(middleware, member_id).workspace_id
    with pytest.raises(NotFound), transaction(middleware.database, write=True) as unit:
        middleware.sessions.start(member_id, workspace_id, unit)


def test_post_and_put_without_active_do_not_assert_it(scim: ScimClient, middleware):
    """RFC 7644 3.5.1: an omitted readWrite attribute may be kept or defaulted. OneLogin's
    template PUTs every profile change without active: it must not reactivate anyone."""
    user = scim.post("/Users", {"userName": "na@acme.test"}).json
    assert user["active"] is True
    off = scim.put(f"/Users/{user['id']}", {"userName": "na@acme.test", "active": False}).json
    assert off["active"] is False
    kept = scim.put(f"/Users/{user['id']}", {"userName": "na@acme.test", "title": "T"}).json
    assert kept["active"] is False and stored_member(middleware, user["id"]).active is False
    scim.patch(f"/Users/{user['id']}", patch_body({"op": "remove", "path": "active"}))
    unassigned = scim.put(f"/Users/{user['id']}", {"userName": "na@acme.test"}).json
    assert "active" not in unassigned


def test_a_filter_on_active_sees_what_the_document_shows(scim: ScimClient):
    unassigned = scim.post("/Users", {"userName": "fa@acme.test"}).json["id"]
    scim.patch(f"/Users/{unassigned}", patch_body({"op": "remove", "path": "active"}))
    assigned = scim.post("/Users", okta_user("fb@acme.test")).json["id"]
    found = {u["id"] for u in scim.get("/Users", filter="active eq true").json["Resources"]}
    assert assigned in found and unassigned not in found
    absent = scim.get("/Users", filter="not (active pr)").json["Resources"]
    assert [u["id"] for u in absent] == [unassigned]
