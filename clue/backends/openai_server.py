"""OpenAI-compatible chat server backend (`vllm serve`, TGI, SGLang, any `/v1/chat/completions`).

This is how a run scales past one machine: point clue at a served cluster. Requests go out concurrently (at most
`max_concurrency` at once); 429 and 5xx answers and dropped connections are retried with exponential backoff
(honouring `Retry-After`), each request has a timeout. A request the server keeps rejecting becomes a failed sample;
a server that stops answering aborts the model's run with what was generated already stored, so a re-run resumes.

Prompts are rendered and fitted with the model's own tokenizer and chat template (`tokenizer`, default `path`), the
same way as the local engines, so that documents are shortened identically; `tokenizer = "none"` sends prompts as
they are (the server then rejects over-long ones as failed samples, and LongHealth cannot budget its documents).

Where the prompts may go is the data-use guard's (clue/backends/data_use.py): a credentialed task only to a loopback
address, a Unix socket (`unix_socket`) or a host the entry declares approved; requests follow no redirect and a
loopback URL is held to a loopback peer (clue/backends/connection.py).

The API key is read from the environment variable named by `api_key_env` at request time. It is never part of a
fingerprint, a description, an error message, the store or a report.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from clue.backends.base import failed_generation
from clue.backends.chat import ChatTokenizer, as_chat, check_template, fit_all
from clue.backends.connection import NotLoopback, RedirectRefused, opener
from clue.backends.data_use import Destination, server_destination
from clue.backends.targets import fit_targets, score_each
from clue.errors import ClueError, ConfigError
from clue.models.matrix import ModelSpec, backend_options
from clue.store.fingerprint import location_fingerprint
from clue.store.sqlite import GenerationStore
from clue.types import FinishReason, Generation, GenerationSettings, Prompt, ScoredTargets, TargetRequest, TargetScore
from clue.util.hosts import url_host
from clue.util.options import TOKENS_MAX

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
FATAL_STATUSES = frozenset({401, 403, 404})  # wrong key, wrong model name: every request would fail the same way
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
CONSECUTIVE_FAILURES_TO_ABORT = 5


class ServerUnavailable(ClueError):
    """The server stopped answering (or keeps failing): the model's run stops, stored generations are kept."""


@dataclass(frozen=True)
class _Answer:
    text: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float


class _RequestFailed(Exception):
    def __init__(self, message: str, *, transport: bool, fatal: bool = False):
        super().__init__(message)
        self.transport, self.fatal = transport, fatal


@dataclass(frozen=True)
class OpenAIOptions:
    """The server backend's own keys of a model entry."""

    base_url: str = ""  # "http(s)://host:port/v1"
    served_name: str | None = None  # the model name the server knows (default: path)
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key; the key itself is never stored
    max_concurrency: int = 8
    request_timeout: float = 600.0
    max_retries: int = 5
    # the server returns prompt log-probabilities on /v1/completions with echo (the contamination diagnostic asks
    # for them only then: vLLM's server fails computing them through a LoRA adapter, vllm-project/vllm#16668)
    prompt_logprobs: bool = False
    # a server listening on a Unix socket on this machine (vllm serve --uds PATH): every request goes over it;
    # base_url still gives the path ("http://localhost/v1")
    unix_socket: str = ""

    def problem(self) -> str | None:
        if not self.base_url.startswith(("http://", "https://")):
            return 'backend "openai" needs base_url = "http(s)://host:port/v1"'
        if "@" in self.base_url.split("//", 1)[1].split("/", 1)[0]:
            return (
                "base_url must not carry credentials; put the key in the environment variable named by "
                f"api_key_env ({self.api_key_env})"
            )
        try:
            url_host(self.base_url)  # the data-use guard reads the host from this text
        except ConfigError as exc:
            return f"base_url {exc}"
        if self.unix_socket and not self.base_url.startswith("http://"):
            return 'unix_socket needs an http:// base_url (e.g. "http://localhost/v1"): no TLS over a local socket'
        # each count bounded: a thread per concurrent request, a wait per retry (10**9 of either is a typo)
        bounds = (("max_concurrency", 1, 1024), ("request_timeout", 1e-3, 86400.0), ("max_retries", 0, 100))
        for key, low, high in bounds:
            value = getattr(self, key)
            if not low <= value <= high:  # NaN fails too
                return f"{key} must be between {low:g} and {high:g}, not {value!r}"
        return None


class OpenAIServerBackend:
    Options = OpenAIOptions
    loads = 0  # nothing is loaded here: the server holds the weights
    per_sample_outputs = False
    batch_sensitive = False

    @staticmethod
    def destination(spec: ModelSpec) -> Destination:
        """Where the prompts go, for the data-use guard: the server's host as base_url writes it, or the socket."""
        options = backend_options(spec, OpenAIOptions)
        return server_destination(options.base_url, options.unix_socket)

    @staticmethod
    def check(spec: ModelSpec, location: str) -> None:
        """Start-up: the server applies adapters, so an adapter here would silently not be applied."""
        if spec.adapter:
            raise ConfigError(
                f"model {spec.name!r}: with backend 'openai' the server applies adapters; serve the adapter under a "
                "name (vllm serve --lora-modules NAME=PATH) and set served_name = NAME"
            )
        tokenizer = spec.tokenizer or location
        if tokenizer != "none":
            check_template(spec, tokenizer)

    def __init__(self, spec: ModelSpec, location: str):
        self.options = backend_options(spec, OpenAIOptions)
        problem = self.options.problem()
        if problem:  # the matrix reader refuses it first; an entry built in code reaches here
            raise ConfigError(f"model {spec.name!r}: {problem}")
        self.check(spec, location)
        self.spec = spec
        self.url = self.options.base_url.rstrip("/")
        self._opener = opener(self.url, self.options.unix_socket)
        self.served_name = self.options.served_name or location
        self.requests = 0
        self.retries = 0
        tokenizer = spec.tokenizer or location
        self.chat: ChatTokenizer | None = None if tokenizer == "none" else ChatTokenizer(spec, tokenizer)
        # `_stop` ends one call's work (a fatal answer, Ctrl-C, the call's end) and is cleared when the next begins;
        # `_closed` ends the backend's: a probe scored after a generation batch must not find the batch's stop set
        self._stop = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()

    # -- identity -----------------------------------------------------------------------------------------------
    def fingerprint(self, store: GenerationStore) -> dict[str, Any]:
        """The server's weights are out of sight: the served name, the entry's revision label and the endpoint
        identify them (set `revision` when the served weights change), plus the tokenizer and template used to fit
        the prompts. Never the key."""
        tokenizer: Any = None
        if self.chat is not None:
            tokenizer = {
                "files": location_fingerprint(self.chat.location, None, store),
                "chat_template": self.chat.template_sha256,
                "context": self.chat.context,
            }
        return {
            "engine": "openai-server",
            "base_url": self.url,
            "model": self.served_name,
            "revision": self.spec.revision,
            "tokenizer": tokenizer,
            "system_role": self.spec.system_role,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "openai-server",
            "base_url": self.url,
            "served_model": self.served_name,
            "revision": self.spec.revision,
            "tokenizer": self.chat.location if self.chat else None,
            "context": self.chat.context if self.chat else None,
            "system_prompt_folded_into_user_turn": self.chat.system_folded if self.chat else False,
            "max_concurrency": self.options.max_concurrency,
            "requests": self.requests,
            "retries": self.retries,
            "api_key_env": self.options.api_key_env,
            "api_key_set": bool(os.environ.get(self.options.api_key_env)),
        }

    def token_counter(self) -> ChatTokenizer | None:
        return self.chat

    def close(self) -> None:
        self._closed.set()
        self._stop.set()

    def _begin(self) -> None:
        """A call's start: the previous call's stop no longer applies (a closed backend stays closed)."""
        if not self._closed.is_set():
            self._stop.clear()

    # -- generation ---------------------------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: GenerationSettings,
        *,
        desc: str = "",
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        from tqdm.auto import tqdm

        self._begin()
        results: dict[int, Generation] = {}
        jobs = request_jobs(self.chat, self.spec, prompts, results, on_result)

        state = _RunState()
        pool = _DaemonPool(self.options.max_concurrency)
        with (
            tqdm(
                total=len(prompts),
                initial=len(results),
                desc=desc or f"{self.spec.name}: requests",
                unit="prompt",
                leave=False,
            ) as bar,
            pool.cancel_on_interrupt(self._stop),
        ):
            pending: dict[Future[_Answer], tuple[int, int, int]] = {}
            queue = iter(jobs)

            def submit_next() -> bool:
                job = next(queue, None)
                if job is None:
                    return False
                i, chat, prompt_tokens, removed = job
                payload = chat_payload(self.served_name, chat, prompts[i].max_new_tokens, settings)
                pending[pool.submit(self._post, payload, "chat/completions", _parse)] = (i, prompt_tokens, removed)
                return True

            # bounded: never more than max_concurrency requests queued, so an abort leaves nothing half-sent
            while len(pending) < self.options.max_concurrency and submit_next():
                pass
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i, prompt_tokens, removed = pending.pop(future)
                    generation = self._outcome(future, prompts[i], prompt_tokens, removed, state)
                    if generation is None:
                        continue
                    results[i] = generation
                    if on_result:
                        on_result(i, generation)
                    bar.update(1)
                    if state.abort is None:
                        submit_next()
        if state.abort is not None:
            if isinstance(state.abort, ConfigError):
                raise state.abort
            raise ServerUnavailable(
                f"{state.abort}; {len(results)} of {len(prompts)} "
                "generations were finished and stored, a re-run resumes from there"
            )
        return [results[i] for i in range(len(prompts))]

    def _outcome(
        self, future: Future[_Answer], prompt: Prompt, prompt_tokens: int, removed: int, state: _RunState
    ) -> Generation | None:
        """The generation a finished request gives; None when it stops the run (a fatal answer such as 401, or the
        server gone), which `state.abort` then says. Many failures in a row stop the run too."""
        try:
            answer = future.result()
        except _RequestFailed as exc:
            if exc.fatal or exc.transport:
                stop = ConfigError(f"model {self.spec.name!r}: {exc}") if exc.fatal else ServerUnavailable(f"{exc}")
                state.abort = state.abort or stop
                self._stop.set()
                return None
            state.consecutive_failures += 1
            if state.consecutive_failures >= CONSECUTIVE_FAILURES_TO_ABORT:
                state.abort = state.abort or ServerUnavailable(
                    f"{state.consecutive_failures} requests in a row failed after retries (last: {exc})"
                )
                self._stop.set()
            return failed_generation(prompt, str(exc))
        state.consecutive_failures = 0
        reason = finish_reason(answer.finish_reason)
        return Generation(
            prompt.sample_id,
            answer.text,
            answer.prompt_tokens if answer.prompt_tokens is not None else prompt_tokens,
            answer.completion_tokens if answer.completion_tokens is not None else 0,
            reason,
            answer.latency_s,
            truncated_tokens=removed + prompt.truncated_tokens,
            error=None
            if reason != "error"
            else f"the server ended the generation with finish_reason {answer.finish_reason!r}",
        )

    def score_targets(
        self,
        requests: Sequence[TargetRequest],
        *,
        desc: str = "",
        on_result: Callable[[int, ScoredTargets], None] | None = None,
    ) -> list[ScoredTargets]:
        """Prompt log-probabilities through `/v1/completions` with echo, where the entry allows it (`EchoScores`)."""
        self._begin()
        return EchoScores(self).score(requests, desc or f"{self.spec.name}: scoring answers", on_result)

    def _post(self, payload: dict[str, Any], route: str, parse: Callable[[dict[str, Any], float], _T]) -> _T:
        """One request to `route` (a chat completion, an echo) with retries, its answer parsed (a malformed one is
        retried like a failure); raises _RequestFailed with a message that never contains the key."""
        body = json.dumps(payload).encode()
        key = os.environ.get(self.options.api_key_env, "")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last, transport = "", True
        for attempt in range(self.options.max_retries + 1):
            if self._closed.is_set():
                raise _RequestFailed("the backend was closed", transport=True)
            if self._stop.is_set():
                raise _RequestFailed("run stopped", transport=True)
            with self._lock:
                self.requests += 1
                self.retries += attempt > 0
            request = urllib.request.Request(f"{self.url}/{route}", data=body, headers=headers, method="POST")
            began = time.perf_counter()
            retry_after: float | None = None
            try:
                with self._opener.open(request, timeout=self.options.request_timeout) as response:
                    data = json.loads(response.read())
                return parse(data, time.perf_counter() - began)
            except urllib.error.HTTPError as exc:  # raises unless the status is worth a retry
                last, retry_after = _http_failure(exc, f"{self.url}/{route}", key, self.options.api_key_env)
                transport = False
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)  # urllib wraps what connecting raised
                if isinstance(reason, NotLoopback):
                    raise _RequestFailed(str(reason), transport=False, fatal=True) from None
                last = f"no answer from {self.url} ({type(reason).__name__}: {_scrub(str(reason), key)})"
                transport = True
            except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
                last = f"malformed answer from {self.url}: {type(exc).__name__}: {_scrub(str(exc), key)}"
                transport = False
            if attempt == self.options.max_retries:
                break
            delay = retry_after if retry_after is not None else min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
            self._stop.wait(delay * (1 + random.random() * 0.25) if retry_after is None else delay)
        raise _RequestFailed(f"{last} (after {self.options.max_retries} retries)", transport=transport)


_T = TypeVar("_T")


def _http_failure(exc: urllib.error.HTTPError, where: str, key: str, key_env: str) -> tuple[str, float | None]:
    """An HTTP error answer: (the message, the server's Retry-After) when it is worth a retry (429, 5xx); a refused
    redirect, a fatal status (401, 403, 404) or another client error raises _RequestFailed."""
    detail = _scrub(exc.read()[:300].decode("utf-8", "replace"), key)
    last = f"HTTP {exc.code} from {where}: {detail}"
    if isinstance(exc, RedirectRefused):
        raise _RequestFailed(f"HTTP {exc.code} from {where}: {exc.msg}", transport=False, fatal=True) from None
    if exc.code in FATAL_STATUSES:
        hint = f" (is {key_env} set?)" if exc.code in (401, 403) else ""
        raise _RequestFailed(last + hint, transport=False, fatal=True) from None
    if exc.code not in RETRY_STATUSES:
        raise _RequestFailed(last, transport=False) from None
    return last, _retry_after(exc.headers.get("Retry-After"))


@dataclass
class _RunState:
    """What one generate() call tracks across requests: failures in a row, and the error that stopped it."""

    consecutive_failures: int = 0
    abort: ServerUnavailable | ConfigError | None = None


class _DaemonPool:
    """A fixed set of daemon worker threads. Unlike ThreadPoolExecutor, whose exit waits for every request in
    flight (up to request_timeout x retries) and whose threads the interpreter joins at exit, an interrupted run
    returns at once: queued requests are cancelled, in-flight ones are abandoned (their answers would be lost
    anyway), and what was already generated is in the store."""

    def __init__(self, workers: int):
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._workers = [
            threading.Thread(target=self._work, name=f"clue-openai-{i}", daemon=True) for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, fn: Callable[..., _T], *args: Any) -> Future[_T]:
        future: Future[_T] = Future()
        self._queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

    def shutdown(self) -> None:
        for _ in self._workers:
            self._queue.put(None)

    @contextmanager
    def cancel_on_interrupt(self, stop: threading.Event) -> Iterator[None]:
        """On Ctrl-C (or any error): stop retries, cancel what has not started, return without waiting."""
        try:
            yield
        finally:
            stop.set()
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
            self.shutdown()


def request_jobs(
    chat: ChatTokenizer | None,
    spec: ModelSpec,
    prompts: Sequence[Prompt],
    results: dict[int, Generation],
    on_result: Callable[[int, Generation], None] | None,
) -> list[tuple[int, list[dict[str, str]], int, int]]:
    """(index, chat, prompt tokens, tokens removed) per request: prompts fitted to the tokenizer's context (one that
    cannot fit fails here, into `results`), or sent as they are without a tokenizer."""
    if chat is None:
        return [(i, as_chat(p.messages, spec.system_role), 0, 0) for i, p in enumerate(prompts)]
    return [
        (i, chat.chat(fitted.messages), len(fitted.ids), fitted.removed)
        for i, fitted in fit_all(chat, prompts, results, on_result)
    ]


def finish_reason(reported: str) -> FinishReason:
    """The server's finish reason in clue's terms. "stop" (and "eos", "stop_sequence", "end_turn", "tool_calls",
    "function_call") ends a turn; "length" hit max_tokens; vLLM's "abort" and
    "error", "content_filter" and anything unknown mean the text is not the model's finished answer: an error
    (a failed sample), never a silent "stop"."""
    if reported == "length":
        return "length"
    if reported in ("stop", "eos", "eos_token", "stop_sequence", "end_turn", "tool_calls", "function_call"):
        return "stop"
    return "error"


def _parse(data: dict[str, Any], latency: float) -> _Answer:
    choice = data["choices"][0]
    text = choice["message"].get("content") or ""
    if not isinstance(text, str):
        raise TypeError(f"message content is {type(text).__name__}, not a string")
    usage = data.get("usage") or {}
    if not isinstance(usage, dict):
        raise TypeError(f"usage is {type(usage).__name__}, not an object")
    return _Answer(
        text,
        str(choice.get("finish_reason") or "stop"),
        _token_count(usage, "prompt_tokens"),
        _token_count(usage, "completion_tokens"),
        latency,
    )


def _token_count(usage: dict[str, Any], field: str) -> int | None:
    """A usage count as a number of tokens (None: the server gave none). A count that is negative, fractional,
    not finite, huge or not a number is a malformed answer naming the field (retried, then the sample fails), never a
    negative rate in the progress line or the results."""
    value = usage.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= TOKENS_MAX:
        raise ValueError(f"usage.{field} is {value!r}, not a count of tokens")
    return value


def chat_payload(
    served_name: str, chat: list[dict[str, str]], max_tokens: int, settings: GenerationSettings
) -> dict[str, Any]:
    return {
        "model": served_name,
        "messages": chat,
        "max_tokens": max_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p if not settings.greedy else 1.0,
        "seed": settings.seed,
        "n": 1,
        "stream": False,
    }


class EchoScores:
    """OpenAIServerBackend.score_targets: each target as the continuation of the prompt's token ids on
    `/v1/completions` with `echo` and `logprobs` (the OpenAI API's route to prompt log-probabilities; vLLM's server
    and others give them), where the entry says the server gives them (`prompt_logprobs = true`: asking one that
    crashes on such a request, as vLLM's does through a LoRA adapter, would take the user's server down). The prompt
    is rendered and fitted with the entry's tokenizer, as for generation. Without a tokenizer (`tokenizer = "none"`)
    the token ids are unknown: every request fails with that reason, as does every request after the server refused
    one (a server without echo), so the diagnostic says "not available" once."""

    def __init__(self, backend: OpenAIServerBackend):
        self.backend = backend
        self.refused: str | None = None
        if not backend.options.prompt_logprobs:
            self.refused = NOT_MARKED
        elif backend.chat is None:
            self.refused = 'the entry has tokenizer = "none": the prompt\'s tokens are unknown'

    def score(
        self, requests: Sequence[TargetRequest], desc: str, on_result: Callable[[int, ScoredTargets], None] | None
    ) -> list[ScoredTargets]:
        return score_each(requests, self.one, desc=desc, on_result=on_result)

    def one(self, request: TargetRequest) -> ScoredTargets:
        if self.refused:
            return ScoredTargets((), self.refused)
        assert self.backend.chat is not None
        fitted = fit_targets(self.backend.chat, request)
        if isinstance(fitted, str):
            return ScoredTargets((), fitted)
        context, targets = fitted
        scores = []
        for ids in targets:
            payload = {"model": self.backend.served_name, "prompt": context + ids, "max_tokens": 1, "temperature": 0}
            try:
                logprobs = self.backend._post({**payload, "echo": True, "logprobs": 0}, "completions", _echoed_logprobs)
            except _RequestFailed as exc:
                if "HTTP 4" in str(exc):
                    self.refused = f"the server gives no prompt log-probabilities ({exc})"
                return ScoredTargets((), str(exc))
            span = logprobs[len(context) : len(context) + len(ids)]
            if len(span) < len(ids) or any(v is None for v in span):
                return ScoredTargets((), "the server's echo does not cover the prompt's tokens")
            scores.append(TargetScore(sum(v for v in span if v is not None), len(ids)))
        return ScoredTargets(tuple(scores))


NOT_MARKED = (
    "the entry does not set prompt_logprobs = true (set it where the server returns prompt log-probabilities on "
    "/v1/completions with echo; vLLM's does, except through LoRA adapters: vllm-project/vllm#16668)"
)


def _echoed_logprobs(data: dict[str, Any], latency: float) -> list[float | None]:
    """The per-token log-probabilities of an echoed prompt (`choices[0].logprobs.token_logprobs`; the first token
    has none). A value that is not a number is a malformed answer."""
    values = data["choices"][0]["logprobs"]["token_logprobs"]
    if not isinstance(values, list):
        raise TypeError(f"token_logprobs is {type(values).__name__}, not a list")
    out: list[float | None] = []
    for v in values:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
            raise ValueError("token_logprobs holds a value that is not a finite number")
        out.append(None if v is None else float(v))
    return out


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(BACKOFF_CAP_S * 2, max(0.0, float(value)))
    except ValueError:
        return None  # an HTTP date: fall back to exponential backoff


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text
