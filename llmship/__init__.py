"""llmship: release a language model — build, validate, register, ship.

The core library. It imports neither ZenML nor BentoML so that every behaviour
is a plain function that can be called and tested without an orchestrator.
"""

__version__ = "0.1.0"
