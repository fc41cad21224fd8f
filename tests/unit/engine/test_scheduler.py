"""Continuous batching: requests that join and leave a running batch get exactly the tokens they get alone."""

from __future__ import annotations

import threading
import time

import pytest

from llmship.engine import SamplingParams, load_engine
from llmship.engine.scheduler import Scheduler
from llmship.errors import ContextLengthExceeded, EngineUnavailable

TEXTS = ["The", "Flour provides the structure of bread",
         "Every morning the baker lights the oven, weighs the flour, and waits", "Rain fell", "Bread"]


class Collector:
    """A sink per request that records tokens and signals when every request has finished."""

    def __init__(self, count: int) -> None:
        self.tokens: list[list[int]] = [[] for _ in range(count)]
        self.text = [""] * count
        self.errors: list[BaseException] = []
        self.done = [threading.Event() for _ in range(count)]

    def sink(self, i: int):
        def put(item):
            if isinstance(item, BaseException):
                self.errors.append(item)
                self.done[i].set()
                return
            if item.completion_tokens > len(self.tokens[i]):
                self.tokens[i].append(item.token_id)
            self.text[i] += item.text_delta
            if item.finished:
                self.done[i].set()
        return put

    def wait(self, timeout: float = 60) -> None:
        for event in self.done:
            assert event.wait(timeout), "a request never finished"


@pytest.fixture(scope="module", params=["pytorch", "onnx"])
def engine(request, tiny_built, tiny_onnx):
    if request.param == "onnx":
        return load_engine(tiny_built.folder, "onnx", onnx_dir=tiny_onnx.path)
    return load_engine(tiny_built.folder, "pytorch", dtype="float32")


def _greedy(n: int, **kw) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True, **kw)


def test_requests_joining_and_leaving_match_running_alone(engine):
    prompts = [engine.encode(t) for t in TEXTS]
    params = [_greedy(n) for n in (20, 6, 28, 12, 9)]
    alone = [engine.generate([p], q)[0] for p, q in zip(prompts, params)]
    sched = Scheduler(engine, max_batch=3).start()  # 5 requests, 3 slots: two must join a running batch
    try:
        got = Collector(len(prompts))
        for i, (p, q) in enumerate(zip(prompts, params)):
            sched.submit(p, q, got.sink(i))
            time.sleep(0.02)  # staggered arrivals: joins happen mid-generation
        got.wait()
        assert not got.errors
        assert got.tokens == [c.token_ids for c in alone]
        assert got.text == [c.text for c in alone]
        stats = sched.stats()
        assert stats.requests_total == stats.requests_finished == 5
        assert stats.generated_tokens_total == sum(len(c.token_ids) for c in alone)
        assert stats.slots_busy == 0 and stats.queue_length == 0
    finally:
        sched.close()


def test_seeded_sampling_is_the_same_in_a_running_batch(engine):
    prompts = [engine.encode(t) for t in TEXTS[:3]]
    sampled = SamplingParams(max_tokens=12, temperature=0.9, top_p=0.95, seed=42, ignore_eos=True)
    alone = engine.generate([prompts[2]], sampled)[0].token_ids
    sched = Scheduler(engine, max_batch=4).start()
    try:
        got = Collector(3)
        sched.submit(prompts[0], _greedy(30), got.sink(0))
        sched.submit(prompts[1], _greedy(5), got.sink(1))
        time.sleep(0.05)
        sched.submit(prompts[2], sampled, got.sink(2))
        got.wait()
        assert got.tokens[2] == alone
    finally:
        sched.close()


def test_a_cancelled_request_leaves_the_batch_and_frees_its_slot(engine):
    prompt = engine.encode(TEXTS[1])
    sched = Scheduler(engine, max_batch=2).start()
    try:
        first_token = threading.Event()
        request = sched.submit(prompt, _greedy(200), lambda item: first_token.set())
        assert first_token.wait(30)
        sched.cancel(request)
        deadline = time.monotonic() + 10
        while sched.stats().slots_busy and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = sched.stats()
        assert stats.slots_busy == 0 and stats.requests_cancelled == 1
        assert stats.generated_tokens_total < 200
        got = Collector(1)  # and the scheduler still serves the next one
        sched.submit(prompt, _greedy(4), got.sink(0))
        got.wait()
        assert len(got.tokens[0]) == 4
    finally:
        sched.close()


def test_a_full_queue_refuses_with_503_and_bad_requests_fail_at_submit(engine):
    prompt = engine.encode(TEXTS[0])
    sched = Scheduler(engine, max_batch=1, max_waiting=1)  # not started: nothing leaves the queue
    sched.submit(prompt, _greedy(2), lambda item: None)
    with pytest.raises(EngineUnavailable) as err:
        sched.submit(prompt, _greedy(2), lambda item: None)
    assert err.value.status == 503
    with pytest.raises(ContextLengthExceeded):
        sched.submit(prompt, _greedy(engine.context_length), lambda item: None)


def test_close_drains_running_requests_then_refuses_new_ones(engine):
    prompt = engine.encode(TEXTS[2])
    sched = Scheduler(engine, max_batch=2).start()
    got = Collector(1)
    sched.submit(prompt, _greedy(16), got.sink(0))
    sched.close(drain_timeout_s=60)
    assert got.done[0].is_set() and not got.errors
    assert len(got.tokens[0]) == 16
    with pytest.raises(EngineUnavailable, match="shutting down"):
        sched.submit(prompt, _greedy(2), lambda item: None)
