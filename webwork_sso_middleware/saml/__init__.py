"""SAML 2.0 sign-in: one service provider per workspace, built on pysaml2 with in-process crypto."""

import warnings

# pysaml2 imports a cipher mode that cryptography has deprecated; it would print on stderr
# (and break the CLI's one-line error contract) though we never use it.
warnings.filterwarnings("ignore", message="CFB has been moved", module="saml2")
