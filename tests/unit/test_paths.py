"""State paths and the disk-space preflight."""

import pytest

from llmship import paths
from llmship.errors import LlmshipError


def test_home_follows_the_environment(home):
    assert paths.home() == home.resolve()
    assert paths.mlflow_tracking_uri() == f"sqlite:///{home.resolve() / 'mlflow' / 'mlflow.db'}"


def test_ensure_free_space_refuses_with_one_line(tmp_path):
    with pytest.raises(LlmshipError) as err:
        paths.ensure_free_space(tmp_path / "not" / "yet" / "made", 10**18, "a test export")
    message = str(err.value)
    assert "not enough disk space for a test export" in message and "\n" not in message
    assert err.value.code == "disk_full"


def test_ensure_free_space_passes_when_it_fits(tmp_path):
    paths.ensure_free_space(tmp_path, 1, "a small file")
