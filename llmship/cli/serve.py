"""The ``serve`` group: the background chat server (info, status, stop) and the RAG service."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmship.errors import ServeError


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
          + "".join(f"""
  hosted         {name}  (models:/{name}@champion, through the gateway)"""
                    for name in (s.get("serve_config") or {}).get("hosted") or [])
          + "".join(f"""
  alias          {alias} = {' > '.join(targets)}  (fallback order)"""
                    for alias, targets in ((s.get("serve_config") or {}).get("fallbacks") or {}).items())
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


def register(sub: Any) -> None:
    """Add this group's commands to the top-level subparsers."""
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
