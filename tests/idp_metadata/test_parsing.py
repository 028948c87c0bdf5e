"""IdP metadata: safe parsing, what is extracted, the refresh schedule (fetching: test_fetching)."""

from __future__ import annotations

import datetime as dt

import pytest

from webwork_sso_middleware.errors import MetadataError, WebworkSSOError
from webwork_sso_middleware.idp_metadata.parsing import (
    BINDING_POST,
    BINDING_REDIRECT,
    IdPMetadata,
    load_pysaml2,
    next_refresh,
    parse,
)

from .metadata_samples import (
    OKTA_ENTITY_ID,
    OKTA_SSO_POST,
    certificate,
    certificate_text,
    entity_descriptor,
    fingerprint,
    key_descriptor,
    okta_metadata,
    sso_services,
)

UTC = dt.UTC
MD = 'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"'


def refused(xml: str, *fragments: str) -> MetadataError:
    with pytest.raises(MetadataError) as caught:
        parse(xml)
    for fragment in fragments:
        assert fragment in caught.value.reason, caught.value.reason
    return caught.value


# -- parse: what comes out ----------------------------------------------------------------------


def test_okta_metadata_gives_entity_id_sso_urls_and_the_signing_certificate() -> None:
    cert = certificate("acme")

    parsed = parse(okta_metadata(cert))

    assert parsed.entity_id == OKTA_ENTITY_ID
    assert parsed.sso_urls == {BINDING_POST: OKTA_SSO_POST, BINDING_REDIRECT: OKTA_SSO_POST}
    assert parsed.sso_url == OKTA_SSO_POST
    (signing,) = parsed.signing_certificates
    assert signing.sha256_fingerprint == fingerprint(cert)
    assert len(signing.sha256_fingerprint) == 32 * 3 - 1 and signing.sha256_fingerprint.isupper()
    assert signing.not_after == cert.not_valid_after_utc
    assert signing.subject == "CN=acme,O=Okta,C=US"
    assert signing.der_base64 == certificate_text(cert, wrap=False)
    assert signing.pem.startswith("-----BEGIN CERTIFICATE-----\n")
    assert (parsed.valid_until, parsed.cache_duration) == (None, None)


def test_the_stored_xml_parses_to_the_same_and_loads_in_pysaml2() -> None:
    parsed = parse(okta_metadata(certificate("a"), certificate("b")))

    assert not parsed.xml.startswith("<?xml")
    assert parse(parsed.xml) == parsed
    loaded = load_pysaml2(parsed.xml)
    assert OKTA_ENTITY_ID in loaded
    assert len(loaded.certs(OKTA_ENTITY_ID, "idpsso", use="signing")) == 2


def test_every_signing_certificate_is_kept_during_a_rollover() -> None:
    old, new = certificate("old"), certificate("new")

    parsed = parse(okta_metadata(old, new, old))  # listed twice: kept once

    assert [c.sha256_fingerprint for c in parsed.signing_certificates] == [
        fingerprint(old), fingerprint(new),
    ]  # fmt: skip


def test_a_key_without_use_signs_and_an_encryption_key_does_not() -> None:
    signing, encryption = certificate("any-use"), certificate("encryption")
    keys = key_descriptor(encryption, use="encryption") + key_descriptor(signing, use=None)

    parsed = parse(entity_descriptor(keys=keys))

    assert [c.sha256_fingerprint for c in parsed.signing_certificates] == [fingerprint(signing)]


def test_an_sso_url_with_one_binding_is_enough() -> None:
    parsed = parse(entity_descriptor(services=sso_services(redirect=None)))

    assert parsed.sso_urls == {BINDING_POST: OKTA_SSO_POST}
    assert parsed.sso_url == OKTA_SSO_POST


def test_an_entities_descriptor_with_one_idp_among_other_entities() -> None:
    idp = entity_descriptor(declaration=False)
    sp = (
        '<md:EntityDescriptor entityID="https://sp.example/metadata"><md:SPSSODescriptor'
        ' protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"'
        ' Location="https://sp.example/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>'
    )
    xml = (
        f'<md:EntitiesDescriptor {MD} validUntil="2099-01-01T00:00:00Z" cacheDuration="PT6H">'
        f"{sp}{idp}</md:EntitiesDescriptor>"
    )

    parsed = parse(xml)

    assert parsed.entity_id == OKTA_ENTITY_ID
    assert parsed.valid_until == dt.datetime(2099, 1, 1, tzinfo=UTC)
    assert parsed.cache_duration == dt.timedelta(hours=6)
    assert parsed.xml.startswith("<md:EntityDescriptor") and "sp.example" not in parsed.xml


def test_an_entities_descriptor_with_two_idps_is_refused() -> None:
    one = entity_descriptor(declaration=False)
    two = entity_descriptor(entity_id="https://other.example/idp", declaration=False)

    refused(f"<md:EntitiesDescriptor {MD}>{one}{two}</md:EntitiesDescriptor>",
            "2 identity providers")  # fmt: skip


# -- parse: what is refused ---------------------------------------------------------------------


def test_metadata_without_a_signing_certificate_is_refused() -> None:
    refused(entity_descriptor(keys=""), "no signing certificate")
    refused(entity_descriptor(keys=key_descriptor(certificate(), use="encryption")),
            "no signing certificate")  # fmt: skip


def test_metadata_without_a_usable_sso_url_is_refused() -> None:
    refused(entity_descriptor(services=""), "no SingleSignOnService", "HTTP-Redirect")
    artifact = (
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"'
        ' Location="https://idp.example/sso"/>'
    )
    refused(entity_descriptor(services=artifact), "no SingleSignOnService", "HTTP-Artifact")
    soap = artifact.replace("HTTP-Artifact", "SOAP")
    refused(entity_descriptor(services=soap + artifact), "HTTP-Redirect or HTTP-POST", "SOAP")
    refused(entity_descriptor(services=sso_services(post="javascript:alert(1)", redirect=None)),
            "not an http(s) URL")  # fmt: skip


def test_a_stored_idp_without_a_usable_sso_url_can_still_be_read_when_asked() -> None:
    """The SP of a record stored before these checks reads its keys; sign-in start then says
    why it cannot send a request (tests/saml/test_login_flow.py)."""
    soap = (
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP"'
        ' Location="https://idp.example/sso"/>'
    )
    parsed = parse(entity_descriptor(services=soap), check_loadable=False, require_sso=False)
    assert parsed.sso_urls == {} and parsed.signing_certificates
    post_only = parse(entity_descriptor(services=sso_services(redirect=None)), require_sso=False)
    assert post_only.sso_urls == {BINDING_POST: OKTA_SSO_POST}


def test_a_certificate_that_does_not_decode_is_refused() -> None:
    bad = key_descriptor(certificate()).replace("MII", "!!!", 1)
    refused(entity_descriptor(keys=bad), "X509Certificate")
    not_a_certificate = key_descriptor(certificate()).replace(
        certificate_text(certificate()),
        "aGVsbG8=",  # base64 of "hello"
    )
    refused(entity_descriptor(keys=not_a_certificate), "X509Certificate")


def test_sp_metadata_or_saml1_only_metadata_is_no_idp() -> None:
    refused(okta_metadata().replace("IDPSSODescriptor", "SPSSODescriptor"), "no identity provider")
    saml1 = okta_metadata().replace(
        "urn:oasis:names:tc:SAML:2.0:protocol", "urn:oasis:names:tc:SAML:1.1:protocol"
    )
    refused(saml1, "no identity provider")


def test_an_entity_without_entity_id_is_refused() -> None:
    refused(entity_descriptor(entity_id=""), "entityID")


XXE = """<?xml version="1.0"?>
<!DOCTYPE md:EntityDescriptor [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&xxe;"/>"""
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<lolz>&lol3;</lolz>"""
EXTERNAL_DTD = (
    '<!DOCTYPE md:EntityDescriptor SYSTEM "http://127.0.0.1:9/evil.dtd">'
    + entity_descriptor(declaration=False)
)


@pytest.mark.parametrize("xml", [XXE, BILLION_LAUGHS, EXTERNAL_DTD], ids=["xxe", "laughs", "dtd"])
def test_any_dtd_is_refused_outright(xml: str) -> None:
    refused(xml, "DOCTYPE")


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("not xml at all", "not well-formed XML"),
        ('{"entityID": "x"}', "not well-formed XML"),
        (entity_descriptor()[:-40], "not well-formed XML"),
        ("<html><body>Sign in</body></html>", "<html>"),
        ("<EntityDescriptor entityID='x'/>", "not SAML 2.0 metadata"),
    ],
    ids=["empty", "blank", "text", "json", "truncated", "html", "no-namespace"],
)
def test_what_is_not_metadata_is_refused_saying_why(xml: str, fragment: str) -> None:
    error = refused(xml, fragment)
    assert isinstance(error, WebworkSSOError) and str(error).startswith("IdP metadata: ")


# -- endpoint URLs: plain printable ASCII --------------------------------------------------------

ENDPOINT_NOISE = {
    "newline": "&#10;",
    "carriage-return": "&#13;",
    "tab": "&#9;",
    "del": "\x7f",
    "c1-nel": "\x85",
    "space": " ",
    "non-latin-1": "\u0142",
    "line-separator": "\u2028",
}


@pytest.mark.parametrize("noise", ENDPOINT_NOISE.values(), ids=ENDPOINT_NOISE.keys())
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_an_sso_location_with_a_control_or_odd_character_is_refused(noise: str, where: str) -> None:
    # Stored, each of these made every sign-in a 500 (issue 9): refused when parsed.
    url = {
        "start": noise + OKTA_SSO_POST,
        "middle": OKTA_SSO_POST.replace("/sso/", f"/s{noise}o/"),
        "end": OKTA_SSO_POST + noise,
    }[where]
    error = refused(
        entity_descriptor(services=sso_services(post=url, redirect=None)),
        "SingleSignOnService Location",
        "printable ASCII",
    )
    assert "\n" not in error.reason and "\r" not in error.reason  # quoted escaped, as repr()


def test_any_endpoint_location_is_checked_not_only_single_sign_on() -> None:
    logout = (
        '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"'
        ' Location="https://idp.example/slo" ResponseLocation="https://idp.example/slo&#10;x"/>'
    )
    refused(
        entity_descriptor(services=logout + sso_services()),
        "SingleLogoutService ResponseLocation",
        "printable ASCII",
    )


def test_a_control_character_in_the_entity_id_is_refused() -> None:
    refused(entity_descriptor(entity_id="https://idp.example/&#10;evil"), "control character")


def test_percent_encoded_endpoint_urls_are_fine() -> None:
    url = "https://idp.example/sso/caf%C3%A9?x=%0A"
    assert parse(entity_descriptor(services=sso_services(post=url, redirect=None))).sso_url == url


# -- echo=False: for what the site fetched, nothing of the document comes back ---------------------

SECRET = "internal-secret-7f3a"


@pytest.mark.parametrize(
    "xml",
    [
        f"<{SECRET}/>",
        f"<root><{SECRET}></b></root>",
        entity_descriptor(services=sso_services(post=f"ftp://{SECRET}/", redirect=None)),
        entity_descriptor(services=sso_services(post=f"https://x/{SECRET}&#10;", redirect=None)),
        entity_descriptor(attributes=f' validUntil="{SECRET}"'),
        entity_descriptor(attributes=f' cacheDuration="{SECRET}"'),
        entity_descriptor(
            services='<md:SingleSignOnService Binding="urn:x:'
            + SECRET
            + '" Location="https://x/"/>'
        ),
    ],
    ids=["root", "malformed", "location", "control", "valid-until", "cache-duration", "binding"],
)
def test_without_echo_no_error_quotes_the_document(xml: str) -> None:
    with pytest.raises(MetadataError) as echoed:
        parse(xml)
    assert SECRET in echoed.value.reason  # pasted XML: the owner is told exactly what is wrong
    with pytest.raises(MetadataError) as quiet:
        parse(xml, echo=False)
    assert SECRET not in quiet.value.reason and quiet.value.reason


# -- validity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT8H", dt.timedelta(hours=8)),
        ("P1D", dt.timedelta(days=1)),
        ("PT30M", dt.timedelta(minutes=30)),
        ("P1DT12H", dt.timedelta(days=1, hours=12)),
        ("PT1.5S", dt.timedelta(seconds=1.5)),
        ("P2W", dt.timedelta(days=14)),
        ("P1Y", dt.timedelta(days=365)),
        ("P1M", dt.timedelta(days=30)),
        ("P9999Y", dt.timedelta(days=3650)),  # capped, not refused
    ],
)
def test_cache_duration_is_an_iso_8601_duration(text: str, expected: dt.timedelta) -> None:
    parsed = parse(entity_descriptor(attributes=f' cacheDuration="{text}"'))
    assert parsed.cache_duration == expected


@pytest.mark.parametrize("text", ["8 hours", "-PT1H", "P", "PT", "P1H", "PT8"])
def test_a_cache_duration_that_is_not_a_duration_is_refused(text: str) -> None:
    refused(entity_descriptor(attributes=f' cacheDuration="{text}"'), "cacheDuration")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01T00:00:00Z", dt.datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T00:00:00.123Z", dt.datetime(2030, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)),
        ("2030-01-01T02:00:00+02:00", dt.datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T00:00:00", dt.datetime(2030, 1, 1, tzinfo=UTC)),  # SAML times are UTC
    ],
)
def test_valid_until_is_read_as_utc(text: str, expected: dt.datetime) -> None:
    parsed = parse(entity_descriptor(attributes=f' validUntil="{text}"'))
    assert parsed.valid_until == expected


def test_the_earliest_valid_until_and_shortest_cache_duration_win() -> None:
    xml = entity_descriptor(
        attributes=' validUntil="2031-01-01T00:00:00Z" cacheDuration="PT1H"',
        role_attributes=' validUntil="2030-06-01T00:00:00Z" cacheDuration="P1D"',
    )

    parsed = parse(xml)

    assert parsed.valid_until == dt.datetime(2030, 6, 1, tzinfo=UTC)
    assert parsed.cache_duration == dt.timedelta(hours=1)


def test_a_valid_until_that_is_not_a_date_is_refused() -> None:
    refused(entity_descriptor(attributes=' validUntil="tomorrow"'), "validUntil")


def test_expired_metadata_parses_and_loads_so_the_last_good_copy_stays_usable() -> None:
    parsed = parse(entity_descriptor(attributes=' validUntil="2001-01-01T00:00:00Z"'))

    assert parsed.expired(dt.datetime.now(UTC))
    assert OKTA_ENTITY_ID in load_pysaml2(parsed.xml)  # pysaml2's own check would drop it


# -- next refresh ----------------------------------------------------------------------------------

FETCHED = dt.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def scheduled(
    valid_until: dt.datetime | None = None, cache_duration: dt.timedelta | None = None
) -> dt.datetime:
    sample = parse(okta_metadata())
    changed = IdPMetadata(sample.entity_id, sample.sso_urls, sample.signing_certificates,
                          valid_until, cache_duration, sample.xml)  # fmt: skip
    return next_refresh(changed, FETCHED)


def test_next_refresh_follows_valid_until_and_cache_duration_at_most_daily() -> None:
    assert scheduled() == FETCHED + dt.timedelta(days=1)
    assert scheduled(cache_duration=dt.timedelta(hours=8)) == FETCHED + dt.timedelta(hours=8)
    assert scheduled(cache_duration=dt.timedelta(days=7)) == FETCHED + dt.timedelta(days=1)
    soon = FETCHED + dt.timedelta(hours=2)
    assert scheduled(soon, dt.timedelta(hours=8)) == soon
    assert scheduled(FETCHED + dt.timedelta(days=30)) == FETCHED + dt.timedelta(days=1)


def test_next_refresh_never_hammers_the_idp() -> None:
    five_minutes = FETCHED + dt.timedelta(minutes=5)
    assert scheduled(cache_duration=dt.timedelta(0)) == five_minutes
    assert scheduled(cache_duration=dt.timedelta(seconds=30)) == five_minutes
    assert scheduled(FETCHED - dt.timedelta(days=1)) == five_minutes


@pytest.mark.parametrize(
    "attributes",
    [
        'Location="https://[idp.example/slo"',  # urlsplit cannot read it
        'Location="javascript:alert(1)"',
        'Location="https://idp.example/slo" ResponseLocation="ftp://idp.example/slo"',
        'Location="/relative/slo"',
    ],
)
def test_a_single_logout_url_that_is_not_http_is_refused(attributes: str) -> None:
    """Single logout sends the browser there: a URL it could not use would fail every logout
    the IdP starts (once its sessions were ended) instead of failing set-idp."""
    logout = (
        '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"'
        f" {attributes}/>"
    )
    refused(entity_descriptor(services=logout + sso_services()), "SingleLogoutService")
    # A record stored before this check is still read (the SP skips the endpoint).
    assert parse(
        entity_descriptor(services=logout + sso_services()), check_loadable=False, require_sso=False
    ).signing_certificates
