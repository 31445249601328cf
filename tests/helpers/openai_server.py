"""A small OpenAI-compatible chat server on 127.0.0.1 for tests, with fault injection.

It answers `POST /v1/chat/completions` with a responder (the tiny transformers model, or a scripted function) and,
given an `echo`, `POST /v1/completions` with echoed prompt log-probabilities. It can be told to fail: a status for
chosen request numbers (429 with Retry-After, 500, ...), or to die after N answers (the listening socket closes,
later connections are refused). It records what it saw: request bodies, the Authorization header, and the highest
number of requests in flight at once.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# (messages, max_tokens, temperature, seed) -> (text, finish_reason, prompt_tokens, completion_tokens)
Responder = Callable[[list[dict[str, str]], int, float, int], tuple[str, str, int, int]]
# prompt token ids -> each token's log-probability (None for the first): `/v1/completions` with echo and logprobs
Echo = Callable[[list[int]], list[float | None]]


def outbound_address() -> str | None:
    """An address of this machine that is not a loopback one (the interface a packet out would leave by; a UDP
    socket's connect sends nothing), or None where the machine has none."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("198.51.100.1", 9))
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def tiny_model_echo(model_dir: Path) -> Echo:
    """Prompt log-probabilities from the tiny Llama: one forward pass over the token ids, as vLLM's server echoes."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    lock = threading.Lock()

    def echo(ids: list[int]) -> list[float | None]:
        with lock, torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
        return [None] + [float(logits[i - 1, ids[i]]) for i in range(1, len(ids))]

    return echo


def echo_responder(
    messages: list[dict[str, str]], max_tokens: int, temperature: float, seed: int
) -> tuple[str, str, int, int]:
    """Deterministic answer derived from the last user turn."""
    last = messages[-1]["content"]
    words = last.split()[:max_tokens]
    return f"echo: {' '.join(words[-3:])}", "stop", sum(len(m["content"].split()) for m in messages), len(words)


def tiny_model_responder(model_dir: Path) -> Responder:
    """Serve the tiny Llama through clue's transformers backend (one request at a time, like a 1-slot server)."""
    from clue.backends.transformers import TransformersBackend
    from clue.models.matrix import ModelSpec
    from clue.types import ChatMessage, GenerationSettings, Prompt

    backend = TransformersBackend(ModelSpec("served", path=str(model_dir)), str(model_dir))
    lock = threading.Lock()

    def respond(
        messages: list[dict[str, str]], max_tokens: int, temperature: float, seed: int
    ) -> tuple[str, str, int, int]:
        chat = tuple(ChatMessage(m["role"], m["content"]) for m in messages)  # type: ignore[arg-type]
        with lock:
            (g,) = backend.generate(
                [Prompt("served", "x", chat, max_tokens)],
                GenerationSettings(temperature=temperature, seed=seed, batch_size=1),
            )
        return g.text, g.finish_reason, g.prompt_tokens, g.completion_tokens

    return respond


@dataclass
class ServerState:
    responder: Responder
    faults: dict[int, int] = field(default_factory=dict)  # request number (1-based) -> HTTP status to answer
    die_after: int | None = None  # close the server after this many successful answers
    delay_s: float = 0.0
    echo: Echo | None = None  # answers /v1/completions with echoed prompt log-probabilities when set
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)
    answered: int = 0
    connections: int = 0  # TCP (or Unix socket) connections accepted: zero proves that nothing connected
    redirect_to: str | None = None  # answer every POST with a 307 to this URL
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeOpenAIServer:
    def __init__(
        self,
        responder: Responder = echo_responder,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        unix_socket: str | None = None,
        **faults: Any,
    ):
        self.state = ServerState(responder, **faults)
        state = self.state
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "served", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if state.redirect_to is not None:
                    with state.lock:
                        state.requests.append(body)
                    self._send(307, {"error": {"message": "moved"}}, {"Location": state.redirect_to})
                    return
                with state.lock:
                    dead = state.die_after is not None and state.answered >= state.die_after
                if dead:  # a request that raced the shutdown: the connection drops without an answer
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                with state.lock:
                    state.requests.append(body)
                    state.authorization.append(self.headers.get("Authorization"))
                    number = len(state.requests)
                    status = state.faults.get(number)
                    state.in_flight += 1
                    state.max_in_flight = max(state.max_in_flight, state.in_flight)
                # bookkeeping happens before the answer is written: once the client has it, it may send the next
                # request at once, and that one must see this one as finished
                if self.path == "/v1/completions" and state.echo is not None and status is None:
                    values = state.echo(body["prompt"])
                    with state.lock:
                        state.in_flight -= 1
                    logprobs = {"tokens": [str(i) for i in body["prompt"]], "token_logprobs": values}
                    choice = {"index": 0, "text": "", "logprobs": logprobs, "finish_reason": "length"}
                    self._send(200, {"id": f"cmpl-{number}", "object": "text_completion", "choices": [choice]})
                    return
                if self.path != "/v1/chat/completions" or status is not None:
                    with state.lock:
                        state.in_flight -= 1
                    if status is None:
                        self._send(404, {"error": {"message": f"no route {self.path}"}})
                    else:
                        headers = {"Retry-After": "0"} if status == 429 else {}
                        self._send(status, {"error": {"message": f"injected fault {status}"}}, headers)
                    return
                time.sleep(state.delay_s)
                text, finish, prompt_tokens, completion_tokens = state.responder(
                    body["messages"], body["max_tokens"], body.get("temperature", 1.0), body.get("seed", 0)
                )
                with state.lock:
                    state.in_flight -= 1
                    state.answered += 1
                    dying = state.die_after is not None and state.answered >= state.die_after
                self._send(
                    200,
                    {
                        "id": f"cmpl-{number}",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                        ],
                        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
                    },
                )
                if dying:
                    threading.Thread(target=outer.stop, daemon=True).start()

        class Counting:
            def verify_request(self, request: Any, client_address: Any) -> bool:
                with state.lock:
                    state.connections += 1
                return True

        class TCPServer(Counting, ThreadingHTTPServer):
            pass

        class UnixServer(Counting, socketserver.ThreadingUnixStreamServer):
            def server_bind(self) -> None:  # HTTPServer's would read a (host, port) address
                socketserver.ThreadingUnixStreamServer.server_bind(self)

        self.unix_socket = unix_socket
        self.httpd: UnixServer | TCPServer
        if unix_socket is not None:
            self.httpd = UnixServer(unix_socket, Handler)
        else:
            self.httpd = TCPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.stopped = False

    @property
    def base_url(self) -> str:
        if self.unix_socket is not None:
            return "http://localhost/v1"
        address: Any = self.httpd.server_address
        host = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
        return f"http://{host!s}:{address[1]}/v1"

    @property
    def port(self) -> int:
        address: Any = self.httpd.server_address
        return int(address[1])

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()

    def __exit__(self, *exc: object) -> None:
        self.stop()
