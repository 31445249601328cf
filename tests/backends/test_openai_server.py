"""The OpenAI-compatible server backend against a real HTTP server on 127.0.0.1 (tests/helpers/openai_server.py):
identical records to the transformers backend when the server runs the same tiny model, bounded concurrency,
retries on 429/5xx, failed samples for rejected requests, an abort (with stored progress) when the server dies,
and an API key that never leaves the Authorization header."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import clue.backends.openai_server as openai_server
from clue.backends.openai_server import OpenAIServerBackend, ServerUnavailable
from clue.backends.transformers import TransformersBackend
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec
from clue.store.sqlite import GenerationStore
from clue.types import ChatMessage, Generation, GenerationSettings, Prompt
from clue.util.options import TOKENS_MAX
from tests.helpers import REPO
from tests.helpers.openai_server import FakeOpenAIServer, tiny_model_responder

SECRET = "sk-test-0123456789abcdef"

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_server, "BACKOFF_BASE_S", 0.01)


def prompts(n: int, *, doc: str | None = None) -> list[Prompt]:
    out = []
    for i in range(n):
        user = f"Question {i}: does patient {i} have diabetes?" + (f"\n{doc}\nAnswer briefly." if doc else "")
        messages = (ChatMessage("system", "You are a clinician."), ChatMessage("user", user))
        out.append(Prompt("t", f"s{i}", messages, 8, doc))
    return out


def server_backend(url: str, tokenizer: str | Path = "none", **extra: object) -> OpenAIServerBackend:
    spec = ModelSpec.of(
        "served",
        path="served",
        backend="openai",
        base_url=url,
        tokenizer=str(tokenizer),
        api_key_env="CLUE_TEST_KEY",
        **extra,
    )
    return OpenAIServerBackend(spec, "served")


def test_records_are_identical_to_the_transformers_backend(tiny_model_dir: Path) -> None:
    doc = " ".join(f"line {i}: the patient was seen in clinic." for i in range(120))
    batch = [*prompts(3), *prompts(2, doc=doc)]
    local = TransformersBackend(ModelSpec("tiny", path=str(tiny_model_dir), max_model_len=256), str(tiny_model_dir))
    expected = local.generate(batch, GenerationSettings(batch_size=1))
    with FakeOpenAIServer(tiny_model_responder(tiny_model_dir)) as server:
        remote = server_backend(server.base_url, tiny_model_dir, max_model_len=256, max_concurrency=2)
        got = remote.generate(batch, GenerationSettings())
    assert any(g.truncated_tokens > 0 for g in expected)  # the long documents really were shortened
    for e, g in zip(expected, got, strict=True):
        assert (g.sample_id, g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason, g.truncated_tokens) == (
            e.sample_id,
            e.text,
            e.prompt_tokens,
            e.completion_tokens,
            e.finish_reason,
            e.truncated_tokens,
        )
        assert g.error is None and g.latency_s > 0


def test_concurrency_is_bounded_and_results_keep_their_order() -> None:
    with FakeOpenAIServer(delay_s=0.05) as server:
        backend = server_backend(server.base_url, max_concurrency=3)
        streamed: list[int] = []
        out = backend.generate(prompts(20), GenerationSettings(), on_result=lambda i, g: streamed.append(i))
    assert 2 <= server.state.max_in_flight <= 3
    assert [g.sample_id for g in out] == [f"s{i}" for i in range(20)]
    assert sorted(streamed) == list(range(20))
    assert all(g.text.startswith("echo:") and g.error is None for g in out)


def test_429_and_5xx_are_retried_until_they_succeed() -> None:
    with FakeOpenAIServer(faults={1: 429, 2: 500, 3: 503, 4: 502}) as server:
        backend = server_backend(server.base_url, max_concurrency=1, max_retries=4)
        out = backend.generate(prompts(3), GenerationSettings())
    assert all(g.error is None for g in out)
    assert len(server.state.requests) == 3 + 4 and backend.retries == 4


def test_a_request_the_server_keeps_failing_becomes_a_failed_sample() -> None:
    with FakeOpenAIServer(faults={2: 500, 3: 500}) as server:
        backend = server_backend(server.base_url, max_concurrency=1, max_retries=1)
        out = backend.generate(prompts(3), GenerationSettings())
    assert [g.error is None for g in out] == [True, False, True]
    assert out[1].finish_reason == "error" and out[1].text == ""
    assert "HTTP 500" in str(out[1].error) and "after 1 retries" in str(out[1].error)


def test_a_rejected_request_is_not_retried() -> None:
    with FakeOpenAIServer(faults={1: 400}) as server:
        backend = server_backend(server.base_url, max_concurrency=1)
        out = backend.generate(prompts(2), GenerationSettings())
    assert "HTTP 400" in str(out[0].error) and out[1].error is None
    assert len(server.state.requests) == 2


def test_a_server_that_dies_mid_run_aborts_with_what_was_done_streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    kept: list[Generation] = []
    with FakeOpenAIServer(die_after=5) as server:
        backend = server_backend(server.base_url, max_concurrency=1, max_retries=2)
        with pytest.raises(ServerUnavailable, match=r"5 of 12 generations were finished and stored") as info:
            backend.generate(prompts(12), GenerationSettings(), on_result=lambda i, g: kept.append(g))
    assert "no answer from" in str(info.value)
    assert len(kept) == 5 and all(g.error is None for g in kept)


def test_a_server_failing_every_request_aborts_instead_of_failing_every_sample() -> None:
    with FakeOpenAIServer(faults={n: 503 for n in range(1, 100)}) as server:
        backend = server_backend(server.base_url, max_concurrency=1, max_retries=1)
        with pytest.raises(ServerUnavailable, match="5 requests in a row failed"):
            backend.generate(prompts(30), GenerationSettings())
    assert len(server.state.requests) == 5 * 2


def test_the_api_key_is_sent_but_never_stored_described_or_echoed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLUE_TEST_KEY", SECRET)
    with FakeOpenAIServer(faults={2: 401}) as server:
        backend = server_backend(server.base_url, max_concurrency=1)
        with pytest.raises(ConfigError) as info:
            backend.generate(prompts(3), GenerationSettings())
    assert server.state.authorization[0] == f"Bearer {SECRET}"
    assert "HTTP 401" in str(info.value) and "CLUE_TEST_KEY" in str(info.value) and SECRET not in str(info.value)
    store = GenerationStore(tmp_path / "store.sqlite3")
    assert SECRET not in repr(backend.fingerprint(store)) + repr(backend.describe())
    assert backend.describe()["api_key_set"] is True


def test_no_key_means_no_authorization_header() -> None:
    os.environ.pop("CLUE_TEST_KEY", None)
    with FakeOpenAIServer() as server:
        server_backend(server.base_url).generate(prompts(1), GenerationSettings())
    assert server.state.authorization == [None]


def test_decoding_settings_reach_the_server() -> None:
    with FakeOpenAIServer() as server:
        server_backend(server.base_url).generate(prompts(1), GenerationSettings(temperature=0.7, top_p=0.9, seed=5))
    body = server.state.requests[0]
    assert (body["temperature"], body["top_p"], body["seed"], body["max_tokens"]) == (0.7, 0.9, 5, 8)
    assert body["model"] == "served" and body["messages"][0] == {"role": "system", "content": "You are a clinician."}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"backend": "openai"}, "needs base_url"),
        ({"backend": "openai", "base_url": "http://user:pw@host/v1"}, "must not carry credentials"),
        ({"base_url": "http://host/v1"}, "only used with backend"),
        (
            {"backend": "openai", "base_url": "http://h/v1", "max_concurrency": 0},
            "max_concurrency must be between 1 and 1024",
        ),
        ({"backend": "openai", "base_url": "http://h/v1", "max_concurrency": 10**9}, "max_concurrency must be betw"),
        ({"backend": "openai", "base_url": "http://h/v1", "max_retries": 10**6}, "max_retries must be between 0"),
        ({"backend": "openai", "base_url": "http://h/v1", "max_retries": "3"}, "must be an integer"),
    ],
)
def test_server_entries_are_validated(tmp_path: Path, entry: dict[str, object], message: str) -> None:
    from clue.models.matrix import load_matrix

    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in entry.items()]
    (tmp_path / "m.toml").write_text('[models.x]\npath = "x"\n' + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=message):
        load_matrix(tmp_path / "m.toml")


def test_plugin_run_against_a_server_that_dies_resumes_and_never_writes_the_key(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    """End to end: `pytest -k mednli` with two server entries; the server dies after 30 answers, the run fails
    saying progress was stored; a second run against the restarted server reuses those 30 and passes."""
    import json

    from tests.helpers.replay_project import mednli_records, run

    (pytester.path / "data" / "mednli").mkdir(parents=True)
    (pytester.path / "data" / "mednli" / "mli_test_v1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in mednli_records())
    )
    pytester.makepyfile(test_mednli=(REPO / "benchmarks" / "test_mednli.py").read_text())
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("CLUE_TEST_KEY", SECRET)
    with FakeOpenAIServer(die_after=30) as server:
        entry = (
            f'backend = "openai"\nbase_url = "{server.base_url}"\n'
            f'tokenizer = "{tiny_model_dir}"\napi_key_env = "CLUE_TEST_KEY"\nmax_concurrency = 1\nmax_retries = 1\n'
        )
        (pytester.path / "models.toml").write_text(
            f'[models.base]\npath = "base"\n{entry}\n[models.candidate]\npath = "ft"\nbase = "base"\n{entry}'
        )
        died = run(pytester)
        port = server.port
    died.assert_outcomes(errors=2)
    died.stdout.fnmatch_lines(["*30 of 50 generations were finished and stored, a re-run resumes from there*"])
    with FakeOpenAIServer(port=port):
        resumed = run(pytester)
    resumed.assert_outcomes(passed=2)
    resumed.stdout.fnmatch_lines(["*generations reused from the store: base 30, candidate 0*"])
    provenance = json.loads((pytester.path / "out/results/mednli/candidate.json").read_text())["provenance"]
    assert provenance["backend"]["requests"] == 50  # counted when the run ended, not before the first request
    leaked = [f for f in pytester.path.rglob("*") if f.is_file() and SECRET.encode() in f.read_bytes()]
    assert leaked == []
    assert "Authorization" not in "".join(resumed.outlines) and SECRET not in "".join(resumed.outlines)


@pytest.mark.parametrize(
    ("reported", "expected"),
    [("stop", "stop"), ("length", "length"), ("eos", "stop"), ("abort", "error"), ("error", "error"),
     ("content_filter", "error"), ("something-new", "error")],
)  # fmt: skip
def test_finish_reasons_other_than_stop_and_length_are_errors(reported: str, expected: str) -> None:
    """vLLM's "abort"/"error" used to be recorded as "stop": a cut-off text then scored as a finished answer."""
    from clue.backends.openai_server import finish_reason

    assert finish_reason(reported) == expected


def test_ctrl_c_returns_promptly_and_keeps_what_was_stored() -> None:
    """Ctrl-C used to wait for every request in flight (up to request_timeout x retries): the executor's exit and
    the interpreter's exit join its threads. Now queued requests are cancelled and in-flight ones abandoned."""
    import os
    import signal
    import threading
    import time

    # Python raises KeyboardInterrupt on SIGINT only if its parent did not ignore the signal, and a non-interactive
    # shell starts background jobs with SIGINT ignored: install the default handler, as an interactive run has it
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with FakeOpenAIServer(delay_s=20) as server:
        backend = server_backend(server.base_url, max_concurrency=2, request_timeout=600)
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()  # what Ctrl-C sends
        began = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            backend.generate(prompts(6), GenerationSettings())
        assert time.perf_counter() - began < 4.0
        assert len(server.state.requests) <= 2  # the queued four were never sent
        stragglers = [t for t in threading.enumerate() if t.name.startswith("clue-openai") and not t.daemon]
        assert not stragglers  # nothing the interpreter would wait for at exit
    signal.signal(signal.SIGINT, previous)


def test_a_server_s_usage_counts_are_counts_of_tokens_or_the_answer_is_malformed() -> None:
    """A server's answer is data too: usage counts that are negative, fractional, NaN, huge or text were recorded
    (or failed as a TypeError with no name; "-2013.4 tokens/s" in the progress line). Each hostile count is refused
    naming the field (the sample fails after retries); a valid one is kept as given."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    count = st.one_of(
        st.none(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=4),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
    )
    answer: dict[str, object] = {}

    def respond(messages: list[dict[str, str]], max_tokens: int, temperature: float, seed: int) -> tuple[Any, ...]:
        return "an answer", "stop", answer["prompt"], answer["completion"]

    with FakeOpenAIServer(respond) as server:
        backend = server_backend(server.base_url, max_retries=0)

        @settings(max_examples=60, deadline=None)
        @given(count, count)
        def check(prompt_tokens: object, completion_tokens: object) -> None:
            answer.update(prompt=prompt_tokens, completion=completion_tokens)
            (got,) = backend.generate(prompts(1), GenerationSettings())
            valid = [v is None or (type(v) is int and 0 <= v <= TOKENS_MAX) for v in (prompt_tokens, completion_tokens)]
            if all(valid):
                assert got.error is None, got.error
                assert got.completion_tokens == (completion_tokens or 0) and got.prompt_tokens >= 0
            else:
                field = "usage.prompt_tokens" if not valid[0] else "usage.completion_tokens"
                assert got.error is not None and field in got.error and server.base_url in got.error, got.error

        check()
