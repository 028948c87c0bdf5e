"""The pysaml2 wiring: SP and IdP factories, ``install`` and ``security_context`` on our backend.

Real pysaml2 IdP and SP objects, set up and run with no ``xmlsec1`` program anywhere; signatures made
with python-xmlsec directly (``xmlsec_sign``) where the SP must refuse them.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import saml2.sigver
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.response import IncorrectlySigned
from saml2.sigver import MissingKey, SignatureError, SigverError

from webwork_sso_middleware.saml.crypto import XmlsecBackend
from webwork_sso_middleware.saml.entities import install, make_client, security_context

from .conftest import ACS, SP_ID
from .idp import KeyPair, TestIdP, autopost_form, make_key_pair, pysaml2_sp_config
from .test_crypto import ids, parse, response_xml, rsa_key, tree, xmlsec_sign


def test_keyinfo_is_never_trusted_even_without_metadata_certificate(
    test_idp: TestIdP, attacker_keys: KeyPair
) -> None:
    """Metadata with no signing key: pysaml2 would fall back to the message's KeyInfo; we never do."""
    metadata = tree(test_idp.metadata_xml())
    for descriptor in metadata.iter("{urn:oasis:names:tc:SAML:2.0:metadata}KeyDescriptor"):
        descriptor.getparent().remove(descriptor)
    config = pysaml2_sp_config(SP_ID, ACS, [etree.tostring(metadata).decode()])
    config["only_use_keys_in_metadata"] = False  # even when a config asks for it
    sp = make_client(config)
    assert sp.sec.only_use_keys_in_metadata is True
    xml = response_xml(test_idp, sign_assertion=False)
    forged = xmlsec_sign(xml, ids(xml)[1], rsa_key(attacker_keys, with_cert=True), key_info=True)
    with pytest.raises(MissingKey):
        parse(sp, forged)


def test_pysaml2_cannot_quietly_build_another_context(sp: Saml2Client) -> None:
    assert isinstance(sp.sec.crypto, XmlsecBackend)
    assert isinstance(sp.metadata.security.crypto, XmlsecBackend)
    assert isinstance(security_context(sp.config).crypto, XmlsecBackend)
    with pytest.raises(SigverError, match="Unknown crypto_backend"):
        saml2.sigver.security_context(sp.config)


def test_install_serves_an_entity_built_by_other_code(test_idp: TestIdP) -> None:
    config = SPConfig().load(
        {
            **pysaml2_sp_config(SP_ID, ACS, [test_idp.metadata_xml()]),
            "crypto_backend": "XMLSecurity",
        }
    )
    client = Saml2Client(config=config)
    install(client)
    assert isinstance(client.sec.crypto, XmlsecBackend)
    assert parse(client, response_xml(test_idp)).name_id.text == "alice@acme.test"


def test_plain_pysaml2_set_up_needs_the_binary_which_is_why_the_factories_exist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, test_idp: TestIdP
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SigverError, match="xmlsec1"):
        SPConfig().load(pysaml2_sp_config(SP_ID, ACS, [test_idp.metadata_xml()]))


def test_no_xmlsec1_is_ever_looked_for_or_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, serve: Any, attacker_keys: KeyPair
) -> None:
    """IdP and SP set-up, signed remote metadata, AuthnRequest, IdP login and response parsing: all
    with no xmlsec1 on PATH and every way of starting a process booby-trapped."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert shutil.which("xmlsec1") is None

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"tried to start a process or find xmlsec1: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(saml2.sigver, "Popen", forbidden)  # imported by name before we could patch
    monkeypatch.setattr(saml2.sigver, "get_xmlsec_binary", forbidden)
    for name in ("system", "posix_spawn", "posix_spawnp", "fork", "execv", "execve"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, forbidden)

    idp = TestIdP.start(serve, tmp_path / "idp")
    idp.sign_metadata = True
    cert = tmp_path / "idp-metadata.crt"
    cert.write_bytes(idp.keys.cert_pem)
    config = pysaml2_sp_config(SP_ID, ACS, [])
    config["metadata"] = {"remote": [{"url": f"{idp.url}/idp/metadata", "cert": str(cert)}]}
    sp = make_client(config)  # fetched over HTTP, signature checked by our backend
    assert sp.metadata.certs(idp.entity_id, "idpsso", "signing")

    idp.sp_config(SP_ID, ACS)
    request_id, info = sp.prepare_for_authenticate(
        entityid=idp.entity_id, relay_state="/t", binding=BINDING_HTTP_REDIRECT
    )
    location = dict(info["headers"])["Location"]
    page = idp.wsgi_app(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/idp/sso",
            "QUERY_STRING": location.split("?", 1)[1],
        },
        lambda status, headers: None,
    )[0]
    action, fields = autopost_form(page)
    assert action == ACS and fields["RelayState"] == "/t"
    result = sp.parse_authn_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={request_id: "/t"}
    )
    assert result.name_id.text == "alice@acme.test" and result.in_response_to == request_id

    # An SP that signs its AuthnRequests: query-string signature (Redirect), XML signature (POST) that
    # the IdP verifies against the SP metadata.
    sp_key, sp_cert = make_key_pair("SP").write(tmp_path / "sp", "sp")
    signing_sp = make_client(
        {**config, "key_file": str(sp_key), "cert_file": str(sp_cert), "service": {"sp": {
            **config["service"]["sp"], "authn_requests_signed": True}}}
    )  # fmt: skip
    idp.sp_config(SP_ID, ACS, signing_cert="".join(sp_cert.read_text().splitlines()[1:-1]))
    _, info = signing_sp.prepare_for_authenticate(
        entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT
    )
    assert "Signature=" in dict(info["headers"])["Location"]
    _, info = signing_sp.prepare_for_authenticate(entityid=idp.entity_id, binding=BINDING_HTTP_POST)
    signed_request = autopost_form(info["data"])[1]["SAMLRequest"]
    assert (
        idp.server.parse_authn_request(signed_request, BINDING_HTTP_POST).message.signature
        is not None
    )
    tampered = base64.b64decode(signed_request).replace(ACS.encode(), b"http://evil.test/acs")
    with pytest.raises(IncorrectlySigned):  # our backend said "does not verify"; pysaml2 wraps it
        idp.server.parse_authn_request(base64.b64encode(tampered).decode(), BINDING_HTTP_POST)

    cert.write_bytes(
        attacker_keys.cert_pem
    )  # the same signed metadata, checked against another key
    with pytest.raises(SignatureError):
        make_client(config)
