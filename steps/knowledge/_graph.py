"""The graph a knowledge step talks to: ``NEO4J_*`` / ``LLMSHIP_GRAPH_*`` from the environment, else the embedded server."""

import os

from llmship.errors import GraphError
from llmship.knowledge import server
from llmship.knowledge.graph import GraphSettings, GraphStore


def connect() -> GraphStore:
    settings = GraphSettings.from_env()
    if settings.backend == "arcadedb" and not os.environ.get("NEO4J_URI") and server.status() is None:
        # Without this, a stopped embedded server would send us to the default port, where another
        # checkout's server may answer (with another password).
        raise GraphError(f"the embedded graph is not running (state under {server.graph_home()}); "
                         "start it with `llmship graph start`, or set NEO4J_URI")
    return GraphStore.connect(settings)
