"""How long `llmship rollback` takes, how long the chat service does not answer meanwhile, and what fails.

    python benchmarks/rollback_bench.py                 # a tiny random model (the serving path, not the model)
    python benchmarks/rollback_bench.py --model-dir D   # a built model folder (hf/), e.g. gemma's
    python benchmarks/rollback_bench.py --streams 16    # under 16 streaming clients (default), 0 for none

In a throw-away LLMSHIP_HOME: the model is registered twice (versions 1 and 2, both passing, 2 champion and 1
previous), the chat Bento is built once, and ``bentoml serve`` runs it on 127.0.0.1 as ``deploy`` does (vLLM
inside; the tiny model with the tests' engine settings, eager and fp32, so a start takes seconds; a
``--model-dir`` with the deploy config's, torch.compile's cache in the user's LLMSHIP_HOME). A poller
asks ``GET /v1/models`` every 50 ms and records which version answered, and ``--streams`` clients stream chat
completions (16 tokens) back to back, counting the ones that fail (an HTTP error, a dropped connection, a stream
without ``[DONE]``). Then, in one run:

- ``rollback --no-restart``: the alias move alone (registry time);
- ``rollback``: alias move, then the running service swaps its engine in place (``POST /admin/reload``: the new
  version's engine starts beside the old one); measured to the first answer of the rolled-back version;
- ``rollback, restart``: the same with the server stopped first, so rollback restarts it (what it does when no
  swap is possible), measured from the stop;
- the peer: a plain restart of the same Bento on the same version (``llmship serve stop`` + start, what any
  redeploy of the serve step costs).

Prints wall time, the longest window without an answer, failed/total streams, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
NAME = "rollback-bench"


class Poller(threading.Thread):
    """GET /v1/models every ``every_s``; (time, version or None) per probe."""

    def __init__(self, url: str, every_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.url, self.every_s = url, every_s
        self.samples: list[tuple[float, str | None]] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=1.0) as client:
            while not self.done.is_set():
                t = time.perf_counter()
                try:
                    resp = client.get(f"{self.url}/v1/models")
                    version = resp.headers.get("x-llmship-model-version") if resp.status_code == 200 else None
                except httpx.HTTPError:
                    version = None
                self.samples.append((t, version))
                time.sleep(max(0.0, self.every_s - (time.perf_counter() - t)))

    def gap(self, start: float, end: float) -> float:
        """The longest run of probes without an answer within [start, end]."""
        gap, down_since = 0.0, None
        for t, version in self.samples:
            if not start <= t <= end:
                continue
            if version is None:
                down_since = t if down_since is None else down_since
            elif down_since is not None:
                gap, down_since = max(gap, t - down_since), None
        return gap


class Streams:
    """``n`` clients streaming chat completions back to back; per measured phase, how many ended and failed."""

    def __init__(self, url: str, model: str, n: int) -> None:
        self.url, self.model, self.n = url, model, n
        self.stop = threading.Event()
        self.ok = self.failed = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def take(self) -> tuple[int, int, list[str]]:
        with self.lock:
            out = (self.ok, self.failed, self.errors[:3])
            self.ok = self.failed = 0
            self.errors = []
        return out

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)

    def _run(self) -> None:
        body = {"model": self.model, "messages": [{"role": "user", "content": "Tell me a story."}],
                "max_tokens": 16, "stream": True}
        with httpx.Client(timeout=300) as client:
            while not self.stop.is_set():
                error = None
                try:
                    with client.stream("POST", f"{self.url}/v1/chat/completions", json=body) as resp:
                        if resp.status_code != 200:
                            error = f"HTTP {resp.status_code}: {resp.read()[:120]!r}"
                        elif not any(line.strip() == "data: [DONE]" for line in resp.iter_lines()):
                            error = "stream ended without [DONE]"
                except httpx.HTTPError as err:
                    error = f"{type(err).__name__}: {err}"
                with self.lock:
                    if error is None:
                        self.ok += 1
                    else:
                        self.failed += 1
                        self.errors.append(error)
                if error is not None:
                    time.sleep(0.2)  # a down server: do not spin


def first_answer(samples: list[tuple[float, str | None]], after: float, version: str) -> float | None:
    """When ``version`` first answered after ``after`` (a swap: the moment new requests went to the new engine)."""
    return next((t for t, v in samples if t >= after and v == version), None)


def back_up(samples: list[tuple[float, str | None]], after: float, version: str) -> float | None:
    """When ``version`` answered again: its first answer after the first probe that got none (a restart always
    has an outage: the old server stops before the new one listens)."""
    down = next((t for t, v in samples if t >= after and v is None), None)
    return None if down is None else next((t for t, v in samples if t >= down and v == version), None)


def setup(home: Path, model_dir: Path | None, port: int) -> dict:
    from benchmarks.serve_bench import use_user_compile_cache
    from llmship import paths

    use_user_compile_cache(paths.home())  # vLLM's compile cache survives the throw-away home
    os.environ["LLMSHIP_HOME"] = str(home)
    os.environ["BENTOML_HOME"] = str(home / "bentoml")  # the Bento built here goes away with the home
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from benchmarks.load_bench import _tiny_model_dir
    from benchmarks.serve_bench import tiny_engine_config
    from llmship.config import ServeConfig
    from llmship.registry import ModelRegistry
    from llmship.serving import process
    from llmship.serving.bento import build_bento, chat_service_env
    from llmship.validate.gates import GateReport

    folder = model_dir or _tiny_model_dir(home / "tiny")
    registry = ModelRegistry()
    for _ in range(2):
        ref = registry.register(NAME, folder, tags={"serve_backend": "vllm", "model_source": "rollback_bench"})
        registry.promote(NAME, ref.version, GateReport(results=[]))
    # recorded in last-deploy.json below: rollback's restart starts the server with the same engine settings
    config = ServeConfig(port=port, rag=False, **({} if model_dir else tiny_engine_config()))
    t = time.perf_counter()
    bento = build_bento(config.bentofile)
    print(f"built {bento} in {time.perf_counter() - t:.1f}s; serving {folder} on vLLM "
          f"({'eager' if config.enforce_eager else 'torch.compile'}, {config.dtype})", flush=True)
    env = chat_service_env(config, registry.tracking_uri)
    info = process.start(bento, model_uri=f"models:/{NAME}@champion", port=port, env=env)
    process.write_deploy_summary(info, {"bento": bento, "model_name": NAME, "model_version": "2", "alias": "champion",
                                        "previous": "1", "tracking_uri": registry.tracking_uri,
                                        "serve_config": config.model_dump(mode="json")})
    return {"bento": bento, "env": env, "config": config}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, help="a built model folder with hf/; default: tiny model")
    p.add_argument("--rounds", type=int, default=3, help="rollbacks (each undoes the last) and peer restarts")
    p.add_argument("--port", type=int, default=3137)
    p.add_argument("--streams", type=int, default=16, help="streaming clients during each rollback and restart")
    p.add_argument("--out", type=Path, help="JSON results (default: print only)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="llmship-rollback-bench-") as tmp:
        state = setup(Path(tmp) / "home", args.model_dir, args.port)
        from llmship.serving import process
        from llmship.serving.rollback import rollback

        url = f"http://127.0.0.1:{args.port}"
        poller = Poller(url)
        poller.start()
        streams = Streams(url, NAME, args.streams)
        streams.start()
        labels = ["alias move only (--no-restart)", "rollback (swap in place)", "rollback, restart",
                  "peer: restart, same version"]
        rows: dict[str, list[tuple[float, float, int, int]]] = {label: [] for label in labels}
        examples: list[str] = []

        def measured(label: str, t0: float, answered: float | None, wall: float) -> None:
            time.sleep(0.3)  # let the poller see the answer
            ok, failed, errors = streams.take()
            examples.extend(f"{label}: {e}" for e in errors)
            rows[label].append(((answered or t0 + wall) - t0, poller.gap(t0, time.perf_counter()), ok, failed))

        try:
            served = "2"
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                moved = rollback(restart=False)
                rows[labels[0]].append((time.perf_counter() - t0, 0.0, 0, 0))
                rollback(moved.from_version, restart=False)  # put it back for the measured rollback

                for label in labels[1:3]:
                    target = "1" if served == "2" else "2"
                    streams.take()
                    t0 = time.perf_counter()
                    if label == "rollback, restart":
                        process.stop(args.port)
                    result = rollback()
                    wall = time.perf_counter() - t0
                    assert result.to_version == target and result.swapped == (label != "rollback, restart"), result
                    find = first_answer if result.swapped else back_up
                    measured(label, t0, find(poller.samples, t0, f"{NAME}/{target}"), wall)
                    served = target

                streams.take()
                t0 = time.perf_counter()
                info = process.start(state["bento"], model_uri=f"models:/{NAME}@champion", port=args.port,
                                     env=state["env"])
                # rollback's next swap finds the server it restarted recorded as the deploy's
                process.write_deploy_summary(info, process.deploy_extras(process.last_deploy() or {}))
                wall = time.perf_counter() - t0
                measured(labels[3], t0, back_up(poller.samples, t0, f"{NAME}/{served}"), wall)
        finally:
            poller.done.set()
            streams.close()
            process.stop(args.port)

    print(f"\n{args.rounds} rounds, {'tiny random model' if args.model_dir is None else args.model_dir}, "
          f"{args.streams} streaming clients; seconds, median (min-max)")
    print(f"{'':32} {'to first answer':>20} {'longest window without one':>28} {'streams failed/total':>22}")
    summary = {}
    for label, values in rows.items():
        walls, gaps = [v[0] for v in values], [v[1] for v in values]
        ok, failed = sum(v[2] for v in values), sum(v[3] for v in values)
        summary[label] = {"to_first_answer_s": statistics.median(walls), "no_answer_window_s": statistics.median(gaps),
                          "streams_ok": ok, "streams_failed": failed}
        print(f"{label:32} {statistics.median(walls):7.2f} ({min(walls):.2f}-{max(walls):.2f})    "
              f"{statistics.median(gaps):10.2f} ({min(gaps):.2f}-{max(gaps):.2f})      {failed:>6}/{ok + failed}")
    swap, restart, peer = (summary[k] for k in labels[1:])
    print(f"\nswap / restart rollback: {swap['to_first_answer_s'] / restart['to_first_answer_s']:.2f}x to the first "
          f"answer; windows without one {swap['no_answer_window_s']:.2f} vs {restart['no_answer_window_s']:.2f} s "
          f"(plain restart {peer['no_answer_window_s']:.2f} s)")
    for line in examples[:6]:
        print(f"  failed: {line}")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
