"""The member lifecycle and the identity rules every entry point goes through.

SCIM, SAML sign-in, the settings page and the CLI translate their protocol into calls here; the
rules (one normalisation of names, verified domains, who a workspace's IdP may sign in, what the
host app sees as ``REMOTE_USER``) are decided here only.
"""
