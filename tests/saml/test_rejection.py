"""What a refusal says: the owner's code and detail, and the fixed sentence a stranger reads
(saml/rejection.py), audited over every refusal the SAML modules raise."""

from __future__ import annotations

from webwork_sso_middleware.metrics import CODE
from webwork_sso_middleware.saml.rejection import (
    PUBLIC_REASONS,
    REASON_CODES,
    Rejection,
    reason_label,
)


def raised_rejections() -> list[tuple[str, str, str]]:
    """(module, owner code, public code) of every Rejection the SAML modules raise (the ACS, the
    posted document, the sign-in flow...), and of every refusal of the identity rules (which the
    SAML app shows as a Rejection). Every module of the package is read, so a refusal moved to
    a new module stays audited."""
    import ast
    import importlib
    import inspect
    import pkgutil

    from webwork_sso_middleware import saml
    from webwork_sso_middleware.members import lifecycle

    modules = [
        importlib.import_module(info.name)
        for info in pkgutil.iter_modules(saml.__path__, f"{saml.__name__}.")
    ]
    found = []
    for module in (*modules, lifecycle):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("Rejection", "_unavailable", "SignInRefused")
            ):
                continue
            if not (node.args and isinstance(node.args[0], ast.Constant)):
                continue  # the class's own signature, not a refusal
            code = node.args[0].value
            public = {
                k.arg: k.value.value
                for k in node.keywords
                if k.arg == "public_code" and isinstance(k.value, ast.Constant)
            }
            found.append(
                (
                    module.__name__,
                    code,
                    "sso_unavailable"
                    if node.func.id == "_unavailable"
                    else public.get("public_code", code),
                )
            )
    return found


def test_every_refusal_has_a_fixed_public_sentence():
    """Audit of every Rejection raised: what a stranger reads is a constant per public code
    (no value from the response or the configuration can reach it), while the owner's code
    stays the specific one."""
    found = raised_rejections()
    assert len(found) > 25
    for module, code, public in found:
        assert public in PUBLIC_REASONS, (module, code)
        assert public in (code, "sso_unavailable", "decryption_failed"), (module, code)
    for code, sentence in PUBLIC_REASONS.items():
        assert "{" not in sentence and "://" not in sentence
        assert sentence[:1].isupper() and sentence.endswith(".") and len(sentence) > 20, code
    assert len(set(PUBLIC_REASONS.values())) == len(PUBLIC_REASONS)  # each says its own thing
    assert Rejection("a_code_with_no_sentence", "detail").public_text == (
        "The sign-in response was refused."
    )
    # Every public code has its sentence, and every sentence a refusal that shows it.
    assert {public for _, _, public in found} == set(PUBLIC_REASONS)
    hidden = {code for _, code, public in found if public != code}
    # sp_key_missing: signing is wanted and the workspace has no key yet (made before the
    # request, so only a workspace re-made meanwhile); to a stranger, SSO is unavailable.
    assert hidden == {
        "unknown_workspace",
        "plan",
        "sso_disabled",
        "idp_not_configured",
        "sp_key_missing",
        # What an altered cipher text decrypted to must not show (acs.py, decrypt()).
        "encrypted_not_assertion",
    }


def test_a_refusal_carries_its_code_detail_and_what_a_stranger_may_read():
    expired = Rejection("expired", "the assertion expired at 12:00Z")
    assert str(expired) == "expired: the assertion expired at 12:00Z"  # what the server log shows
    assert (expired.code, expired.public_code, expired.status, expired.repeatable) == (
        "expired",
        "expired",
        400,
        False,
    )
    assert expired.public_text == PUBLIC_REASONS["expired"]
    hidden = Rejection(
        "plan",
        "the workspace is on the Free plan",
        status=403,
        public_code="sso_unavailable",
        repeatable=True,
    )
    assert (hidden.code, hidden.public_code, hidden.status, hidden.repeatable) == (
        "plan",
        "sso_unavailable",
        403,
        True,
    )
    assert hidden.public_text == PUBLIC_REASONS["sso_unavailable"]


def test_every_refusal_code_is_a_metrics_reason_of_its_own():
    """The metrics count sign-ins by the refusal's code (metrics.py); a code missing from
    REASON_CODES would be counted as "other", and the operator could not tell it apart."""
    codes = {code for _, code, _ in raised_rejections()}
    assert codes - REASON_CODES == set()
    assert all(CODE.match(code) for code in REASON_CODES)  # no value metrics.py would refuse
    assert reason_label("replayed") == "replayed"
    assert reason_label("a_code_nobody_declared") == "other"
