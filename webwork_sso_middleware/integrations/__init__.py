"""Framework adapters (Django, Flask, PasteDeploy): each only translates its framework's settings
into ``SSOMiddleware`` keyword options. Nothing in the core imports them or their frameworks."""
