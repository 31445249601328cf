"""The data-use guard (clue/backends/data_use.py, clue/backends/connection.py): a credentialed task's prompts go only
to an engine on this machine or a host the entry declares approved; checked from the matrix's text at start-up,
with nothing resolved or connected, and held when connecting (a loopback name must reach a loopback peer; no
redirect is followed). Hostile URLs are generated (hypothesis) and judged against what urllib would connect to."""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clue.backends.data_use import check_data_use, clearance, credentialed, destination
from clue.backends.openai_server import OpenAIServerBackend
from clue.errors import ConfigError
from clue.models.matrix import ModelSpec, load_matrix
from clue.types import ChatMessage, GenerationSettings, Prompt
from clue.util.hosts import is_loopback, url_host
from tests.helpers import REPO
from tests.helpers.openai_server import FakeOpenAIServer, outbound_address

pytest_plugins = ["pytester"]

LAN = outbound_address() or "192.0.2.1"
needs_lan = pytest.mark.skipif(outbound_address() is None, reason="this machine has no address besides loopback")


def served(url: str, **extra: Any) -> ModelSpec:
    return ModelSpec.of("served", path="served", backend="openai", base_url=url, tokenizer="none", **extra)


def one_prompt() -> list[Prompt]:
    return [Prompt("mednli", "s0", (ChatMessage("user", "Premise: patient afebrile. Hypothesis: no fever."),), 4)]


# -- the check, from the entry's text ---------------------------------------------------------------------------


def test_credentialed_tasks_are_those_not_declared_public() -> None:
    assert [t for t in ("mednli", "problem_summary", "medisumqa", "medisumcode") if credentialed(t)] == [
        "mednli",
        "problem_summary",
        "medisumqa",
        "medisumcode",
    ]
    assert not credentialed("meqsum") and not credentialed("longhealth_task1")
    assert credentialed("a-task-nobody-registered")  # what does not say is restricted


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/v1", "http://127.8.9.10/v1", "http://[::1]:8000/v1", "http://localhost:8000/v1",
     "https://LOCALHOST/v1", "http://[::ffff:127.0.0.1]:80/v1", "http://vllm.localhost:1/v1"],
)  # fmt: skip
def test_a_server_on_this_machine_may_receive_credentialed_prompts(url: str) -> None:
    check_data_use(served(url), ["mednli", "medisumcode"])
    assert clearance(served(url), "mednli").cleared_by == "loopback address"


@pytest.mark.parametrize(
    "url",
    [
        "http://api.openai.example/v1",
        "https://10.0.0.8:8000/v1",
        "http://127.0.0.1.nip.io/v1",  # a name that says an address, resolved elsewhere
        "http://localhost.evil.example/v1",
        "http://127.1/v1",  # inet_aton would read loopback; clue reads only what is written as an address
        "http://2130706433/v1",
        "http://0x7f000001/v1",
        "http://[::ffff:10.0.0.1]/v1",
        "http://[fe80::1%25eth0]/v1",
        "http://0.0.0.0:8000/v1",
        "http://xn--lcalhost-5ya.example/v1",  # an IDN in its punycode form: a name like any other
    ],
)
def test_a_host_elsewhere_is_refused_for_credentialed_tasks_naming_entry_host_task_and_the_way_out(url: str) -> None:
    spec = served(url)
    with pytest.raises(ConfigError) as refused:
        check_data_use(spec, ["meqsum", "mednli", "problem_summary"])
    message = str(refused.value)
    assert "model 'served'" in message and "mednli, problem_summary are credentialed" in message
    assert url_host(url) in message and "approved_host" in message and "approval_reason" in message
    check_data_use(spec, ["meqsum", "longhealth_task2"])  # public tasks are not restricted
    assert clearance(spec, "meqsum").cleared_by == "public data"


@pytest.mark.parametrize(
    "url",
    ["http://ｌｏｃａｌｈｏｓｔ/v1", "http://127.0.0.1。evil.example/v1", "http://lоcalhost/v1",
     "http://127.0.0.1\n.evil.example/v1", "http://127.0.0.1 /v1", "http://a@127.0.0.1/v1",
     "http://127.0.0.1\\@evil.example/v1", "http://[::1/v1", "http://127.0.0.1:99999/v1", "ftp://127.0.0.1/v1",
     "http://127.0.0.1./v1"],
)  # fmt: skip
def test_an_unusual_url_is_an_error_of_the_entry_never_taken_for_loopback(url: str) -> None:
    problem = OpenAIServerBackend.Options(base_url=url).problem()
    assert problem is not None
    with pytest.raises(ConfigError):
        check_data_use(served(url), ["mednli"])


def _connects_to(url: str) -> str:
    """The host urllib's connection would be opened to (its own parse of the URL), independently of clue."""
    request = urllib.request.Request(url)
    return http.client.HTTPConnection(request.host).host


def _numeric_loopback(host: str) -> bool:
    """Whether the host, read as a numeric address by the system's own parser (no name is resolved), is loopback."""
    try:
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return False
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    mapped = [a.ipv4_mapped or a if isinstance(a, ipaddress.IPv6Address) else a for a in addresses]
    return all(a.is_loopback for a in mapped)  # ::ffff:127.0.0.1 reaches 127.0.0.1 on a dual-stack socket


_hosts = st.one_of(
    st.sampled_from(
        [
            "127.0.0.1",
            "localhost",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "127.1",
            "0x7f.1",
            "evil.example",
            "127.0.0.1.",
            "localhost.",
            "[::1].",
            "127.0.0.01",
            "0177.0.0.1",
        ]
    ),
    st.ip_addresses().map(lambda a: f"[{a}]" if a.version == 6 else str(a)),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20),
    st.from_regex(r"[a-z0-9.\-_:%\[\]@\\]{1,25}", fullmatch=True),
)
_urls = st.builds(
    lambda scheme, user, host, port, path: f"{scheme}://{user}{host}{port}{path}",
    st.sampled_from(["http", "https", "HTTP"]),
    st.sampled_from(["", "user@", "u:p@", "127.0.0.1@", "evil.example@"]),
    st.one_of(_hosts, st.tuples(_hosts, _hosts).map("".join)),
    st.sampled_from(["", ":8000", ":0", ":65536", ":x"]),
    st.sampled_from(["/v1", "", "#@127.0.0.1/", "?@localhost", "\\@127.0.0.1/v1"]),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_urls)
def test_what_the_guard_takes_for_this_machine_is_what_urllib_would_connect_to_on_it(url: str) -> None:
    """Never the unsafe way round: whenever the guard clears a URL as loopback, the host urllib would open a
    connection to is a loopback address by the system's own numeric parser, or a localhost name (which
    `test_a_loopback_name_reaching_another_machine_sends_nothing` holds to a loopback peer)."""
    try:
        kind = destination(served(url)).kind
    except ConfigError:
        return  # refused as malformed: the entry's error at start-up
    if kind != "loopback":
        return
    target = _connects_to(url).lower()
    name = target.removesuffix(".")  # "localhost." is the absolute form of the same name
    assert name == "localhost" or name.endswith(".localhost") or _numeric_loopback(target), (url, target)
    assert is_loopback(url_host(url))


# -- approval -----------------------------------------------------------------------------------------------


def test_an_approved_host_receives_credentialed_prompts_and_the_reason_is_recorded(tmp_path: Path) -> None:
    matrix = tmp_path / "models.toml"
    matrix.write_text(
        '[models.gw]\npath = "served"\nbackend = "openai"\nbase_url = "https://LLM-GW.hospital.example:8443/v1"\n'
        'tokenizer = "none"\napproved_host = "llm-gw.hospital.example"\n'
        'approval_reason = "hospital gateway, zero retention (DUA 2025-17)"\n'
        '[models.copied]\npath = "served"\nbackend = "openai"\nbase_url = "https://api.vendor.example/v1"\n'
        'tokenizer = "none"\napproved_host = "llm-gw.hospital.example"\napproval_reason = "copied with the url"\n'
    )
    models = load_matrix(matrix)
    check_data_use(models["gw"], ["mednli"])
    cleared = clearance(models["gw"], "mednli").to_json()
    assert cleared["cleared_by"] == "approved: hospital gateway, zero retention (DUA 2025-17)"
    assert cleared["credentialed"] is True and cleared["kind"] == "remote"
    with pytest.raises(ConfigError, match=r"its approved_host is 'llm-gw\.hospital\.example', which is not 'api\.ven"):
        check_data_use(models["copied"], ["mednli"])  # an approval belongs to a host, not to an entry


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('approved_host = "gw.example"\n', "approved_host and approval_reason go together"),
        ('approval_reason = "ok"\n', "approved_host and approval_reason go together"),
        ('approved_host = "gw.example"\napproval_reason = "  "\n', "go together"),
        ('approved_host = "gw.exämple"\napproval_reason = "ok"\n', "is not a host name"),
        ('approved_host = "http://gw.example/v1"\napproval_reason = "ok"\n', "is not a host name"),
        ("approved_host = true\napproval_reason = 'ok'\n", "approved_host must be a string"),
    ],
)
def test_an_approval_names_a_host_and_gives_a_reason(tmp_path: Path, keys: str, message: str) -> None:
    matrix = tmp_path / "models.toml"
    entry = 'path = "served"\nbackend = "openai"\nbase_url = "https://gw.example/v1"\ntokenizer = "none"\n'
    matrix.write_text(f"[models.gw]\n{entry}{keys}")
    with pytest.raises(ConfigError, match=message):
        load_matrix(matrix)


def test_in_process_engines_are_cleared_and_a_backend_that_does_not_say_is_remote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert destination(ModelSpec("m", path="m")).kind == "in-process"
    assert destination(ModelSpec("m", path="m", backend="vllm")).kind == "in-process"
    assert destination(ModelSpec("m", path="m.jsonl", backend="replay")).kind == "in-process"
    assert destination(served("http://127.0.0.1/v1", unix_socket="/run/vllm.sock")).kind == "unix-socket"

    class Silent:  # a third-party backend that says nothing about where its prompts go
        pass

    from clue.backends.registry import BACKENDS

    monkeypatch.setattr(BACKENDS, "load", lambda name, what: Silent)
    spec = ModelSpec("m", path="m", backend="silent")
    assert destination(spec).kind == "remote"
    with pytest.raises(ConfigError, match="wherever backend 'silent' sends them"):
        check_data_use(spec, ["mednli"])


# -- held when connecting ------------------------------------------------------------------------------------


@needs_lan
def test_a_loopback_name_reaching_another_machine_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """`localhost` mapped elsewhere (a hosts file): the connection to the peer is closed before the request."""
    with FakeOpenAIServer(host=LAN) as elsewhere:
        real = socket.getaddrinfo

        def hosts_file(host: Any, *args: Any, **kwargs: Any) -> Any:
            return real(LAN if host == "localhost" else host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", hosts_file)
        backend = OpenAIServerBackend(served(f"http://localhost:{elsewhere.port}/v1"), "served")
        with pytest.raises(ConfigError, match=f"localhost resolved to {LAN}, which is not this machine: nothing"):
            backend.generate(one_prompt(), GenerationSettings())
    assert elsewhere.state.requests == []


def test_a_redirect_is_refused_and_the_other_host_gets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUE_TEST_KEY", "sk-redirect-secret")
    with FakeOpenAIServer() as other, FakeOpenAIServer(redirect_to=other.base_url + "/chat/completions") as first:
        backend = OpenAIServerBackend(served(first.base_url, api_key_env="CLUE_TEST_KEY"), "served")
        with pytest.raises(ConfigError, match=r"HTTP 307 .* redirects to .*clue follows no redirect"):
            backend.generate(one_prompt(), GenerationSettings())
        assert len(first.state.requests) == 1 and other.state.connections == 0


def test_a_loopback_server_ignores_the_environment_s_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer() as proxy, FakeOpenAIServer() as server:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("no_proxy", "")
        OpenAIServerBackend(served(server.base_url), "served").generate(one_prompt(), GenerationSettings())
        assert proxy.state.connections == 0 and len(server.state.requests) == 1


def test_a_server_on_a_unix_socket_is_reached_over_it(tmp_path: Path) -> None:
    path = str(tmp_path / "vllm.sock")
    with FakeOpenAIServer(unix_socket=path) as server:
        spec = served("http://localhost/v1", unix_socket=path)
        check_data_use(spec, ["mednli"])
        out = OpenAIServerBackend(spec, "served").generate(one_prompt(), GenerationSettings())
    assert out[0].text.startswith("echo:") and len(server.state.requests) == 1
    assert clearance(spec, "mednli").cleared_by == "unix socket"


# -- at start-up, through pytest ------------------------------------------------------------------------------


def _project(p: pytest.Pytester, entry: str) -> None:
    from tests.helpers.replay_project import mednli_records

    (p.path / "data" / "mednli").mkdir(parents=True)
    (p.path / "data" / "mednli" / "mli_test_v1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in mednli_records())
    )
    p.makepyfile(test_mednli=(REPO / "benchmarks" / "test_mednli.py").read_text())
    p.makeini("[pytest]\n")
    (p.path / "models.toml").write_text(f'[models.remote]\npath = "served"\nbackend = "openai"\n{entry}')


@needs_lan
@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_a_remote_entry_with_a_credentialed_task_is_a_usage_error_before_anything_connects(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    from tests.helpers.replay_project import run

    with FakeOpenAIServer(host=LAN) as remote:
        _project(pytester, f'base_url = "{remote.base_url}"\ntokenizer = "none"\n')
        result = run(pytester, *workers, subprocess=bool(workers))
        assert remote.state.connections == 0
    # under -n the workers collect: each case is refused by the generator before its backend is built
    assert result.ret == (pytest.ExitCode.TESTS_FAILED if workers else pytest.ExitCode.USAGE_ERROR)
    text = "\n".join(result.errlines + result.outlines)
    assert "model 'remote': mednli is credentialed data" in text and f"to {LAN}" in text
    assert f"approved_host = '{LAN}'" in text


@needs_lan
def test_an_approved_remote_entry_runs_and_every_result_records_why(pytester: pytest.Pytester) -> None:
    from tests.helpers.replay_project import run

    with FakeOpenAIServer(host=LAN) as remote:
        _project(
            pytester,
            f'base_url = "{remote.base_url}"\ntokenizer = "none"\napproved_host = "{LAN}"\n'
            'approval_reason = "our own inference host, no retention"\n',
        )
        result = run(pytester)
        assert len(remote.state.requests) > 0
    result.assert_outcomes(passed=1)
    provenance = json.loads((pytester.path / "out/results/mednli/remote.json").read_text())["provenance"]
    assert provenance["data_use"]["cleared_by"] == "approved: our own inference host, no retention"
    assert provenance["model"]["approved_host"] == LAN
