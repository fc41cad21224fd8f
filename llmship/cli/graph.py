"""The ``graph`` group: the embedded graph store."""

from __future__ import annotations

import argparse
import json
from typing import Any


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


def register(sub: Any) -> None:
    """Add this group's commands to the top-level subparsers."""
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
