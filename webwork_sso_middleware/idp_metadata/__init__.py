"""IdP metadata, its own room: parse it, fetch it (with the SSRF rules), refresh it, keep the last
good copy.

It sits above the store (which only persists the values it is handed) and below saml (which
uses the metadata), the settings page and the CLI (which configure it). parsing.py reads a
document; document.py and addresses.py hold the rules that need no network; fetching.py fetches;
identity_providers.py is the IdP as the site sees it; refresh.py keeps it fresh; workspaces.py
adds setting the IdP to the store's Workspaces.

Nothing is re-exported here, so that importing one module (devidp needs only addresses.py) does
not load the store.
"""
