"""Enterprise single sign-on for any WSGI app: SCIM 2.0 provisioning and SAML 2.0 sign-in."""

from .errors import WebworkSSOError
from .identity import Member
from .middleware import SSOMiddleware

__version__ = "0.1.0"

__all__ = ["Member", "SSOMiddleware", "WebworkSSOError", "__version__"]
