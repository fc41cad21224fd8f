"""``models``, ``chat`` and ``stat``: a client of a running server."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from llmship.cli._common import DEFAULT_URL
from llmship.errors import ServeError


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
    hosted = data.get("hosted") or []
    if hosted:
        print(f"{'hosted':<24} {'version':<28} {'in flight':>9} {'requests':>9} {'errors':>7} {'tokens':>9}  upstream")
    for h in hosted:
        where = f"{h['provider']} {h['upstream_model']}" + (f" at {h['base_url']}" if h.get("base_url") else "")
        print(f"{h['model']:<24} {h['version']:<28} {h['in_flight']:>9} {h['requests_total']:>9} {h['errors_total']:>7} "
              f"{h['generated_tokens_total']:>9}  {where}")
    for alias, targets in (data.get("fallbacks") or {}).items():
        print(f"alias {alias}: {' > '.join(targets)}")
    return 0


def register(sub: Any) -> None:
    """Add this group's commands to the top-level subparsers."""
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
