"""pysaml2 entities (SP client, IdP server, metadata stores) built on the in-process backend, never xmlsec1.

pysaml2 signs and verifies through the ``CryptoBackend`` of a ``SecurityContext`` (``entity.sec``). Its
own ``security_context(conf)`` knows only the ``xmlsec1`` binary (searched on PATH, run with ``Popen``)
or pyXMLSecurity, so pysaml2 objects are built here instead, on ``encrypting.EncryptingBackend``
(``crypto.XmlsecBackend``'s signatures, plus assertion encryption):

    client = make_client(sp_config_dict)      # saml2.client.Saml2Client
    server = make_server(idp_config_dict)     # saml2.server.Server (test and development IdPs)
    secc = security_context(config)           # e.g. for saml2.metadata.sign_entity_descriptor

The factories load the config with ``crypto_backend="XMLSecurity"`` (the one value whose pysaml2 set-up
neither searches for nor runs a binary), load its metadata into a ``MetadataStore`` that already
verifies with our backend, build the entity, ``install()`` our context on it, then set
``config.crypto_backend`` to a value pysaml2 rejects, so pysaml2 code that would build a context of its
own from that config (``response.authn_response``, ``metadata.create_metadata_string``) fails loudly.
``install(entity)`` alone serves an entity built elsewhere if its config was loaded with
``"crypto_backend": "XMLSecurity"``: with the default, pysaml2 looks for xmlsec1 while loading metadata.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from saml2.client import Saml2Client
from saml2.config import Config, IdPConfig, SPConfig
from saml2.entity import Entity
from saml2.mdstore import MetadataStore
from saml2.sigver import RSACrypto, SecurityContext, SigverError

from .crypto import XmlsecBackend, load_own_private_key, read_private_key
from .encrypting import EncryptingBackend

# saml2.server imports saml2.cryptography.symmetric, whose class body names a cipher mode that
# cryptography has deprecated: a warning on stderr at import (breaking the CLI's one-line error
# contract) for code we never use. Silenced for this import only: a filter added for good
# would change the host's warnings filters (no import-time side effects on the host).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="CFB has been moved", module="saml2")
    from saml2.server import Server

__all__ = ["install", "load_metadata", "make_client", "make_server", "security_context"]

# Not one of pysaml2's two built-in backend names, so any set-up of its own fails loudly.
PYSAML2_BACKEND_MARKER = "webwork_sso_middleware.saml.entities (use entities.security_context)"


def security_context(
    config: Config, *, metadata: MetadataStore | None = None, backend: XmlsecBackend | None = None
) -> SecurityContext:
    """pysaml2's ``SecurityContext`` for ``config``, on our backend, without any xmlsec1 lookup.

    Mirrors ``saml2.sigver.security_context`` except that signature keys come from metadata only
    (``only_use_keys_in_metadata`` is forced on: a certificate inside a message is never trusted).
    """
    key_file = config.key_file
    sec_backend = None
    if key_file:
        # pysaml2 signs HTTP-Redirect messages (query-string signatures) with this, in Python.
        private_key = load_own_private_key(read_private_key(key_file))
        if isinstance(private_key, rsa.RSAPrivateKey):
            sec_backend = RSACrypto(private_key)
    keypairs = config.encryption_keypairs or []
    return SecurityContext(
        backend or EncryptingBackend(),  # XmlsecBackend, and assertion encryption for pysaml2
        key_file,
        cert_file=config.cert_file,
        metadata=metadata if metadata is not None else config.metadata,
        only_use_keys_in_metadata=True,
        cert_handler_extra_class=config.cert_handler_extra_class,
        generate_cert_info=config.generate_cert_info,
        tmp_cert_file=config.tmp_cert_file,
        tmp_key_file=config.tmp_key_file,
        validate_certificate=config.validate_certificate,
        enc_key_files=[pair["key_file"] for pair in keypairs if "key_file" in pair],
        encryption_keypairs=config.encryption_keypairs,
        sec_backend=sec_backend,
        delete_tmpfiles=config.delete_tmpfiles,
    )


def load_metadata(config: Config, spec: Any) -> MetadataStore:
    """A ``MetadataStore`` for a pysaml2 metadata spec (``{"inline": [xml]}``, ``{"remote": [...]}``...)
    whose signature checks (``remote`` with a ``cert``) already run on our backend."""
    inert = Config()  # MetadataStore() builds a pysaml2 context from this; ours replaces it below
    inert.crypto_backend = "XMLSecurity"
    store = MetadataStore(
        config.attribute_converters,
        inert,
        config.ca_certs,
        disable_ssl_certificate_validation=config.disable_ssl_certificate_validation,
        http_client_timeout=config.http_client_timeout,
    )
    store.security = security_context(config, metadata=store)
    store.imp(spec)
    return store


def install(entity: Entity) -> None:
    """Put our ``SecurityContext`` on a pysaml2 entity (``entity.sec``) and on its metadata store."""
    entity.sec = security_context(entity.config, metadata=entity.metadata)
    if isinstance(entity.metadata, MetadataStore):
        entity.metadata.security = security_context(entity.config, metadata=entity.metadata)
    entity.config.crypto_backend = PYSAML2_BACKEND_MARKER


def _load_config(config: Config, conf: Mapping[str, Any]) -> Config:
    settings = dict(conf)
    if "crypto_backend" in settings:
        raise SigverError("crypto_backend is chosen by this module (in-process); leave it unset")
    metadata_spec = settings.pop("metadata", None)
    # The only pysaml2 backend whose set-up neither searches PATH nor runs a program; replaced below.
    settings["crypto_backend"] = "XMLSecurity"
    config.load(settings)
    if metadata_spec is not None:
        config.metadata = load_metadata(config, metadata_spec)
    return config


def make_client(conf: Mapping[str, Any]) -> Saml2Client:
    """A pysaml2 SP (``Saml2Client``) from a pysaml2 config dict, signing and verifying in-process."""
    client = Saml2Client(config=_load_config(SPConfig(), conf))
    install(client)
    return client


def make_server(conf: Mapping[str, Any]) -> Server:
    """A pysaml2 IdP (``saml2.server.Server``) from a pysaml2 config dict, signing in-process."""
    server = Server(config=_load_config(IdPConfig(), conf))
    install(server)
    return server
