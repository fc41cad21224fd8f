"""How long `llmship rollback` takes, and how long the chat service does not answer meanwhile.

    python benchmarks/rollback_bench.py                 # a tiny random model (the serving path, not the model)
    python benchmarks/rollback_bench.py --model-dir D   # a built model folder (hf/), e.g. gemma's

In a throw-away LLMSHIP_HOME: the model is registered twice (versions 1 and 2, both passing, 2 champion and 1
previous), the chat Bento is built once, and ``bentoml serve`` runs it on 127.0.0.1 as ``deploy`` does (vLLM
inside; the tiny model with the tests' engine settings, eager and fp32, so a start takes seconds; a
``--model-dir`` with the deploy config's, torch.compile's cache in the user's LLMSHIP_HOME). A poller
asks ``GET /v1/models`` every 50 ms and records which version answered. Then, in one run:

- ``rollback --no-restart``: the alias move alone (registry time);
- ``rollback``: alias move, Bento check, restart; measured to the first answer of the rolled-back version;
- the peer: a plain restart of the same Bento on the same version (``llmship serve stop`` + start, what any
  redeploy of the serve step costs): rollback can be no faster than that, so the ratio shows what it adds.

Prints wall time, the longest window without an answer, and the ratios.
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
    p.add_argument("--out", type=Path, help="JSON results (default: print only)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="llmship-rollback-bench-") as tmp:
        state = setup(Path(tmp) / "home", args.model_dir, args.port)
        from llmship.serving import process
        from llmship.serving.rollback import rollback

        url = f"http://127.0.0.1:{args.port}"
        poller = Poller(url)
        poller.start()
        rows: dict[str, list[tuple[float, float]]] = {"alias move only (--no-restart)": [], "rollback": [],
                                                       "peer: restart, same version": []}
        try:
            served = "2"
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                moved = rollback(restart=False)
                rows["alias move only (--no-restart)"].append((time.perf_counter() - t0, 0.0))
                rollback(moved.from_version, restart=False)  # put it back for the measured rollback

                target = "1" if served == "2" else "2"
                t0 = time.perf_counter()
                result = rollback()
                wall = time.perf_counter() - t0
                time.sleep(0.3)  # let the poller see the answer
                answered = back_up(poller.samples, t0, f"{NAME}/{target}")
                gap = poller.gap(t0, time.perf_counter())
                assert result.to_version == target, result
                rows["rollback"].append(((answered or t0 + wall) - t0, gap))
                served = target

                t0 = time.perf_counter()
                process.start(state["bento"], model_uri=f"models:/{NAME}@champion", port=args.port, env=state["env"])
                wall = time.perf_counter() - t0
                time.sleep(0.3)
                answered = back_up(poller.samples, t0, f"{NAME}/{served}")
                gap = poller.gap(t0, time.perf_counter())
                rows["peer: restart, same version"].append(((answered or t0 + wall) - t0, gap))
        finally:
            poller.done.set()
            process.stop(args.port)

    print(f"\n{args.rounds} rounds, {'tiny random model' if args.model_dir is None else args.model_dir}; "
          "seconds, median (min-max)")
    print(f"{'':34} {'to first answer':>22} {'longest window without one':>28}")
    summary = {}
    for label, values in rows.items():
        walls, gaps = [v[0] for v in values], [v[1] for v in values]
        summary[label] = {"to_first_answer_s": statistics.median(walls), "no_answer_window_s": statistics.median(gaps)}
        print(f"{label:34} {statistics.median(walls):8.2f} ({min(walls):.2f}-{max(walls):.2f})      "
              f"{statistics.median(gaps):8.2f} ({min(gaps):.2f}-{max(gaps):.2f})")
    rb, peer = summary["rollback"], summary["peer: restart, same version"]
    print(f"\nrollback / plain restart: {rb['to_first_answer_s'] / peer['to_first_answer_s']:.2f}x to the first "
          f"answer, {rb['no_answer_window_s'] / max(peer['no_answer_window_s'], 1e-9):.2f}x the window without one")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
