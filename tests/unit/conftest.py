"""Fixtures shared by the unit tests: one PyTorch fp32 engine on the tiny model per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def torch_engine(tiny_built):
    from llmship.validate.reference import load_engine

    return load_engine(tiny_built.folder, "pytorch", dtype="float32")
