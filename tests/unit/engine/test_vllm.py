"""``llmship.engine.vllm``: where each worker's engine runs on the CPU (the engine itself: tests/integration)."""

from __future__ import annotations

import os
from pathlib import Path

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


def test_inductors_compile_cache_lives_in_the_home_unless_the_user_set_one(home, monkeypatch, tmp_path):
    """On the CPU vLLM's trace-once compile writes nothing under VLLM_CACHE_ROOT: the compiled kernels are
    Inductor's cache, which would otherwise sit in /tmp (outside the home, kept by ``make clean``)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir, default_cache_dir

    from llmship import paths
    from llmship.engine.vllm import apply_vllm_environment

    settings = EngineSettings(model_uri="path:/nowhere")
    for key in vllm_environment(settings):  # apply_vllm_environment writes os.environ: restore it afterwards
        monkeypatch.delenv(key, raising=False)
    apply_vllm_environment(settings)
    assert Path(cache_dir()).is_relative_to(paths.home())  # torch's own resolver reads it
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what torch writes there on first use
    apply_vllm_environment(settings)
    assert Path(cache_dir()).is_relative_to(paths.home())
    mine = tmp_path / "my-inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(mine))
    apply_vllm_environment(settings)
    assert Path(cache_dir()) == mine


def _folder(tmp_path: Path, dtype: str) -> Path:
    import json

    folder = tmp_path / dtype
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["Gemma3ForCausalLM"], "dtype": dtype}))
    return folder


@pytest.mark.parametrize(("bf16_matmul", "folder", "device", "chosen", "expected"), [
    (False, "bfloat16", "cpu", "auto", "float32"),  # emulated bf16 would serve ~2-4x slower
    (False, "float16", "cpu", "auto", "float32"),   # vLLM runs fp16 as bf16 on the CPU
    (True, "bfloat16", "cpu", "auto", "auto"),      # a native bf16 matmul: the folder's half the bytes win
    (False, "float32", "cpu", "auto", "auto"),
    (False, "bfloat16", "cpu", "bfloat16", "bfloat16"),  # a user's explicit dtype is theirs
    (False, "bfloat16", "cuda", "auto", "auto"),
])
def test_auto_dtype_serves_fp32_on_a_cpu_without_a_bf16_matmul(monkeypatch, tmp_path, bf16_matmul, folder,
                                                                 device, chosen, expected):
    from llmship.engine import vllm

    monkeypatch.setattr(vllm, "cpu_runs_bf16_matmul", lambda: bf16_matmul)
    settings = EngineSettings(model_uri="path:/nowhere", device=device, dtype=chosen)
    assert vllm.serving_dtype(settings, _folder(tmp_path, folder)) == expected


def test_the_bf16_probe_predicts_vllms_matmul_at_model_sizes():
    """The probe builds a 64x64 primitive; vLLM builds one per layer at the model's sizes (gemma-3-270m's q/o and
    MLP projections): the answer must be the same, on whichever host this runs."""
    import torch
    from vllm import _custom_ops as ops

    from llmship.engine.vllm import cpu_runs_bf16_matmul

    if not ops._supports_onednn:
        pytest.skip("this vLLM build has no oneDNN: vLLM uses torch's linear whatever the probe says")
    for shape in ((1024, 640), (640, 2048), (2048, 640)):
        try:
            ops.create_onednn_mm(torch.zeros(*shape, dtype=torch.bfloat16).t(), 32)
            built = True
        except RuntimeError:
            built = False
        assert built == cpu_runs_bf16_matmul(), shape
