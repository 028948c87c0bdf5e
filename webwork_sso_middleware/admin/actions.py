"""The owner's actions on the settings page: every POST the page lets in comes here.

A small class the page (views.py) delegates to, rather than more methods on the page: it gets
exactly what the actions use (the workspaces, the CSRF tokens, the settings sessions, the body
limit) and, to answer, the page's own ``show``, so it never imports views.py.

Every action first checks the form's CSRF token; a bad one changes nothing. A regenerated SCIM
token appears in that one POST's response only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from ..bodies import read_form
from ..errors import (
    ConfigurationError,
    DomainError,
    DomainNotVerified,
    KeyRotationError,
    MappingError,
    MetadataError,
    MetadataUnavailable,
    NotFound,
    PlanError,
)
from ..logs import package_logger
from ..sp_keys.vault import SealedKeyUnreadable
from . import confirmations, roles_section, templates
from .access import Access
from .links import settings_path
from .responses import Page, sentence
from .sections import Notice

if TYPE_CHECKING:
    from ..idp_metadata.workspaces import Workspaces
    from ..sp_keys import SpKeys
    from .links import CsrfTokens, SettingsSessions


class ShowPage(Protocol):
    """The page's ``show`` (views.py): the settings page, with what an action has to say."""

    def __call__(
        self,
        page: Page,
        access: Access,
        *,
        notices: tuple[Notice, ...] = (),
        new_token: str | None = None,
        entered_url: str = "",
        status: int = 200,
        paging: bool = True,
    ) -> Response: ...


# The rotation buttons' actions (sp_keys_section.py) and the step each takes.
log = package_logger(__name__)
# An action's name becomes its log event (settings.<name>): only in this form.

ROTATION_STEPS = {"sp_key_stage": "stage", "sp_key_activate": "activate", "sp_key_retire": "retire"}
# Every action the form posts (the dispatch in OwnerActions.act): the log names these only, so
# an owner's posted name never becomes an event name (anything else is settings.unknown_action).
KNOWN_ACTIONS = frozenset(
    {
        "regenerate_token",
        "set_idp",
        "claim_domain",
        "verify_domain",
        "release_domain",
        "switch",
        "idp_initiated",
        "sp_key_create",
        "saml_choice",
        "require_sso",
        "break_glass_open",
        "break_glass_close",
        "close",
        *ROTATION_STEPS,
        *roles_section.ACTIONS,
    }
)
ROTATION_DONE = {
    "stage": "Staged a new key: the SP metadata now publishes it beside the current one. Let "
    "your IdP read the SP metadata again (or paste the new certificate into it), then activate "
    "the next key.",
    "activate": "Activated the next key: it signs from now on. The key it replaced is kept as "
    "the previous key and still decrypts assertions encrypted for it; retire it once sign-ins "
    "work.",
    "retire": "Retired the previous key: it is deleted, and assertions encrypted for it are "
    "refused from now on.",
}
SAML_CHOICES = {
    "sign_authn_requests": "Signing every AuthnRequest",
    "require_encrypted_assertions": "Requiring encrypted assertions",
}


def actor_of(access: Access) -> str:
    """The audit log's actor for an owner's change on this page."""
    return "settings:sso-owner" if access.by_sso else "settings:link"


class OwnerActions:
    """The owner's POST actions, each answered with the page and a notice."""

    def __init__(
        self,
        workspaces: Workspaces,
        *,
        sp_keys: SpKeys,
        csrf: CsrfTokens,
        settings_sessions: SettingsSessions,
        max_body_bytes: int,
        show: ShowPage,
        roles: tuple[str, ...] = (),
    ) -> None:
        self.workspaces = workspaces
        self.sp_keys = sp_keys
        self.csrf = csrf
        self.settings_sessions = settings_sessions
        self.max_body_bytes = max_body_bytes
        self.show = show
        self.roles = roles  # the host's declared roles: a mapping to any other is refused

    def act(self, page: Page, slug: str, access: Access) -> Response:
        """Answer one POST from someone ``access`` let in: check its CSRF token, then do the
        action it names."""
        request = page.request
        try:
            # The site's body limit, also for a chunked form (bodies.py), and for one field:
            # a large pasted metadata document.
            form = read_form(request, self.max_body_bytes)
        except RequestEntityTooLarge:
            return self.show(
                page,
                access,
                status=413,
                paging=False,
                notices=(
                    Notice(
                        "error", "That form was larger than this page accepts; nothing was changed."
                    ),
                ),
            )
        if not self.csrf.matches(form.get("csrf_token"), access.bindings):
            return page.html(
                templates.message_page(
                    "Request not accepted",
                    [
                        "This form did not come from this settings page (or the page is too old), so "
                        "nothing was changed.",
                        "Reload the settings page and try again.",
                    ],
                    nonce=page.nonce,
                ),
                status=403,
            )
        action = form.get("action", "")
        confirmation = confirmations.asked(form)
        if confirmation is not None:  # destructive: say what breaks, change nothing yet
            return page.html(
                confirmations.confirmation_page(
                    confirmation,
                    action_url=page.site.link(settings_path(slug)),
                    csrf_token=self.csrf.token(access.bindings[0]),
                    nonce=page.nonce,
                )
            )
        # Once confirmed (a destructive action's first POST only asked, above), as it runs.
        log.info(
            "settings action %r on %s (%s)",
            action[:64],
            slug,
            "by SSO" if access.by_sso else "by settings link",
            extra={
                "event": "settings." + (action if action in KNOWN_ACTIONS else "unknown_action"),
                "workspace": slug,
            },
        )
        if action == "regenerate_token":
            token = self.workspaces.rotate_token(slug)
            return self.show(
                page,
                access,
                new_token=token,
                paging=False,
                notices=(
                    Notice(
                        "ok",
                        "Issued a new SCIM API token. The previous token stops working within seconds.",
                    ),
                ),
            )
        if action == "set_idp":
            return self.set_idp(
                page,
                slug,
                access,
                form.get("metadata_url", "").strip(),
                form.get("metadata_xml", "").strip(),
            )
        if action in ("claim_domain", "verify_domain", "release_domain"):
            return self.domain_action(page, slug, access, action, form.get("domain", ""))
        if action == "switch":
            return self.switch(page, slug, access, form.get("feature"), form.get("state"))
        if action == "idp_initiated":
            return self.set_idp_initiated(page, slug, access, form.get("state"))
        if action == "sp_key_create":
            # Idempotent: a second press, or a key made since by a SAML request, changes nothing.
            self.sp_keys.forget(slug)  # ask the database, not this worker's memory
            self.sp_keys.ensure(slug)
            return self.show(
                page,
                access,
                paging=False,
                notices=(Notice("ok", "This site's key for the workspace is made."),),
            )
        if action in ROTATION_STEPS:
            return self.rotate_sp_key(page, slug, access, ROTATION_STEPS[action])
        if action == "saml_choice":
            return self.saml_choice(page, slug, access, form.get("choice"), form.get("state"))
        if action in ("require_sso", "break_glass_open", "break_glass_close"):
            return self.enforcement(page, slug, access, action, form.get("state"))
        if action in roles_section.ACTIONS:
            return self.mapping(page, slug, access, action, form)
        if action == "close" and access.by_link:
            said = [
                "The settings link's access is closed, in this browser and for any copy of "
                "its cookie. A new settings link opens the page again."
            ]
            if access.by_sso:
                said.append("You are still signed in through SSO as the owner, which opens it too.")
            # Ended in the database: a copy of the cookie elsewhere is worthless from now on.
            self.settings_sessions.end(request.environ, slug)
            ways_on = (
                (page.home_url, "Back to the app"),
                (page.sign_in_url(slug), "Sign in with SSO"),
            )
            response = page.html(
                templates.message_page("Settings closed", said, nonce=page.nonce, links=ways_on)
            )
            response.headers.add(
                "Set-Cookie",
                self.settings_sessions.clearing_cookie(slug, script_root=page.site.root),
            )
            return response
        return self.show(
            page,
            access,
            status=400,
            paging=False,
            notices=(Notice("error", "Unknown action; nothing was changed."),),
        )

    def set_idp(self, page: Page, slug: str, access: Access, url: str, xml: str) -> Response:
        def refused(reason: str, status: int = 400) -> Response:
            return self.show(
                page,
                access,
                status=status,
                paging=False,
                entered_url=url,
                notices=(Notice("error", f"{reason} Nothing was changed."),),
            )

        if bool(url) == bool(xml):
            return refused("Give the IdP metadata URL or paste its metadata XML (one of them).")
        actor = "settings:sso-owner" if access.by_sso else "settings:link"
        try:
            idp = self.workspaces.set_idp(
                slug, metadata_url=url or None, metadata_xml=xml or None, actor=actor
            )
        except MetadataUnavailable as error:
            return refused(sentence(error.reason))  # the same words whatever went wrong
        except MetadataError as error:
            source = "from that URL" if url else "in that XML"
            return refused(f"The IdP metadata {source} cannot be used: {sentence(error.reason)}")
        except ConfigurationError as error:
            return refused(sentence(error.reason))
        return self.show(
            page,
            access,
            paging=False,
            notices=(
                Notice("ok", f"Saved: the metadata was checked; the IdP is {idp.entity_id}."),
            ),
        )

    def domain_action(
        self, page: Page, slug: str, access: Access, action: str, domain: str
    ) -> Response:
        def refused(reason: str) -> Response:
            return self.show(
                page,
                access,
                status=400,
                paging=False,
                notices=(Notice("error", f"{sentence(reason)} Nothing was changed."),),
            )

        domain = domain.strip()[:300]
        try:
            if action == "claim_domain":
                claim = self.workspaces.claim_domain(slug, domain)
                text = (
                    f"Added {claim.domain}. Publish its TXT record below, then check it."
                    if not claim.verified
                    else f"{claim.domain} is already verified."
                )
            elif action == "verify_domain":
                claim = self.workspaces.verify_domain(slug, domain)
                text = (
                    f"{claim.domain} is verified: your IdP may now sign in its addresses, "
                    "and the host app knows them by their email."
                )
            else:
                self.workspaces.release_domain(slug, domain)
                text = (
                    f"Removed {domain.lower()}. Its addresses can no longer be signed in "
                    "unless your SCIM provisioned them."
                )
        except DomainNotVerified as error:
            return refused(
                f"{error.domain} is not verified yet: no TXT record "
                f"{error.record_value} at {error.record_name}. DNS changes can take "
                "a while to appear; check again later."
            )
        except DomainError as error:
            return refused(f"{error.domain} {error.reason}")
        except NotFound:
            return refused("This workspace does not claim that domain.")
        return self.show(page, access, paging=False, notices=(Notice("ok", text),))

    def set_idp_initiated(
        self, page: Page, slug: str, access: Access, state: str | None
    ) -> Response:
        if state not in ("on", "off"):
            return self.show(
                page,
                access,
                status=400,
                paging=False,
                notices=(Notice("error", "Unknown switch; nothing was changed."),),
            )
        actor = "settings:sso-owner" if access.by_sso else "settings:link"
        try:
            self.workspaces.set_idp(slug, allow_idp_initiated=state == "on", actor=actor)
        except ConfigurationError as error:
            return self.show(
                page,
                access,
                status=400,
                paging=False,
                notices=(Notice("error", f"{sentence(error.reason)} Nothing was changed."),),
            )
        said = (
            "IdP-initiated sign-in is on: people can sign in from your IdP's dashboard too."
            if state == "on"
            else "IdP-initiated sign-in is off: sign-ins must start on "
            "this site; your IdP's dashboard tile will show an error."
        )
        return self.show(page, access, paging=False, notices=(Notice("ok", said),))

    def switch(
        self, page: Page, slug: str, access: Access, feature: str | None, state: str | None
    ) -> Response:
        if feature not in ("scim", "sso") or state not in ("on", "off"):
            return self.show(
                page,
                access,
                status=400,
                paging=False,
                notices=(Notice("error", "Unknown switch; nothing was changed."),),
            )
        name = "SCIM provisioning" if feature == "scim" else "Single sign-on"
        flags = {feature: True}
        if state == "off":
            self.workspaces.disable(
                slug, scim=feature == "scim", sso=feature == "sso", source="settings"
            )
            notices = [Notice("ok", f"{name} is off.")]
            if feature == "sso" and access.by_sso and not access.by_link:
                notices.append(
                    Notice(
                        "warn",
                        "You opened this page through single sign-on, "
                        "which is now off: to come back, use a settings link "
                        f"(webwork-sso workspace settings-link {slug}).",
                    )
                )
            return self.show(page, access, paging=False, notices=tuple(notices))
        try:
            info = self.workspaces.enable(slug, **flags)
        except PlanError as error:
            return self.show(
                page,
                access,
                status=403,
                paging=False,
                notices=(
                    Notice(
                        "error",
                        f"{name} needs the Plus or Premium plan; this workspace is on the "
                        f"{error.plan.title()} plan. Nothing was changed.",
                    ),
                ),
            )
        notices = [Notice("ok", f"{name} is on.")]
        if feature == "sso" and self.workspaces.idp(slug) is None:
            notices.append(
                Notice(
                    "warn",
                    "No identity provider is set yet: sign-in cannot start "
                    "until you give its metadata below.",
                )
            )
        if feature == "sso" and not info.scim_enabled:
            notices.append(
                Notice(
                    "warn",
                    "SCIM is off: members are created at their first "
                    "sign-in, and deactivations in the IdP do not reach this site.",
                )
            )
        return self.show(page, access, paging=False, notices=tuple(notices))

    def enforcement(
        self, page: Page, slug: str, access: Access, action: str, state: str | None
    ) -> Response:
        """The "Require SSO" switch and the owner's break-glass window (audited in the store)."""
        actor = actor_of(access)
        try:
            if action == "break_glass_open":
                info = self.workspaces.open_break_glass(slug, actor=actor)
                said = (
                    f"Break-glass is open: {info.owner_email} (the owner, nobody else) may sign "
                    "in with a password until it closes. It is in the audit log."
                )
            elif action == "break_glass_close":
                self.workspaces.close_break_glass(slug, actor=actor)
                said = "Break-glass is closed."
            elif state in ("on", "off"):
                self.workspaces.set_require_sso(slug, state == "on", actor=actor)
                said = (
                    "SSO is required: password sign-in is refused at your verified domains."
                    if state == "on"
                    else "SSO is no longer required."
                )
            else:
                return self.refuse(page, access, "Unknown switch")
        except NotFound:  # deleted since the access check
            return page.forbidden(slug, "There is no such workspace any more.")
        except PlanError as error:
            return self.refuse(
                page,
                access,
                f"Requiring SSO needs the Plus or Premium plan; this workspace is on the "
                f"{error.plan.title()} plan",
                status=403,
            )
        return self.show(page, access, paging=False, notices=(Notice("ok", said),))

    def mapping(self, page: Page, slug: str, access: Access, action: str, form: Any) -> Response:
        """The attribute mapping and the group-to-role mapping (audited in the store)."""
        try:
            notice = roles_section.act(
                self.workspaces, slug, action, form, declared=self.roles, actor=actor_of(access)
            )
        except NotFound:  # deleted since the access check
            return page.forbidden(slug, "There is no such workspace any more.")
        except MappingError as error:
            return self.refuse(page, access, error.reason)
        return self.show(page, access, paging=False, notices=(notice,))

    def refuse(self, page: Page, access: Access, reason: str, *, status: int = 400) -> Response:
        return self.show(
            page,
            access,
            status=status,
            paging=False,
            notices=(Notice("error", f"{sentence(reason)} Nothing was changed."),),
        )

    def rotate_sp_key(self, page: Page, slug: str, access: Access, step: str) -> Response:
        steps = {
            "stage": self.sp_keys.stage,
            "activate": self.sp_keys.activate,
            "retire": self.sp_keys.retire,
        }
        try:
            steps[step](slug, actor=actor_of(access))
        except NotFound:  # deleted since the access check
            return page.forbidden(slug, "There is no such workspace any more.")
        except KeyRotationError as error:
            # The page offers only the possible step; this is a stale page or a second tab.
            return self.refuse(page, access, _page_words(error.reason), status=409)
        except SealedKeyUnreadable:
            return self.refuse(
                page,
                access,
                "This site cannot open its SAML keys: they were sealed under a secret key it no "
                "longer has. Ask the site's operator to configure it again.",
                status=409,
            )
        return self.show(page, access, paging=False, notices=(Notice("ok", ROTATION_DONE[step]),))

    def saml_choice(
        self, page: Page, slug: str, access: Access, choice: str | None, state: str | None
    ) -> Response:
        if choice not in SAML_CHOICES or state not in ("on", "off"):
            return self.refuse(page, access, "Unknown switch")
        try:
            self.sp_keys.set_choices(slug, actor=actor_of(access), **{choice: state == "on"})
        except NotFound:  # deleted since the access check
            return page.forbidden(slug, "There is no such workspace any more.")
        except SealedKeyUnreadable:
            return self.refuse(
                page,
                access,
                "This site cannot open its SAML keys; ask the site's operator.",
                status=409,
            )
        notices = [Notice("ok", f"{SAML_CHOICES[choice]} is {state}.")]
        if choice == "require_encrypted_assertions" and state == "on":
            notices.append(
                Notice(
                    "warn",
                    "Sign-ins whose assertion is not encrypted are refused from now on: make "
                    "sure your IdP encrypts assertions with this site's certificate.",
                )
            )
        return self.show(page, access, paging=False, notices=tuple(notices))


def _page_words(reason: str) -> str:
    """A rotation refusal in the page's words rather than the command line's flags."""
    for flag, button in (
        ("(--activate)", "(Activate the next key)"),
        ("(--stage)", "(Stage a new key)"),
    ):
        reason = reason.replace(flag, button)
    return reason
