"""The ``keys`` group: API keys for the gateway."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


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


def register(sub: Any) -> None:
    """Add this group's commands to the top-level subparsers."""
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
