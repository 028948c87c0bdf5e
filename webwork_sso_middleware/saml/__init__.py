"""SAML 2.0 sign-in: one service provider per workspace, built on pysaml2 with in-process crypto."""
