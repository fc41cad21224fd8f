"""The chat service's admin token: how ``llmship`` on the operator's machine (``llmship rollback``) may ask a
server it started to reload its model, while no API key can.

``llmship.serving.process.start`` makes a fresh token per server, passes it in ``LLMSHIP_ADMIN_TOKEN`` and keeps
it in a file only this user can read; ``POST /admin/reload`` (``llmship.openai.app``) compares the header in
constant time. No token in the environment (a server started by hand, a Kubernetes pod): no admin routes.
"""

ADMIN_TOKEN_ENV = "LLMSHIP_ADMIN_TOKEN"
ADMIN_TOKEN_HEADER = "x-llmship-admin-token"
