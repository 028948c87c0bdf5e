"""Each workspace's SP key pairs: made (material.py), sealed at rest (vault.py) and rotated
(keyring.py); saml/ signs and decrypts with them, admin/ and the CLI rotate them."""

from .keyring import SpKey, SpKeyRing, SpKeys

__all__ = ["SpKey", "SpKeyRing", "SpKeys"]
