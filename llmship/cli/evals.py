"""The ``eval`` group: RAG and BEIR retrieval evaluations."""

from __future__ import annotations

import argparse
import json
from typing import Any


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


def register(sub: Any) -> None:
    """Add this group's commands to the top-level subparsers."""
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
