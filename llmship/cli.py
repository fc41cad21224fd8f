"""The ``llmship`` command. Errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from llmship.errors import LlmshipError, ServeError

DEFAULT_URL = "http://127.0.0.1:3000"


def _serve_info(args: argparse.Namespace) -> int:
    from llmship.serving.process import last_deploy, status

    s = last_deploy()
    if s is None:
        raise ServeError("nothing deployed yet; run `make deploy`")
    alive = any(info.port == s["port"] and info.pid == s["pid"] for info in status())
    if not alive:
        raise ServeError(f"the server deployed at {s['url']} is not running; run `make deploy` again")
    url, model = s["url"], s["model_name"]
    took = f" in {args.elapsed}s" if args.elapsed is not None else ""
    print(f"""
llmship deployed{took}
  served URL     {url}  (OpenAI-compatible: {url}/v1)
  model          models:/{model}@{s['alias']}  = version {s['model_version']}"""
          + (f"  (previous: {s['previous']})" if s.get("previous") else "") + f"""
  bento          {s['bento']}
  server log     {s['log']}"""
          + (f"""
  RAG service    {s['rag_url']}/v1  (model "rag", cited answers; POST /v1/retrieve)""" if s.get("rag_url") else "")
          + f"""

Try it:
  curl -s {url}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Name three primary colors."}}], "max_tokens": 32}}'

  python -c "from openai import OpenAI; c = OpenAI(base_url='{url}/v1', api_key='none'); \\
print(c.chat.completions.create(model='{model}', messages=[{{'role': 'user', 'content': 'Hello!'}}], max_tokens=32).choices[0].message.content)"

Stop it with `llmship serve stop`; browse the registry with `make mlflow-ui`.""")
    return 0


def _serve_status(args: argparse.Namespace) -> int:
    from llmship.serving.process import status

    servers = status()
    if args.json:
        print(json.dumps([json.loads(s.model_dump_json()) | {"url": s.url} for s in servers], indent=2))
    elif not servers:
        print("no llmship server is running")
    for s in servers if not args.json else []:
        print(f"{s.url}  pid {s.pid}  {s.target}  {s.model_uri}  version {s.version or '?'}")
    return 0


def _serve_stop(args: argparse.Namespace) -> int:
    from llmship.serving.process import stop

    stopped = stop(args.port)
    print("\n".join(f"stopped {s.url} (pid {s.pid})" for s in stopped) or "no llmship server was running")
    return 0


def _status(args: argparse.Namespace) -> int:
    from llmship.release_status import KEY_METRICS, release_status

    status = release_status(args.name, every_version=args.all)
    if args.json:
        print(status.model_dump_json(indent=2))
        return 0
    print(f"{status.name}")
    for v in status.versions:
        failed = [g.name for g in v.gates if not g.passed]
        gates = (f"gates {len(v.gates) - len(failed)}/{len(v.gates)} passed" if v.gates else "gates -") + (
            f" (failed: {', '.join(failed)})" if failed else "")
        shown = ", ".join(f"{k}={v.metrics[k]}" for k in KEY_METRICS if k in v.metrics)
        print(f"  v{v.version:<4} {','.join(v.aliases) or '-':<20} {v.validation_status or '-':<8} "
              f"{v.serve_backend or '-':<8} {gates}; {shown}" + (f"; rolled back {v.rolled_back_at}"
                                                                  if v.rolled_back_at else ""))
    print("services" if status.services else "services: none running here (`make deploy`)")
    for s in status.services:
        what = s.serves or s.error or "?"
        if s.kind == "chat":
            what = f"serves {what}" + (f" ({s.alias})" if s.alias else " (no alias names it: redeploy or roll back)"
                                       if s.serves else "")
        else:
            what = f"answers with {what}"
        print(f"  {s.kind:<5} {s.url}  pid {s.pid}  {what}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from llmship.serving.rollback import rollback

    result = rollback(args.to, name=args.name, restart=not args.no_restart)
    print(f"{result.name}: champion is now version {result.to_version} (was {result.from_version}, now 'previous')")
    if result.restarted:
        reuse = "rebuilt" if result.rebuilt else "reused"
        print(f"restarted {result.url} on bento {result.bento} ({reuse}); it serves {result.served_version}")
    else:
        print("not restarted: restart the serving deployment, which loads @champion when it starts")
    return 0


def _get_json(url: str, path: str) -> dict:
    """GET a server's JSON route; an unreachable server or an error status is one clear line."""
    import httpx

    url = url.rstrip("/")
    key = os.environ.get("LLMSHIP_API_KEY")
    try:
        resp = httpx.get(f"{url}{path}", timeout=10, headers={"Authorization": f"Bearer {key}"} if key else None)
    except httpx.HTTPError as err:
        raise ServeError(f"cannot reach {url}: {err}") from None
    if resp.status_code != 200:
        try:
            detail = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            detail = resp.text[:200]
        hint = " (set LLMSHIP_API_KEY)" if resp.status_code == 401 else ""
        raise ServeError(f"{url}{path} answered {resp.status_code}: {detail}{hint}")
    return resp.json()


def _models(args: argparse.Namespace) -> int:
    for model in _get_json(args.url, "/v1/models")["data"]:
        print(f"{model['id']}  (version {model.get('root')}, max_model_len {model.get('max_model_len')})")
    return 0


def _client(url: str):
    import openai

    return openai.OpenAI(base_url=f"{url.rstrip('/')}/v1", api_key=os.environ.get("LLMSHIP_API_KEY", "none"),
                         max_retries=0, timeout=600)


def _default_model(client) -> str:
    import openai

    try:
        return client.models.list().data[0].id
    except openai.APIConnectionError:
        raise ServeError(f"cannot reach {client.base_url}; is the server running? (`llmship serve status`)") from None


def _ask(client, model: str, messages: list[dict], args: argparse.Namespace) -> str:
    """One turn: print the answer (streamed or whole) and return it."""
    import openai

    kwargs = {"model": model, "messages": messages, "max_tokens": args.max_tokens, "temperature": args.temperature}
    try:
        if not args.stream:
            text = client.chat.completions.create(**kwargs).choices[0].message.content or ""
            print(text)
            return text
        parts = []
        for chunk in client.chat.completions.create(**kwargs, stream=True):
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                parts.append(delta)
                print(delta, end="", flush=True)
        print()
        return "".join(parts)
    except openai.APIStatusError as err:
        body = err.body if isinstance(err.body, dict) else {}
        message = body.get("message") or (body.get("error") or {}).get("message") or str(err)
        raise ServeError(f"{err.status_code}: {message}") from None
    except openai.APIConnectionError:
        raise ServeError(f"cannot reach {client.base_url}") from None


def _chat(args: argparse.Namespace) -> int:
    client = _client(args.url)
    model = args.model or _default_model(client)
    messages: list[dict] = [{"role": "system", "content": args.system}] if args.system else []
    if args.question:
        _ask(client, model, messages + [{"role": "user", "content": " ".join(args.question)}], args)
        return 0
    print(f"chatting with {model} at {args.url} — empty line or Ctrl-D to quit, /reset to forget the conversation")
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            print()
            return 0
        if not line:
            return 0
        if line == "/reset":
            messages = messages[:1] if args.system else []
            continue
        messages.append({"role": "user", "content": line})
        messages.append({"role": "assistant", "content": _ask(client, model, messages, args)})


def _stat(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/")
    data = _get_json(url, "/stat")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{data['model']} (version {data['version']}, {data['backend']}) at {url}; sessions {data['sessions']}")
    print(f"{'worker':>8} {'running':>8} {'waiting':>8} {'requests':>9} {'rejected':>9} {'tokens':>9}  last work")
    for w in data["workers"]:
        last = "never" if not w["last_work_at"] else time.strftime("%Y-%m-%d %H:%M:%S",
                                                                   time.localtime(w["last_work_at"]))
        print(f"{w['pid']:>8} {w['running']:>8} {w['waiting']:>8} {w['requests_total']:>9} "
              f"{w['rejected_total']:>9} {w['generated_tokens_total']:>9}  {last}")
    return 0


def _serve_rag(args: argparse.Namespace) -> int:
    """Start the RAG service in the background, answering with the chat server ``make deploy`` started."""
    from llmship.serving import process
    from llmship.serving.rag import TARGET, rag_env, start_rag

    chat_url = args.chat_url
    model_uri = "-"
    if chat_url is None:
        chats = [s for s in process.status() if s.target != TARGET]
        if not chats:
            raise ServeError("no chat server is running: run `make deploy` first, or pass --chat-url")
        chat_url, model_uri = f"{chats[0].url}/v1", chats[0].model_uri
    env = None
    if args.chat_url is None and model_uri.startswith("models:/"):  # our chat server: the gateway settings in env
        from llmship.config import ServeConfig
        from llmship.gateway.settings import GatewaySettings
        from llmship.registry.mlflow_registry import split_model_uri

        env = rag_env(ServeConfig(gateway=GatewaySettings.from_env()), split_model_uri(model_uri)[0])
    info = start_rag(chat_url, model_uri=model_uri, host=args.host, port=args.port, wait_s=args.wait, env=env)
    print(f"RAG service at {info.url}/v1 (model \"rag\"; POST /v1/retrieve), answering with {chat_url}; "
          f"log {info.log}")
    return 0


def _eval_rag(args: argparse.Namespace) -> int:
    from llmship.rag.evaluate import RagEvalConfig, run_rag_eval

    config = RagEvalConfig(questions=args.questions, k=args.k, modes=args.modes.split(","),
                           rag_url=None if args.no_answers else args.url, max_tokens=args.max_tokens,
                           log_mlflow=not args.no_mlflow)
    report, run_id = run_rag_eval(config)
    return _print_eval(args, report, run_id, "rag-eval")


def _eval_retrieval(args: argparse.Namespace) -> int:
    from llmship.rag.retrieval_eval import RetrievalEvalConfig, run_retrieval_eval

    config = RetrievalEvalConfig(beir=args.beir, split=args.split, modes=args.modes.split(","),
                                 peers=not args.no_peers, keep=args.keep, max_queries=args.max_queries,
                                 log_mlflow=not args.no_mlflow)
    report, run_id = run_retrieval_eval(config)
    return _print_eval(args, report, run_id, "retrieval-eval")


def _print_eval(args: argparse.Namespace, report: Any, run_id: str | None, experiment: str) -> int:
    """An evaluation's report: its table (and where MLflow keeps it), or with ``--json`` the whole report."""
    if args.json:
        print(json.dumps(report.model_dump(mode="json") | {"mlflow_run_id": run_id}, indent=2))
    else:
        print(report.table())
        if run_id:
            print(f"logged to MLflow: experiment {experiment}, run {run_id} (`make mlflow-ui`)")
    return 0


def _keys(args: argparse.Namespace) -> int:
    """``llmship keys create|list|revoke|rotate|usage``: the gateway's API keys (secrets printed once)."""
    from llmship.gateway.keys import KeyStore, parse_duration
    from llmship.gateway.settings import GatewaySettings

    store = KeyStore(GatewaySettings.from_env().keys_path())  # the store the services read
    try:
        if args.action == "create":
            models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
            record, key = store.create(args.name, rpm=args.rpm, tpm=args.tpm, max_parallel=args.max_parallel,
                                       max_tokens=args.max_tokens, models=models, expires_in_s=parse_duration(args.expires) if args.expires
                                       else None)
            print(key)
            print(f"created key {record.name!r} (id {record.id}); this is the only time the key is shown",
                  file=sys.stderr)
        elif args.action == "rotate":
            record, key = store.rotate(args.name)
            print(key)
            print(f"rotated key {record.name!r} (new id {record.id}); the old key no longer works", file=sys.stderr)
        elif args.action == "revoke":
            record = store.revoke(args.name)
            print(f"revoked key {record.name!r} (id {record.id})")
        else:
            records = store.list()
            if args.json:
                print(json.dumps([r.model_dump() | {"active": r.active} for r in records], indent=2))
                return 0

            def when(t: float | None) -> str:
                return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"

            if args.action == "usage":
                print(f"{'name':<20} {'requests':>9} {'tokens':>10}  last used")
                for r in records:
                    print(f"{r.name:<20} {r.requests:>9} {r.tokens:>10}  {when(r.last_used_at)}")
            else:
                print(f"{'name':<20} {'id':<9} {'status':<8} {'rpm':>6} {'tpm':>8} {'par':>4} {'max_tok':>7}  "
                      f"{'models':<20} expires")
                for r in records:
                    status = "revoked" if r.revoked_at else "active" if r.active else "expired"
                    print(f"{r.name:<20} {r.id:<9} {status:<8} {r.rpm or '-':>6} {r.tpm or '-':>8} "
                          f"{r.max_parallel or '-':>4} {r.max_tokens or '-':>7}  "
                          f"{','.join(r.models) if r.models else '*':<20} {when(r.expires_at)}")
    finally:
        store.close()
    return 0


def _graph_start(args: argparse.Namespace) -> int:
    from llmship.knowledge.graphstore import server

    running = server.status()
    info = running or server.start(bolt_port=args.bolt_port, http_port=args.http_port)
    took = "already running" if running else f"started in {info.startup_s}s"
    print(f"graph {took}: {info.uri} (database {info.database!r}, user {info.user}), http {info.http_url}, "
          f"pid {info.pid}, log {info.log}")
    return 0


def _graph_status(args: argparse.Namespace) -> int:
    from llmship.knowledge.graphstore import server

    info = server.status()
    if args.json:
        print(json.dumps({"running": False} if info is None else
                         {"running": True, "uri": info.uri, "http_url": info.http_url,
                          **json.loads(info.model_dump_json())}, indent=2))
    elif info is None:
        print("the graph is not running (`llmship graph start`)")
    else:
        print(f"graph running: {info.uri} (database {info.database!r}), http {info.http_url}, pid {info.pid}, "
              f"log {info.log}")
    return 0


def _graph_stop(args: argparse.Namespace) -> int:
    from llmship.knowledge.graphstore import server

    info = server.stop()
    print(f"stopped the graph at {info.uri} (pid {info.pid})" if info else "the graph was not running")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmship", description="Release language models.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="the background chat server").add_subparsers(dest="action", required=True)
    info = serve.add_parser("info", help="what `make deploy` released and how to call it")
    info.add_argument("--elapsed", type=int, default=None, help=argparse.SUPPRESS)
    info.set_defaults(func=_serve_info)
    st = serve.add_parser("status", help="servers llmship started")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_serve_status)
    stop = serve.add_parser("stop", help="stop the server(s) llmship started")
    stop.add_argument("--port", type=int, default=None)
    stop.set_defaults(func=_serve_stop)
    rag = serve.add_parser("rag", help="start the RAG service (retrieval + rerank + the deployed chat model)")
    rag.add_argument("--host", default="127.0.0.1")
    rag.add_argument("--port", type=int, default=3001)
    rag.add_argument("--chat-url", default=None, help="an OpenAI-compatible /v1 (default: the deployed chat server)")
    rag.add_argument("--wait", type=float, default=300.0, help="seconds to wait until it is ready")
    rag.set_defaults(func=_serve_rag)

    keys_parser = sub.add_parser("keys", help="API keys for the gateway")
    keys_parser.set_defaults(func=_keys)
    keys = keys_parser.add_subparsers(dest="action", required=True)
    kcreate = keys.add_parser("create", help="create a key; prints it once (only a salted hash is stored)")
    kcreate.add_argument("--name", required=True)
    kcreate.add_argument("--rpm", type=int, default=None, help="requests per minute")
    kcreate.add_argument("--tpm", type=int, default=None, help="tokens per minute (prompt + max_tokens)")
    kcreate.add_argument("--max-parallel", type=int, default=None, help="requests in flight at once")
    kcreate.add_argument("--max-tokens", type=int, default=None, help="the most one request may generate")
    kcreate.add_argument("--models", default=None,
                         help="comma-separated model ids (or patterns like 'rag:*') it may use (default: all)")
    kcreate.add_argument("--expires", default=None, help="lifetime, e.g. 30d, 12h (default: never)")
    for name, text in (("revoke", "revoke a key now"), ("rotate", "new secret, same name and limits")):
        p = keys.add_parser(name, help=text)
        p.add_argument("name")
    for name, text in (("list", "keys with their limits and status"), ("usage", "requests, tokens, last use")):
        keys.add_parser(name, help=text).add_argument("--json", action="store_true")

    evaluate = sub.add_parser("eval", help="evaluations").add_subparsers(dest="what", required=True)
    erag = evaluate.add_parser("rag", help="retrieval recall@k/MRR per mode and the answer citation rate")
    erag.add_argument("--url", default="http://127.0.0.1:3001", help="the RAG service to ask (citation rate)")
    erag.add_argument("--no-answers", action="store_true", help="retrieval only; no RAG service needed")
    erag.add_argument("--questions", default=None, help="a rag_questions.jsonl (default: the shipped set)")
    erag.add_argument("--k", type=int, default=5)
    erag.add_argument("--modes", default="dense,keyword,hybrid,graph")
    erag.add_argument("--max-tokens", type=int, default=64)
    erag.add_argument("--json", action="store_true")
    erag.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    erag.set_defaults(func=_eval_rag)
    eret = evaluate.add_parser("retrieval", help="nDCG@10, recall@10/@100, MRR@10 and latency per mode on a "
                                                 "BEIR-format folder, beside BM25 and exact dense peers")
    eret.add_argument("--beir", required=True, help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    eret.add_argument("--split", default="test")
    eret.add_argument("--modes", default="dense,keyword,hybrid,graph")
    eret.add_argument("--max-queries", type=int, default=None, help="only the first N judged queries")
    eret.add_argument("--keep", action="store_true", help="leave the collection in the graph afterwards")
    eret.add_argument("--no-peers", action="store_true", help="skip the BM25 and exact dense peers")
    eret.add_argument("--json", action="store_true")
    eret.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    eret.set_defaults(func=_eval_retrieval)

    status = sub.add_parser("status", help="champion/previous/challenger with gate verdicts, and what each service "
                                           "serves")
    status.add_argument("--name", default="gemma3-270m")
    status.add_argument("--all", action="store_true", help="also versions without an alias")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)

    rb = sub.add_parser("rollback", help="move champion back (to 'previous' by default) and restart the chat service")
    rb.add_argument("--to", default=None, metavar="VERSION", help="a version that passed its gates")
    rb.add_argument("--name", default=None, help="registered model (default: the one last deployed here)")
    rb.add_argument("--no-restart", action="store_true", help="only move the aliases (e.g. serving runs elsewhere)")
    rb.set_defaults(func=_rollback)

    models = sub.add_parser("models", help="models served at --url")
    models.add_argument("--url", default=DEFAULT_URL)
    models.set_defaults(func=_models)

    chat = sub.add_parser("chat", help="ask the served model (a REPL without a question)")
    chat.add_argument("question", nargs="*", help="the question; omit it for an interactive session")
    chat.add_argument("--url", default=DEFAULT_URL)
    chat.add_argument("--model", default=None, help="model id (default: the first one the server lists)")
    chat.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    chat.add_argument("--system", default=None, help="a system message")
    chat.add_argument("--max-tokens", type=int, default=256)
    chat.add_argument("--temperature", type=float, default=0.7)
    chat.set_defaults(func=_chat)

    stat = sub.add_parser("stat", help="worker load of a server: busy/idle slots, queue, totals, last work")
    stat.add_argument("--url", default=DEFAULT_URL)
    stat.add_argument("--json", action="store_true")
    stat.set_defaults(func=_stat)

    graph = sub.add_parser("graph", help="the embedded graph store (ArcadeDB over Bolt)").add_subparsers(
        dest="action", required=True)
    gstart = graph.add_parser("start", help="start ArcadeDB in the background and wait until Bolt answers")
    gstart.add_argument("--bolt-port", type=int, default=7687)
    gstart.add_argument("--http-port", type=int, default=2480)
    gstart.set_defaults(func=_graph_start)
    gstatus = graph.add_parser("status", help="whether the graph server is running, and where")
    gstatus.add_argument("--json", action="store_true")
    gstatus.set_defaults(func=_graph_status)
    graph.add_parser("stop", help="stop the graph server").set_defaults(func=_graph_stop)
    return parser


def main(argv: list[str] | None = None) -> int:
    # MLflow logs "Creating initial MLflow database tables" at INFO on a fresh store;
    # the CLI's contract is its own output plus at most one error line.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LlmshipError as err:
        print(f"llmship: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
