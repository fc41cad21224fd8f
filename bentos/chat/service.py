"""The chat Bento: vLLM's OpenAI server inside BentoML, behind llmship's gateway, sessions and headers.

A thin shell, shaped like BentoML's own vLLM examples: the app is mounted at import time, and the engine is
started in ``@bentoml.on_startup`` and stopped in ``@bentoml.on_shutdown``, so BentoML's ``/readyz`` turns
green only once vLLM answers. Each worker resolves ``LLMSHIP_MODEL_URI`` (e.g.
``models:/gemma3-270m@champion``) in the MLflow registry when it starts and serves that folder; the engine
settings come from ``LLMSHIP_*`` (``llmship.engine.EngineSettings``). The gateway (``llmship.gateway``) sits in
front of every route, BentoML's own too. ``/v1/embeddings`` goes to the embedding service, composed with
``bentoml.depends`` (its own process) or, with ``LLMSHIP_EMBEDDING_URL``, the one deployed at that URL. Hosted
releases (``LLMSHIP_HOSTED``) and fallback aliases (``LLMSHIP_FALLBACKS``) are served beside the model, through
the same gateway (``llmship.hosted``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import bentoml

from bentos.embedding.service import BentoEmbeddingBackend, embedding_dependency
from llmship.engine.settings import EngineSettings
from llmship.engine.vllm import ServedEngine, start_engine
from llmship.errors import Conflict, InvalidRequest, ServeError
from llmship.gateway import Gateway
from llmship.models.files import folder_digest
from llmship.openai.app import ApiSettings, attach_engine, create_app, drain, swap_engine
from llmship.openai.routes import HostedTable
from llmship.registry import resolve_served

log = logging.getLogger("llmship.chat")
WORKERS = int(os.environ.get("LLMSHIP_CHAT_WORKERS", "1"))
STAGED_TTL_S = float(os.environ.get("LLMSHIP_STAGED_TTL_S", "900"))  # a checked engine no reload took is stopped
app = create_app(settings=ApiSettings.from_env())
_tokenizer: list = []  # the served model's tokenizer, loaded at start-up (the gateway counts prompt tokens)


def count_tokens(text: str) -> int | None:
    """The served model's own token count, for the gateway's prompt limits (None until the model is loaded)."""
    return len(_tokenizer[0].encode(text)) if _tokenizer else None


@bentoml.service(
    name="llmship-chat",
    workers=WORKERS,  # each worker runs its own vLLM engine, on its own slice of the CPU
    traffic={"timeout": 600, "max_concurrency": 256},
    http={"port": 3000},
)
@bentoml.asgi_app(app, path="/")
class Chat:
    embedder = embedding_dependency()  # LLMSHIP_EMBEDDING_URL: the embedding service deployed apart

    def __init__(self) -> None:
        self.settings = EngineSettings.from_env()
        app.state.embedder = BentoEmbeddingBackend(self.embedder)
        self.engine: ServedEngine | None = None
        self.staged: _Staged | None = None

    @bentoml.on_startup
    async def start_engine(self) -> None:
        from transformers import AutoTokenizer

        # hosted releases first: a wrong name or a missing champion stops the start-up before vLLM's minute
        app.state.hosted = await asyncio.to_thread(HostedTable.from_env)
        folder, name, version = resolve_served(self.settings.model_uri)
        app.state.hosted.check_targets(name)
        worker = (bentoml.server_context.worker_index or 1) - 1  # BentoML counts workers from 1
        self.engine = await start_engine(self.settings, folder, model_id=name, version=version, worker=worker,
                                         workers=WORKERS)
        _tokenizer[:] = [AutoTokenizer.from_pretrained(str(folder))]
        attach_engine(app, self.engine)
        if WORKERS == 1:  # one POST /admin/reload reaches one worker: with several, a reload is a restart
            app.state.reloader = self.reload
            app.state.checker = self.check_staged
            app.state.discarder = self._discard_staged
        log.info("vLLM serves %s from %s (engine start %.1f s)", version, folder, self.engine.started_s)

    async def reload(self):
        """Serve what ``LLMSHIP_MODEL_URI`` names now (``llmship rollback`` moved the alias): a second engine
        beside this one, then the swap (``llmship.openai.app.swap_engine``). The same version: nothing to do."""
        from transformers import AutoTokenizer

        folder, name, version = await asyncio.to_thread(resolve_served, self.settings.model_uri)
        if self.engine is not None and self.engine.version == version:
            return self.engine
        staged = self.staged
        if staged is not None and not (staged.engine.model_id == name
                                       and await asyncio.to_thread(folder_digest, folder) == staged.digest):
            staged = None  # checked on another model: it stays staged until its time is up or a check replaces it
        tokenizer: list = []

        async def start():
            # the engine this version was checked on, unless its time ran out meanwhile: serve it, no second start
            if staged is not None and self._unstage(staged):
                engine = staged.engine
                engine.version, engine.folder = version, folder
            else:
                engine = await start_engine(self.settings, folder, model_id=name, version=version)
            try:  # in a thread: the loop keeps serving
                tokenizer.append(await asyncio.to_thread(AutoTokenizer.from_pretrained, str(folder)))
            except Exception as err:
                await engine.stop()
                raise ServeError(f"cannot load the tokenizer of {version} from {folder}: {err}") from err
            return engine

        self.engine = await swap_engine(app, start, float(self.settings.drain_timeout_s))
        _tokenizer[:] = tokenizer
        return self.engine

    async def check_staged(self, body: dict) -> dict:
        """``POST /admin/check``: start the candidate engine a deploy is checking beside the serving one (with
        this service's own settings, which must be the check's), run the engine check on it here and keep it
        staged for the reload that follows a passing check (``reload``). A deploy whose gates fail stops it
        (``POST /admin/discard``); one that never comes back leaves it until ``LLMSHIP_STAGED_TTL_S`` (900 s) or the
        next check. It is never routed."""
        import psutil
        from pydantic import ValidationError

        from llmship.validate.engine_check import EngineCheckSpec, check_engine_on

        try:
            spec = EngineCheckSpec.model_validate(body)
        except ValidationError as err:
            raise InvalidRequest(f"not an engine check spec: {err.errors()[0]['msg']}") from None
        if spec.settings.model_dump(exclude={"model_uri"}) != self.settings.model_dump(exclude={"model_uri"}):
            raise Conflict("the check's engine settings are not this service's: check it apart",
                           code="check_unavailable")
        if self.engine is None:
            raise Conflict("the service has no engine yet", code="check_unavailable")
        await self._discard_staged()  # one candidate at a time
        folder = Path(spec.hf_dir)
        me = psutil.Process()
        before = {p.pid for p in me.children(recursive=True)}
        engine = await start_engine(self.settings, folder, model_id=self.engine.model_id, version="staged")
        engine.staged = True
        try:
            mine = [p for p in me.children(recursive=True) if p.pid not in before]  # its engine core and workers
            report = await check_engine_on(engine, spec, engine_procs=mine, where="service")
            digest = await asyncio.to_thread(folder_digest, folder)
        except BaseException:
            await engine.stop()
            raise
        staged = _Staged(engine=engine, digest=digest)
        staged.expiry = asyncio.get_running_loop().call_later(
            STAGED_TTL_S, lambda: asyncio.ensure_future(self._discard_staged(staged)))
        self.staged = staged
        log.info("engine check on a staged engine from %s (start %.1f s); kept for the reload", folder,
                 engine.started_s)
        return report.model_dump(mode="json")

    def _unstage(self, which: _Staged | None = None) -> bool:
        """Take the staged engine off the stage (``which``: only if that one is still there) and cancel its expiry;
        whether it was there. Synchronous, so a reload and the expiry cannot both take it."""
        staged = self.staged
        if staged is None or (which is not None and staged is not which):
            return False
        self.staged = None
        if staged.expiry is not None:
            staged.expiry.cancel()
        return True

    async def _discard_staged(self, which: _Staged | None = None) -> bool:
        """Stop the staged engine (``which``: only if that one is still staged); whether one was stopped."""
        staged = self.staged
        if staged is None or not self._unstage(which):
            return False
        log.info("stopping the staged engine no reload took")
        await staged.engine.stop()
        return True

    @bentoml.on_shutdown
    async def stop_engine(self) -> None:
        """Drain (new requests get 503, in-flight ones finish), then stop the engine."""
        left = await drain(app, float(self.settings.drain_timeout_s))
        if left:
            log.warning("stopping with %d requests still in flight", left)
        if self.engine is not None:
            await self.engine.stop()
        await self._discard_staged()
        await app.state.hosted.aclose()


@dataclass
class _Staged:
    """An engine a deploy's check ran on (``Chat.check_staged``), not routed, and the digest of its folder."""

    engine: ServedEngine
    digest: str
    expiry: asyncio.TimerHandle | None = None


# Keys, limits, request caps and the audit line (LLMSHIP_GATEWAY_*) in front of every route, BentoML's own too.
Chat.add_asgi_middleware(Gateway, service="chat", tokenizer=count_tokens)
