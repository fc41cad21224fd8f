"""``status`` and ``rollback``: the registry's releases and what serves them."""

from __future__ import annotations

import argparse
from typing import Any


def _status(args: argparse.Namespace) -> int:
    from llmship.release_status import KEY_METRICS, release_status

    status = release_status(args.name, every_version=args.all)
    if args.json:
        print(status.model_dump_json(indent=2))
        return 0
    print(f"{status.name}")
    for v in status.versions:
        failed = [g.name for g in v.gates if not g.passed and not g.skipped]
        skipped = [g.name for g in v.gates if g.skipped]
        applied = len(v.gates) - len(skipped)
        gates = (f"gates {applied - len(failed)}/{applied} passed" if v.gates else "gates -") + (
            f" (failed: {', '.join(failed)})" if failed else "") + (f", {len(skipped)} skipped" if skipped else "")
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
    if result.swapped:
        print(f"swapped in place on {result.url}: it serves {result.served_version} (the old engine stopped after "
              "its last request)")
    elif result.restarted:
        reuse = "rebuilt" if result.rebuilt else "reused"
        print(f"restarted {result.url} on bento {result.bento} ({reuse}); it serves {result.served_version}")
    else:
        print("not restarted: restart the serving deployment, which loads @champion when it starts")
    return 0


def register(sub: Any) -> None:
    """Add this group's commands to the top-level subparsers."""
    status = sub.add_parser("status", help="champion/previous/challenger with gate verdicts, and what each service "
                                           "serves")
    status.add_argument("--name", default="gemma3-270m")
    status.add_argument("--all", action="store_true", help="also versions without an alias")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)

    rb = sub.add_parser("rollback", help="move champion back (to 'previous' by default) and serve it: swapped in place, or restarted")
    rb.add_argument("--to", default=None, metavar="VERSION", help="a version that passed its gates")
    rb.add_argument("--name", default=None, help="registered model (default: the one last deployed here)")
    rb.add_argument("--no-restart", action="store_true", help="only move the aliases (e.g. serving runs elsewhere)")
    rb.set_defaults(func=_rollback)
