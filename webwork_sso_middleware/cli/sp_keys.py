"""The ``workspace rotate-sp-key`` and ``workspace set-saml`` commands: a workspace's SP keys
(sp_keys/keyring.py) and the owner's SAML choices, from the server.

Both need the site's secret keys, as ``settings-link`` does: the SP private keys are sealed
under them (sp_keys/vault.py). A command run with a secret the site does not have fails on the
first key it opens (``unknown_secret``) and changes nothing, because every step ends by opening
the workspace's keys in its own transaction. Looking at the keys (no step flag) makes nothing:
the first key is made by the site on its first SAML request, under the site's own secret.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import NotFound
from ..sp_keys import SpKey, SpKeyRing, SpKeys
from ..store import sp_keys as key_store
from ..store.db import UnitOfWork
from ..urls import public_urls
from .options import EXIT_USAGE, PROG, CommandError, GlobalOptions
from .workspace import _site_secret_keys

STEPS = ("stage", "activate", "retire")


@contextmanager
def _sp_keys(options: GlobalOptions, args: argparse.Namespace) -> Iterator[SpKeys]:
    secret_keys = _site_secret_keys(options, args.data_dir)  # before the database: cheap
    database = options.open_database(auto_migrate=options.auto_migrate)
    try:
        yield SpKeys(database, secret_keys=secret_keys)
    finally:
        database.dispose()


def _look(keys: SpKeys, slug: str) -> SpKeyRing:
    """The ring as it is, making nothing (SpKeys.status would make a first key)."""

    def work(unit: UnitOfWork) -> SpKeyRing:
        workspace_id = key_store.workspace_id(unit, slug)
        if workspace_id is None:
            raise NotFound("workspace", slug)
        return keys.ring(unit, workspace_id)

    return keys.database.run(work, write=False)


def workspace_rotate_sp_key(options: GlobalOptions, args: argparse.Namespace) -> int:
    step = next((name for name in STEPS if getattr(args, name)), None)
    slug = args.slug.strip().lower()
    with _sp_keys(options, args) as keys:
        steps = {"stage": keys.stage, "activate": keys.activate, "retire": keys.retire}
        ring = _look(keys, slug) if step is None else steps[step](slug, actor="cli")
    done = _done(slug, step) if step else None
    advice = next_step(slug, ring)
    if args.json:
        document = ring_document(slug, ring, options.base_url)
        document["step"] = step
        document["next_step"] = advice
        print(json.dumps(document, indent=2))
        return 0
    if done:
        print(done)
        print()
    print(describe_ring(slug, ring, options.base_url))
    print()
    print(advice)
    return 0


def workspace_set_saml(options: GlobalOptions, args: argparse.Namespace) -> int:
    if args.sign_authn_requests is None and args.require_encryption is None:
        raise CommandError(
            "give --sign-authn-requests or --no-sign-authn-requests, and/or"
            " --require-encryption or --no-require-encryption",
            EXIT_USAGE,
        )
    slug = args.slug.strip().lower()
    with _sp_keys(options, args) as keys:
        ring = keys.set_choices(
            slug,
            actor="cli",
            sign_authn_requests=args.sign_authn_requests,
            require_encrypted_assertions=args.require_encryption,
        )
    if args.json:
        print(json.dumps(ring_document(slug, ring, options.base_url), indent=2))
        return 0
    print(f"Saved the SAML choices of {slug!r}.")
    print()
    print(describe_choices(ring))
    if args.require_encryption:
        print()
        print(
            "Sign-ins whose assertion is not encrypted are now refused. Make sure the IdP"
            " encrypts assertions for this SP (it finds the encryption certificate in the SP"
            f" metadata: {public_urls(None, options.base_url).workspace(slug).sp_metadata_url})."
        )
    return 0


# -- output ------------------------------------------------------------------------------------


def _done(slug: str, step: str) -> str:
    if step == "stage":
        return (
            f"Staged a next SP key for {slug!r}: the SP metadata now publishes the next key;"
            " let the IdP read it (or paste the new certificate), then run --activate."
        )
    if step == "activate":
        return (
            f"Activated the next SP key of {slug!r}: it signs from now on, and the key it"
            " replaced is kept as the previous key, which still decrypts assertions encrypted"
            " for it."
        )
    return f"Retired the previous SP key of {slug!r}: its private key is deleted."


def next_step(slug: str, ring: SpKeyRing) -> str:
    """What to do next, in one paragraph, with the command that does it."""
    command = f"{PROG} workspace rotate-sp-key {slug}"
    if ring.current is None:
        return (
            "No SP key yet: the site makes the first one on the workspace's first SAML request"
            f" (its SP metadata, a sign-in); {command} --stage makes it now, with a next key"
            " beside it"
        )
    if ring.next is not None:
        retires = (
            " (this also deletes the previous key: make sure nothing still encrypts for it)"
            if ring.previous is not None
            else ""
        )
        return (
            "Next: let the IdP read the SP metadata (or paste the new certificate into it),"
            f" then: {command} --activate{retires}"
        )
    if ring.previous is not None:
        return (
            "Next: once sign-ins work with the current key and the IdP no longer encrypts for"
            f" the previous one, delete the previous key: {command} --retire"
        )
    return f"To rotate the SP key, stage a next key first: {command} --stage"


def _when(moment: dt.datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def describe_choices(ring: SpKeyRing) -> str:
    signing = (
        "always"
        if ring.sign_authn_requests
        else "only when the IdP's metadata asks for it (WantAuthnRequestsSigned)"
    )
    encryption = "required" if ring.require_encrypted_assertions else "accepted, not required"
    return "\n".join(
        [
            f"  Sign AuthnRequests:   {signing}",
            f"  Encrypted assertions: {encryption}",
        ]
    )


def describe_ring(slug: str, ring: SpKeyRing, base_url: str) -> str:
    lines = [f"SP keys of {slug!r}"]
    if not ring.all:
        lines.append("  (none yet)")
    for key in ring.all:
        lines.append(f"  {key.state}:")
        for label, value in (
            ("SHA-256", key.sha256_fingerprint),
            ("Created", _when(key.created_at)),
            ("Activated", _when(key.activated_at)),
            ("Certificate not after", _when(key.certificate.not_valid_after_utc)),
        ):
            lines.append(f"    {label + ':':<23}{value}")
    lines.append(f"  SP metadata: {public_urls(None, base_url).workspace(slug).sp_metadata_url}")
    return "\n".join([*lines, "", "SAML choices", describe_choices(ring)])


def key_document(key: SpKey) -> dict[str, Any]:
    """One key for ``--json``: its certificate and dates, never its private key."""
    return {
        "state": key.state,
        "sha256_fingerprint": key.sha256_fingerprint,
        "created_at": key.created_at.isoformat(timespec="seconds"),
        "activated_at": (
            key.activated_at.isoformat(timespec="seconds") if key.activated_at else None
        ),
        "certificate_not_after": key.certificate.not_valid_after_utc.isoformat(timespec="seconds"),
        "certificate_pem": key.certificate_pem,
    }


def ring_document(slug: str, ring: SpKeyRing, base_url: str) -> dict[str, Any]:
    return {
        "slug": slug,
        "sp_metadata_url": public_urls(None, base_url).workspace(slug).sp_metadata_url,
        "keys": [key_document(key) for key in ring.all],
        "sign_authn_requests": ring.sign_authn_requests,
        "require_encrypted_assertions": ring.require_encrypted_assertions,
    }
