"""Entity embeddings from the co-occurrence graph: a GCN autoencoder (PyTorch Geometric ``GAE``).

Why a GAE and not Node2Vec: PyG's Node2Vec needs ``pyg-lib`` for its random walks, which cannot be
installed here; ``GCNConv`` and ``GAE`` are plain PyTorch.

- Nodes: every entity (sorted by key, so the run is reproducible), edges: ``CO_OCCURS`` as undirected,
  weighted ``1 + log(weight)`` (a pair seen in 40 chunks should not drown a node's own features).
- Features are identity-free, so a node added tomorrow gets a meaningful vector from the same model:
  a hashed one-hot of the label, ``log1p`` of degree and of weighted degree, and (``name_tokens``) hashed
  word counts of the name. Hashing is ``blake2b``, not Python's salted ``hash``.
- Encoder: ``GCNConv(in, hidden) → ReLU → GCNConv(hidden, dim)``; decoder: inner product; loss: GAE's
  reconstruction loss with uniformly sampled negatives. Full-batch Adam, CPU, seeded generator.
- Quality is measured, not assumed: a ``test_fraction`` of the edges is held out before training (node
  features and message passing see only the training edges) and scored against as many sampled non-edges:
  ROC AUC and average precision of the decoder. The vectors written are then the trained encoder applied to
  the full graph. An entity without edges still gets a vector (GCNConv adds self-loops).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmship.errors import LlmshipError


class GcnConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a YAML typo is an error, not a silent default

    dim: int = Field(default=32, ge=2, le=1024)
    hidden: int = Field(default=64, ge=2, le=4096)
    epochs: int = Field(default=200, ge=1, le=2000)
    lr: float = Field(default=0.01, gt=0)
    seed: int = 0
    test_fraction: float = Field(default=0.1, ge=0.0, lt=0.5)
    label_buckets: int = Field(default=16, ge=1)
    name_tokens: bool = True
    token_buckets: int = Field(default=64, ge=1)
    threads: int | None = Field(default=1, description="torch threads while training (None: leave as is)")


class EmbeddingReport(BaseModel):
    nodes: int = 0
    edges: int = 0
    dim: int = 0
    epochs: int = 0
    train_edges: int = 0
    test_edges: int = 0
    auc: float | None = None
    average_precision: float | None = None
    final_loss: float | None = None
    seconds: float = 0.0
    written: int = 0
    skipped: bool = False
    note: str = ""


class GraphEmbeddingError(LlmshipError):
    code = "graph_embedding_failed"


def _bucket(text: str, buckets: int) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") % buckets


def node_features(labels: Sequence[str], names: Sequence[str], edges: np.ndarray, weights: np.ndarray,
                  config: GcnConfig) -> np.ndarray:
    """Identity-free features: hashed label one-hot, log degree, log weighted degree[, hashed name words]."""
    n = len(labels)
    width = config.label_buckets + 2 + (config.token_buckets if config.name_tokens else 0)
    x = np.zeros((n, width), dtype=np.float32)
    for i, label in enumerate(labels):
        x[i, _bucket(label, config.label_buckets)] = 1.0
    deg = np.zeros(n, dtype=np.float64)
    wdeg = np.zeros(n, dtype=np.float64)
    if len(edges):
        np.add.at(deg, edges[:, 0], 1.0)
        np.add.at(deg, edges[:, 1], 1.0)
        np.add.at(wdeg, edges[:, 0], weights)
        np.add.at(wdeg, edges[:, 1], weights)
    x[:, config.label_buckets] = np.log1p(deg)
    x[:, config.label_buckets + 1] = np.log1p(wdeg)
    if config.name_tokens:
        base = config.label_buckets + 2
        for i, name in enumerate(names):
            words = name.casefold().split()
            for word in words:
                x[i, base + _bucket(word, config.token_buckets)] += 1.0 / math.sqrt(len(words))
    return x


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney ROC AUC (ties count a half)."""
    scores = np.concatenate([pos, neg])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    n_pos, n_neg = len(pos), len(neg)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    scores = np.concatenate([pos, neg])
    truth = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores, kind="mergesort")
    hits = truth[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / max(hits.sum(), 1.0))


def _sample_non_edges(n: int, count: int, taken: set[tuple[int, int]], rng: np.random.Generator) -> np.ndarray:
    out: list[tuple[int, int]] = []
    seen = set(taken)
    tries = 0
    while len(out) < count and tries < count * 50:
        tries += 1
        a, b = (int(v) for v in rng.integers(0, n, size=2))
        pair = (min(a, b), max(a, b))
        if a != b and pair not in seen:
            seen.add(pair)
            out.append(pair)
    return np.array(out, dtype=np.int64).reshape(-1, 2)


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_embeddings(labels: Sequence[str], names: Sequence[str], edges: Sequence[tuple[int, int, float]],
                     config: GcnConfig | None = None) -> tuple[np.ndarray, EmbeddingReport]:
    """Embed ``len(labels)`` nodes; ``edges``: undirected ``(i, j, weight)``, each pair once. Returns the
    ``(n, dim)`` float32 vectors and the report (held-out link-prediction AUC when there are ≥ 10 edges)."""
    import torch
    from torch_geometric.nn import GAE, GCNConv

    config = config or GcnConfig()
    started = time.perf_counter()
    n = len(labels)
    report = EmbeddingReport(nodes=n, edges=len(edges), dim=config.dim, epochs=config.epochs)
    if n == 0:
        return np.zeros((0, config.dim), dtype=np.float32), report
    pairs = np.array([(min(a, b), max(a, b)) for a, b, _ in edges], dtype=np.int64).reshape(-1, 2)
    weights = np.array([1.0 + math.log(max(float(w), 1.0)) for _, _, w in edges], dtype=np.float64)
    rng = np.random.default_rng(config.seed)
    perm = rng.permutation(len(pairs))
    n_test = round(len(pairs) * config.test_fraction) if len(pairs) >= 10 else 0
    test_idx, train_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    test_pos = pairs[test_idx]
    test_neg = _sample_non_edges(n, n_test, {(a, b) for a, b in pairs.tolist()}, rng)

    hidden, dim = config.hidden, config.dim

    class Encoder(torch.nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.conv1 = GCNConv(width, hidden)
            self.conv2 = GCNConv(hidden, dim)

        def forward(self, x, edge_index, edge_weight):
            return self.conv2(torch.relu(self.conv1(x, edge_index, edge_weight)), edge_index, edge_weight)

    def graph(idx: np.ndarray):
        p, w = pairs[idx], weights[idx]
        x = torch.from_numpy(node_features(labels, names, p, w, config))
        both = np.concatenate([p, p[:, ::-1]]).T.copy() if len(p) else np.zeros((2, 0), dtype=np.int64)
        return x, torch.from_numpy(both), torch.from_numpy(np.concatenate([w, w]).astype(np.float32))

    with _torch_threads(config.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        x, edge_index, edge_weight = graph(train_idx)
        model = GAE(Encoder(x.shape[1]))
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        pos = torch.from_numpy(pairs[train_idx].T.copy())
        loss = None
        if len(train_idx):
            for _ in range(config.epochs):
                model.train()
                optimiser.zero_grad()
                z = model.encode(x, edge_index, edge_weight)
                neg = torch.randint(0, n, (2, pos.shape[1]), generator=gen)
                loss = model.recon_loss(z, pos, neg)
                loss.backward()
                optimiser.step()
        model.eval()
        with torch.no_grad():
            if n_test and len(test_neg):
                z = model.encode(x, edge_index, edge_weight)
                score_pos = model.decode(z, torch.from_numpy(test_pos.T.copy())).numpy()
                score_neg = model.decode(z, torch.from_numpy(test_neg.T.copy())).numpy()
                report.auc = round(roc_auc(score_pos, score_neg), 4)
                report.average_precision = round(average_precision(score_pos, score_neg), 4)
            full = graph(np.arange(len(pairs)))
            vectors = model.encode(*full).numpy().astype(np.float32)
    if not np.isfinite(vectors).all():
        raise GraphEmbeddingError("GCN training diverged (non-finite embeddings); lower the learning rate")
    report.train_edges = len(train_idx)
    report.test_edges = int(n_test)
    report.final_loss = round(float(loss.detach()), 4) if loss is not None else None
    report.epochs = config.epochs if len(train_idx) else 0
    report.seconds = round(time.perf_counter() - started, 3)
    return vectors, report
