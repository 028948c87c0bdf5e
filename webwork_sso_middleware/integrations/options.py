"""The option names ``SSOMiddleware`` accepts, and one clear error for a name it does not.

``SSOMiddleware(app, **options)`` with an unknown key would raise a bare ``TypeError``; settings
files are where typos live, so every adapter checks the names first and says which one is wrong.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

from ..errors import ConfigurationError
from ..middleware import SSOMiddleware


def middleware_options() -> tuple[str, ...]:
    """The keyword-only options of ``SSOMiddleware``, in signature order.

    Read from the signature rather than listed here, so an option added to the core is
    accepted by every adapter without touching them.
    """
    return tuple(
        name
        for name, parameter in inspect.signature(SSOMiddleware).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    )


def check_known(
    names: Iterable[str], *, where: str, spell: Callable[[str], str] = str
) -> None:
    """Raise ``ConfigurationError`` naming every unknown option, as the user spelled it."""
    known = middleware_options()
    unknown = sorted(spell(name) for name in names if name not in known)
    if unknown:
        raise ConfigurationError(
            ", ".join(unknown),
            f"unknown option{'s' if len(unknown) > 1 else ''} in {where} "
            f"(known: {', '.join(spell(name) for name in known)})",
        )
