"""``WebworkSSOBackend``, imported through ``webwork_sso_middleware.integrations.django``.

It lives apart because importing it imports Django's models, which only works once Django is
set up; ``integrations.django`` (imported by wsgi.py, before setup) loads it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import RemoteUserBackend

from ..identity import Member
from ..middleware import MEMBER_KEY

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest

# Django user field <- Member attribute, copied at every sign-in (where the user model has it).
PROFILE_FIELDS = (("email", "email"), ("first_name", "given_name"), ("last_name", "family_name"))


class WebworkSSOBackend(RemoteUserBackend):
    """``RemoteUserBackend`` that trusts ``REMOTE_USER`` only with the member the middleware
    put beside it: active, and with the same userName.

    The Django user is created at first sight (username = the member's userName, no usable
    password) and its email and names are refreshed from the member at every sign-in.
    Subclass and set ``create_unknown_user = False`` to admit only users that already exist
    in Django.

    Django users are keyed by userName alone: someone who is a member of two workspaces is one
    Django user. Scope data by ``request.META["webwork_sso.member"].workspace`` where that
    matters.
    """

    def authenticate(self, request: HttpRequest | None, remote_user: str | None) -> Any:
        if _member_for(request, remote_user) is None:
            return None
        user_model = get_user_model()
        limit = user_model._meta.get_field(user_model.USERNAME_FIELD).max_length
        if limit is not None and len(self.clean_username(remote_user)) > limit:
            # A userName the column cannot hold: refuse rather than fail with a database error.
            return None
        return super().authenticate(request, remote_user)

    async def aauthenticate(self, request: HttpRequest | None, remote_user: str | None) -> Any:
        # RemoteUserBackend's async path does not call authenticate(); route it through the
        # same member check, or an ASGI deployment would trust a client's Remote-User header.
        return await sync_to_async(self.authenticate)(request, remote_user)

    def configure_user(
        self, request: HttpRequest | None, user: AbstractBaseUser, created: bool = True
    ) -> AbstractBaseUser:
        # The member authenticate() checked; compared with REMOTE_USER, not the username, so a
        # subclass's clean_username() may map userNames to usernames of its own.
        member = _member_for(request, request.META.get("REMOTE_USER") if request else None)
        if member is None:
            return user
        changed = []
        if created:
            # get_or_create() left the password empty, which Django counts as usable: a password
            # reset could then give a deactivated member a way in that bypasses SSO.
            user.set_unusable_password()
            changed.append("password")
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


def _member_for(request: HttpRequest | None, user_name: str | None) -> Member | None:
    """The active member the middleware set on this request, if it is ``user_name``."""
    if request is None or not user_name:
        return None
    member = request.META.get(MEMBER_KEY)
    if not isinstance(member, Member) or not member.active or member.user_name != user_name:
        return None
    return member
