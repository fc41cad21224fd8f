"""The graph a knowledge step talks to: ``NEO4J_*`` / ``LLMSHIP_GRAPH_*`` from the environment, else the running
embedded server (``GraphStore.connect()`` refuses a stopped one with a one-line error)."""

from llmship.knowledge.graph import GraphStore


def connect() -> GraphStore:
    return GraphStore.connect()
