"""``WebworkSSOBackend``, ``SSOEnforcingModelBackend`` and ``link_user``, imported through
``webwork_sso_middleware.integrations.django``.

They live apart because importing them imports Django's models, which only works once Django is
set up; ``integrations.django`` (imported by wsgi.py, before setup) loads them on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend, RemoteUserBackend
from django.utils.crypto import get_random_string

from ..identity import Member
from ..logs import package_logger
from ..middleware import MEMBER_KEY
from . import django_enforcement

log = package_logger(__name__)

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest

# Django user field <- Member attribute, copied at every sign-in (where the user model has it).
# Only these: nothing a member, its IdP or its SCIM says ever reaches is_staff, is_superuser,
# groups or permissions.
PROFILE_FIELDS = (("email", "email"), ("first_name", "given_name"), ("last_name", "family_name"))

# The password of every Django user that signs in through SSO: this prefix, then random text.
# Django counts any password starting with "!" as unusable (no password login, no reset), and
# the prefix is what tells our users from users the host made another way (createsuperuser, a
# sign-up form, another backend), which this backend never signs in.
SSO_PASSWORD_PREFIX = "!webwork-sso!"
SSO_PASSWORD_RANDOM_LENGTH = 40  # as Django's own unusable passwords


class WebworkSSOBackend(RemoteUserBackend):
    """``RemoteUserBackend`` that trusts ``REMOTE_USER`` only with the member the middleware
    put beside it (active, and whose ``identity`` it is), and signs in only Django users that
    SSO owns.

    Django users are keyed by ``REMOTE_USER`` (``Member.identity``): the member's email only
    when the member's own workspace verified its domain, else ``"<workspace>:<member id>"``.
    No other workspace's IdP or SCIM can produce either value, so one workspace can never sign
    in as another's user. A person who is a member of two workspaces outside a verified domain
    is two Django users; scope data by ``request.META["webwork_sso.member"].workspace`` too
    where one user may work in several workspaces.

    A user is created at first sign-in with the identity as username and an unusable password
    that marks it as an SSO user; its email and names are refreshed from the member at every
    sign-in, and nothing else is ever set (never ``is_staff`` or ``is_superuser``). A Django
    user that exists already without that mark (``createsuperuser``, a sign-up form) is
    refused and left untouched, even if its username equals the identity: call ``link_user``
    to let SSO sign in as it on purpose.

    The email copied to the Django user is what the member's IdP or SCIM says: it is verified
    only when it equals the username. Never look users up by it.

    Subclass and set ``create_unknown_user = False`` to admit only SSO users that already exist
    (made by ``link_user``, or by an earlier sign-in).
    """

    def authenticate(self, request: HttpRequest | None, remote_user: str | None) -> Any:
        if not remote_user or _member_for(request, remote_user) is None:
            return None
        user_model = get_user_model()
        username = self.clean_username(remote_user)
        limit = user_model._meta.get_field(user_model.USERNAME_FIELD).max_length
        if limit is not None and len(username) > limit:
            # An identity the column cannot hold: refuse rather than fail with a database error.
            return None
        manager = user_model._default_manager
        created = False
        if self.create_unknown_user:
            # get_or_create copes with two first requests at once; the mark goes in with the
            # row, so an SSO user never exists, even briefly, with an empty (usable) password.
            user, created = manager.get_or_create(
                **{user_model.USERNAME_FIELD: username}, defaults={"password": sso_password()}
            )
        else:
            try:
                user = manager.get_by_natural_key(username)
            except user_model.DoesNotExist:
                return None
        if not is_sso_user(user):
            return None  # the host's own user: never attached to a sign-in unless linked
        user = self.configure_user(request, user, created=created)
        return user if self.user_can_authenticate(user) else None

    async def aauthenticate(self, request: HttpRequest | None, remote_user: str | None) -> Any:
        # RemoteUserBackend's async path does not call authenticate(); route it through the
        # same member check, or an ASGI deployment would trust a client's Remote-User header.
        return await sync_to_async(self.authenticate)(request, remote_user)

    def user_can_authenticate(self, user: Any) -> bool:
        # Also asked by get_user() for every request of a Django session this backend began:
        # a user the host has since given a password (unlinked) is signed out.
        return is_sso_user(user) and super().user_can_authenticate(user)

    def configure_user(
        self, request: HttpRequest | None, user: AbstractBaseUser, created: bool = True
    ) -> AbstractBaseUser:
        if not is_sso_user(user):
            return user  # a subclass calling this directly must not touch a host's user either
        # The member authenticate() checked; compared with REMOTE_USER, not the username, so a
        # subclass's clean_username() may map identities to usernames of its own.
        member = _member_for(request, request.META.get("REMOTE_USER") if request else None)
        if member is None:
            return user
        changed = []
        for field_name, attribute in PROFILE_FIELDS:
            value = getattr(member, attribute)
            if value is None or not hasattr(user, field_name):
                continue  # the IdP sent nothing, or a custom user model without the field
            limit = user._meta.get_field(field_name).max_length
            value = value[:limit] if limit else value
            if getattr(user, field_name) != value:
                setattr(user, field_name, value)
                changed.append(field_name)
        if changed:
            user.save(update_fields=changed)
        return user


class SSOEnforcingModelBackend(ModelBackend):
    """``ModelBackend`` that refuses a password sign-in when SSO is required for the person:
    ``SSOMiddleware.sso_required`` is true for the username being signed in (when it is an
    address) or for the matching user's username or email. Swap it in for ``ModelBackend``
    in ``AUTHENTICATION_BACKENDS``; nothing else changes.

    Only the workspace that verified an address's domain can require SSO for it, so no
    workspace can lock out people of another organisation. The owner of a workspace that
    requires SSO signs in with a password during a break-glass window
    (``webwork-sso workspace break-glass SLUG``). When the SSO store cannot be asked, the
    password is refused (fail closed) and the failure is logged.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        # Before the password hash: a refused address costs no hashing (and says nothing that
        # the sign-in page would not say anyway).
        if isinstance(username, str) and "@" in username and _sso_required(username):
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            return None
        addresses = {
            value
            for value in (user.get_username(), getattr(user, "email", None))
            if isinstance(value, str) and "@" in value and value != username
        }
        if any(_sso_required(address) for address in addresses):
            return None
        return user

    async def aauthenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        # ModelBackend's async path does not call authenticate(): route it through the check,
        # or an async login view would accept the password SSO refuses.
        return await sync_to_async(self.authenticate)(
            request, username=username, password=password, **kwargs
        )


def _sso_required(email: str) -> bool:
    try:
        return django_enforcement.sso_required(email)
    except Exception:  # the store is down or misconfigured: refuse rather than bypass SSO
        log.exception("could not ask whether SSO is required; the password sign-in is refused")
        return True


def link_user(user: AbstractBaseUser) -> None:
    """Let SSO sign in as ``user``, a Django user the host made another way (for instance the
    operator's ``createsuperuser`` account), when the member's ``REMOTE_USER`` equals its
    username.

    Do this only for a user whose username is an identity you trust to be that person: an
    email in a domain the member's workspace verified. The user keeps its flags
    (``is_staff``, ``is_superuser``) and data, but its password is replaced by the SSO mark:
    from now on it signs in through SSO only (no password login, no password reset), and its
    open Django sessions end. To undo, give it a password again (``set_password``), which
    also stops SSO from signing in as it.
    """
    user.password = sso_password()
    user.save(update_fields=["password"])


def is_sso_user(user: Any) -> bool:
    """Whether ``user`` is a Django user SSO may sign in as: made by the backend, or linked."""
    password = getattr(user, "password", None)
    return isinstance(password, str) and password.startswith(SSO_PASSWORD_PREFIX)


def sso_password() -> str:
    """An unusable password that marks a Django user as SSO's (random, so that every link
    changes the session hash and ends the user's earlier Django sessions)."""
    return SSO_PASSWORD_PREFIX + get_random_string(SSO_PASSWORD_RANDOM_LENGTH)


def _member_for(request: HttpRequest | None, remote_user: str | None) -> Member | None:
    """The active member the middleware set on this request, if ``remote_user`` is its
    identity (what the middleware put in REMOTE_USER)."""
    if request is None or not remote_user:
        return None
    member = request.META.get(MEMBER_KEY)
    if not isinstance(member, Member) or not member.active or member.identity != remote_user:
        return None
    return member
