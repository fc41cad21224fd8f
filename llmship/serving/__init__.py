"""Serving: load a registered version into a runtime; run ``bentoml serve`` in the background."""
