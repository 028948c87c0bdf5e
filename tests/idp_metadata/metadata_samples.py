"""IdP metadata for tests: self-signed certificates and Okta-shaped metadata built around them."""

from __future__ import annotations

import base64
import datetime as dt
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

OKTA_ENTITY_ID = "http://www.okta.com/exk1fxyz2AbCdEfGh0h8"
OKTA_SSO_POST = "https://acme.okta.com/app/acme_webwork_1/exk1fxyz2AbCdEfGh0h8/sso/saml"
OKTA_SSO_REDIRECT = OKTA_SSO_POST


@functools.cache
def certificate(name: str = "acme", *, days: int = 3650) -> x509.Certificate:
    """A self-signed certificate like Okta's (CN=name, O=Okta), cached per name and lifetime."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Okta"),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
    ])  # fmt: skip
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


def certificate_text(cert: x509.Certificate, *, wrap: bool = True) -> str:
    """The base64 DER as it sits in ds:X509Certificate (Okta wraps it at 64 characters)."""
    text = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
    return "\n".join(text[i : i + 64] for i in range(0, len(text), 64)) if wrap else text


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def key_descriptor(cert: x509.Certificate, use: str | None = "signing") -> str:
    use_attribute = f' use="{use}"' if use else ""
    return (
        f"<md:KeyDescriptor{use_attribute}>"
        '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        f"<ds:X509Data><ds:X509Certificate>{certificate_text(cert)}</ds:X509Certificate>"
        "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
    )


def sso_services(post: str | None = OKTA_SSO_POST, redirect: str | None = OKTA_SSO_REDIRECT) -> str:
    services = ""
    if post:
        services += (
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"'
            f' Location="{post}"/>'
        )
    if redirect:
        services += (
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"'
            f' Location="{redirect}"/>'
        )
    return services


def entity_descriptor(
    *,
    entity_id: str = OKTA_ENTITY_ID,
    keys: str | None = None,
    services: str | None = None,
    attributes: str = "",
    role_attributes: str = "",
    declaration: bool = True,
) -> str:
    """Metadata in the shape Okta's "Metadata URL" serves."""
    keys = key_descriptor(certificate()) if keys is None else keys
    services = sso_services() if services is None else services
    return (
        ('<?xml version="1.0" encoding="UTF-8"?>' if declaration else "")
        + f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"'
        f' entityID="{entity_id}"{attributes}>'
        f'<md:IDPSSODescriptor WantAuthnRequestsSigned="false"'
        f' protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"{role_attributes}>'
        f"{keys}"
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>"
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>"
        f"{services}"
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


def okta_metadata(
    *certs: x509.Certificate, entity_id: str = OKTA_ENTITY_ID, attributes: str = ""
) -> str:
    """Okta-like metadata signed by ``certs`` (default: one certificate)."""
    keys = "".join(key_descriptor(cert) for cert in (certs or (certificate(),)))
    return entity_descriptor(entity_id=entity_id, keys=keys, attributes=attributes)
