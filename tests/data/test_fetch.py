"""`clue data fetch` against a loopback HTTP server: the genuine MeQSum file is written and verified against clue's
pin; a tampered, truncated, oversized, cut-off or missing one leaves nothing behind (no file, no temporary folder,
no data folder the fetch created); redirects are followed and reported; credentialed data sets are explained."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clue.data.fetch as fetching
from clue.cli import main
from clue.data.fetch import SOURCES, fetch
from clue.errors import ClueError
from tests.helpers import MEQSUM

GENUINE = MEQSUM.read_bytes()
FILE = SOURCES["meqsum"].file


@dataclass
class Served:
    """What the server answers on /<name>: a body (possibly announced longer than it is), a status, a redirect."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    announce: dict[str, int] = field(default_factory=dict)  # Content-Length to claim (a cut-off body)
    stall: set[str] = field(default_factory=set)  # send half, then hang (the client's timeout ends it)
    redirects: dict[str, str] = field(default_factory=dict)
    endless: set[str] = field(default_factory=set)  # no Content-Length, the body repeated until the client stops
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            served.hits.append(name)
            if name in served.redirects:
                self.send_response(302)
                self.send_header("Location", served.redirects[name])
                self.end_headers()
                return
            if name not in served.bodies:
                self.send_error(404)
                return
            body = served.bodies[name]
            self.send_response(200)
            if name in served.endless:
                self.end_headers()
                try:
                    for _ in range(100):
                        self.wfile.write(body)
                except OSError:
                    pass  # the client hung up
                return
            self.send_header("Content-Length", str(served.announce.get(name, len(body))))
            self.end_headers()
            if name in served.stall:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                time.sleep(3)
                return
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def left_behind(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def test_the_genuine_file_is_written_verified_and_then_found_by_data_check(
    server: tuple[str, Served], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, served = server
    served.bodies["meqsum.xlsx"] = GENUINE
    data = tmp_path / "data"
    assert main(["data", "fetch", "meqsum", str(data), "--url", f"{base}/meqsum.xlsx"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {len(GENUINE)} bytes: {data / 'meqsum' / FILE}" in out
    assert f"sha256 {SOURCES['meqsum'].sha256}: verified against clue's pin" in out
    assert "1000 records" in out
    assert (data / "meqsum" / FILE).read_bytes() == GENUINE
    assert left_behind(data) == [data / "meqsum", data / "meqsum" / FILE]  # no temporary folder
    assert main(["data", "check", str(data)]) == 0
    pin = str(SOURCES["meqsum"].sha256)
    assert f"found    MeQSum           1000 questions (as in the paper)  sha256 {pin[:16]}" in capsys.readouterr().out
    assert main(["data", "fetch", "meqsum", str(data), "--url", f"{base}/gone"]) == 0  # in place: no download
    assert "already in place" in capsys.readouterr().out and served.hits == ["meqsum.xlsx"]


def test_a_redirect_is_followed_and_reported(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    served.bodies["mirror/meqsum.xlsx"] = GENUINE
    served.redirects["meqsum.xlsx"] = f"{base}/mirror/meqsum.xlsx"
    got = fetch("meqsum", tmp_path, url=f"{base}/meqsum.xlsx")
    assert got.redirected_to == f"{base}/mirror/meqsum.xlsx" and got.path.read_bytes() == GENUINE


def _refused(base: str, tmp_path: Path, name: str, match: str, **kwargs: Any) -> None:
    data = tmp_path / "data"
    with pytest.raises(ClueError, match=match):
        fetch("meqsum", data, url=f"{base}/{name}", **kwargs)
    assert left_behind(tmp_path) == []  # not even the data folder the fetch made


def test_a_tampered_file_is_refused_leaving_nothing(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    served.bodies["evil.xlsx"] = GENUINE[:-1] + bytes([GENUINE[-1] ^ 1])
    _refused(base, tmp_path, "evil.xlsx", "is not the one clue's pin names .* nothing was written")


def test_a_404_is_refused_leaving_nothing(server: tuple[str, Served], tmp_path: Path) -> None:
    _refused(server[0], tmp_path, "missing.xlsx", "HTTP 404")


def test_a_body_cut_short_of_its_length_is_refused(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    served.bodies["short.xlsx"] = GENUINE[:1000]
    served.announce["short.xlsx"] = len(GENUINE)
    _refused(base, tmp_path, "short.xlsx", "download failed|stopped after")


def test_a_server_that_stops_mid_body_times_out_leaving_nothing(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    served.bodies["stall.xlsx"] = GENUINE
    served.stall.add("stall.xlsx")
    _refused(base, tmp_path, "stall.xlsx", "download failed", timeout_s=0.5)


def test_a_body_larger_than_any_data_set_is_stopped(
    server: tuple[str, Served], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, served = server
    monkeypatch.setattr(fetching, "MAX_BYTES", 50_000)
    served.bodies["huge.xlsx"] = GENUINE
    _refused(base, tmp_path, "huge.xlsx", "announces 216310 bytes, more than the 50000")
    served.bodies["endless.xlsx"] = GENUINE
    served.endless.add("endless.xlsx")
    _refused(base, tmp_path, "endless.xlsx", "more than 50000 bytes")
    served.bodies["unannounced.xlsx"] = GENUINE
    served.announce["unannounced.xlsx"] = 10  # claims little, sends more: urllib reads what was announced
    _refused(base, tmp_path, "unannounced.xlsx", "not the one clue's pin names")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_altered_download_leaves_nothing(server: tuple[str, Served], tmp_path_factory: Any, data: Any) -> None:
    """Generated damage: bytes flipped, cut, inserted or appended anywhere; never a file left, never accepted."""
    base, served = server
    body = bytearray(GENUINE)
    at = data.draw(st.integers(0, len(body) - 1))
    kind = data.draw(st.sampled_from(["flip", "cut", "insert", "append"]))
    if kind == "flip":
        body[at] ^= data.draw(st.integers(1, 255))
    elif kind == "cut":
        del body[at:]
    elif kind == "insert":
        body[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    else:
        body += data.draw(st.binary(min_size=1, max_size=16))
    served.bodies["damaged.xlsx"] = bytes(body)
    root = tmp_path_factory.mktemp("fetch")
    _refused(base, root, "damaged.xlsx", "is not the one|download failed")


def test_an_existing_different_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "meqsum").mkdir()
    (tmp_path / "meqsum" / FILE).write_bytes(b"a colleague's edited copy")
    with pytest.raises(ClueError, match="exists and is not the file clue's pin names"):
        fetch("meqsum", tmp_path, url="http://127.0.0.1:9/never")
    assert (tmp_path / "meqsum" / FILE).read_bytes() == b"a colleague's edited copy"


def test_longhealth_needs_a_hash_the_user_trusts(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    with pytest.raises(ClueError, match=r"no pinned SHA-256 .* pass --sha256"):
        fetch("longhealth", tmp_path, url=f"{base}/lh.json")
    with pytest.raises(ClueError, match="is not a SHA-256"):
        fetch("longhealth_task2", tmp_path, url=f"{base}/lh.json", sha256="abc")
    assert served.hits == [] and left_behind(tmp_path) == []


@pytest.mark.parametrize("task", ["mednli", "problem_summary", "medisumqa", "medisumcode"])
def test_a_credentialed_data_set_is_explained_not_downloaded(
    task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "fetch", task, str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is credentialed (PhysioNet's data use agreement): clue does not download it" in err
    assert ("clue data build" in err) == task.startswith("medisum")
    assert left_behind(tmp_path) == []
