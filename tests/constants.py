"""Literals that many test modules use, written once.

The protocol literals are spelled out here rather than imported from the package
(``webwork_sso_middleware.scim.schemas.PATCH_OP``, ``saml.acs.SAML``): a test that reads a
constant from the code it checks would pass with the code's typo.
"""

from __future__ import annotations

# The signing key of the test sites: long enough for the 32-byte minimum.
SECRET = "test-secret-key-padded-to-thirty-two-bytes-at-least"

# SCIM (RFC 7644): the media type, and the schema of a PATCH request's body.
SCIM_JSON = "application/scim+json"
SCIM_HEADERS = {"Content-Type": SCIM_JSON}
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# XML namespaces: SAML 2.0 assertions, and XML signatures.
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
