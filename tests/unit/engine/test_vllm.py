"""``llmship.engine.vllm``: where each worker's engine runs on the CPU (the engine itself: tests/integration)."""

from __future__ import annotations

import os

import pytest

from llmship.engine.settings import EngineSettings
from llmship.engine.vllm import cpu_slice, numa_nodes, vllm_environment


def test_one_worker_without_a_thread_count_takes_every_core_of_a_one_node_host():
    """vLLM's auto binding would keep a core back for its scheduler: half the compute on 2 vCPUs."""
    assert cpu_slice(0, 0, 1, [2, 0, 1, 3]) == [0, 1, 2, 3]


def test_one_worker_without_a_thread_count_keeps_vllms_numa_binding_on_several_nodes():
    assert cpu_slice(0, 0, 1, range(8), nodes=2) is None


def test_one_worker_with_threads_takes_the_first_cores():
    assert cpu_slice(2, 0, 1, [4, 5, 6, 7]) == [4, 5]


@pytest.mark.parametrize(("workers", "cores", "expected"), [
    (2, range(2), [[0], [1]]),
    (2, range(8), [[0, 1, 2, 3], [4, 5, 6, 7]]),
    (3, range(8), [[0, 1], [2, 3], [4, 5]]),
    (4, range(2), [[0], [1], [0], [1]]),  # more workers than cores: shared round-robin, never all on one
])
def test_workers_get_disjoint_slices(workers, cores, expected):
    assert [cpu_slice(0, w, workers, cores) for w in range(workers)] == expected


def test_threads_cap_a_workers_slice_and_never_reach_into_the_next():
    assert [cpu_slice(1, w, 2, range(8)) for w in range(2)] == [[0], [4]]
    assert cpu_slice(16, 1, 2, range(8)) == [4, 5, 6, 7]


def test_the_environment_binds_each_worker_to_its_own_cores():
    cores = sorted(os.sched_getaffinity(0))
    settings = EngineSettings(model_uri="path:/nowhere")
    envs = [vllm_environment(settings, worker=w, workers=len(cores)) for w in range(len(cores))]
    if len(cores) == 1:
        assert envs[0].get("VLLM_CPU_OMP_THREADS_BIND") in (None, str(cores[0]))
        return
    binds = [env["VLLM_CPU_OMP_THREADS_BIND"] for env in envs]
    assert binds == [str(c) for c in cores]
    assert {env["OMP_NUM_THREADS"] for env in envs} == {"1"}
    if numa_nodes() == 1:  # one worker, one node: every core
        assert vllm_environment(settings)["VLLM_CPU_OMP_THREADS_BIND"] == ",".join(map(str, cores))
    else:  # vLLM's NUMA-aware default
        assert "VLLM_CPU_OMP_THREADS_BIND" not in vllm_environment(settings)
    assert "VLLM_CPU_OMP_THREADS_BIND" not in vllm_environment(settings.model_copy(update={"device": "cuda"}),
                                                                 worker=1, workers=2)


def test_one_architecture_gets_one_path_so_vllm_reuses_its_compile_cache(home, tmp_path):
    """The registry's copy of each version and the built folder have different paths; vLLM keys its compile cache
    on the path. The same config.json maps to the same link, now pointing at the folder last started."""
    from llmship.engine.vllm import compile_cache_path

    folders = []
    for name, config in (("v1", '{"architectures": ["Gemma3ForCausalLM"]}'),
                         ("v2", '{"architectures": ["Gemma3ForCausalLM"]}'), ("other", '{"architectures": ["X"]}')):
        folder = tmp_path / name / "hf"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(config)
        folders.append(folder)
    first = compile_cache_path(folders[0])
    assert first.resolve() == folders[0].resolve()
    second = compile_cache_path(folders[1])
    assert second == first and first.resolve() == folders[1].resolve()  # the same path, moved to v2
    assert compile_cache_path(folders[1]) == second  # already there: nothing to do
    other = compile_cache_path(folders[2])
    assert other != first and other.resolve() == folders[2].resolve()
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".")] == []  # no temporary link left
