"""The graph a knowledge step talks to: ``NEO4J_*`` / ``LLMSHIP_GRAPH_*`` from the environment, else the running
embedded server (``GraphStore.connect()`` refuses a stopped one with a one-line error). ``NEO4J_*`` may come from
the ZenML secret ``llmship`` (``steps._secrets``)."""

from llmship.knowledge.graphstore.graph import GraphStore
from steps._secrets import load_secrets


def connect() -> GraphStore:
    load_secrets()
    return GraphStore.connect()
