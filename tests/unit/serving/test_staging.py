"""When a re-deploy's engine check may run on the running chat service (``llmship.serving.staging``): only on the
service the last deploy started, still running, under the settings this deploy would give it; and a service that
cannot take the check sends it back to a subprocess instead of failing the deploy."""

from __future__ import annotations

import os
import time

from llmship.config import ServeConfig
from llmship.engine.settings import EngineSettings
from llmship.serving import process
from llmship.serving.deploy import settings_digest
from llmship.serving.staging import service_runner
from llmship.validate.engine_check import EngineCheckSpec
from tests.conftest import free_port, llmship_home

NAME, REGISTRY = "m", "sqlite:///r.db"


def _deployed(config: ServeConfig, *, pid: int) -> None:
    """What a deploy leaves: the server's state file (this test process stands in for it: alive, but no server
    listens on the port) and last-deploy.json."""
    info = process.ServerInfo(pid=pid, host=config.host, port=config.port, target="bentos.chat.service:Chat",
                              model_uri=f"models:/{NAME}@champion", log="-", started_at=time.time())
    process._state_file(config.port).write_text(info.model_dump_json())
    process.write_deploy_summary(info, {"model_name": NAME, "tracking_uri": REGISTRY,
                                        "settings_digest": settings_digest(f"models:/{NAME}@champion", config,
                                                                           REGISTRY)})


def _spec() -> EngineCheckSpec:
    return EngineCheckSpec(hf_dir="/nowhere", settings=EngineSettings(model_uri="path:/nowhere"), parity_prompts=[],
                           reference_greedy=[], reference_top=[], smoke_prompts=[], batches=[1])


def test_only_the_service_this_deploy_would_swap_takes_the_check(tmp_path):
    with llmship_home(tmp_path):
        config = ServeConfig(port=free_port())
        assert service_runner(NAME, config, REGISTRY) is None  # nothing deployed
        _deployed(config, pid=os.getpid())
        assert service_runner(NAME, config, REGISTRY) is not None
        assert service_runner(NAME, config.model_copy(update={"max_batch": 8}), REGISTRY) is None  # other settings
        assert service_runner(NAME, config, "sqlite:///elsewhere.db") is None  # another registry
        assert service_runner("other", config, REGISTRY) is None  # another model
        process.deploy_summary_path().unlink()
        assert service_runner(NAME, config, REGISTRY) is None  # a server the last deploy did not start


def test_a_service_that_cannot_take_the_check_sends_it_to_a_subprocess(tmp_path):
    """No admin token (a server started by hand, an older one) and a server that does not answer: the runner
    answers None, and ``run_engine_check`` checks in a subprocess."""
    with llmship_home(tmp_path):
        config = ServeConfig(port=free_port())
        _deployed(config, pid=os.getpid())
        runner = service_runner(NAME, config, REGISTRY)
        assert runner is not None and runner(_spec()) is None  # no token: ReloadUnavailable
        process._token_file(config.port).write_text("token")
        assert runner(_spec()) is None  # a token, but nothing listens: ServeError, logged
