"""The shared HTTP layer against a real local server: retries, creates never made twice, keys
kept to the API's own origin, downloads that must be whole videos."""

from __future__ import annotations

import logging
import socket
import time
from fractions import Fraction

import pytest

from fakes.clips import tiny_mp4
from fakes.server import Cdn, Fault, FakeServer, Reply
from shotline.addon.services import http
from shotline.addon.services.base import ServiceError, SubmissionUncertain

KEY = "sk-test-5ecret-key-0123456789"


class Api(FakeServer):
    """A minimal job API: POST /jobs makes a job, GET /jobs/N reads it, GET /redirect sends to a file host."""

    def __init__(self, cdn: Cdn | None = None):
        super().__init__()
        self.jobs: list[dict] = []
        self.cdn = cdn
        self.route("POST", r"/jobs", self._create, name="create")
        self.route("GET", r"/jobs/(?P<n>\d+)", self._read, name="read")
        self.route("GET", r"/redirect", self._redirect, name="redirect")

    def _create(self, call):
        if call.headers.get("authorization") != f"Bearer {KEY}":
            return Reply(401, {"error": f"Invalid token {call.headers.get('authorization')}"})
        self.jobs.append(call.json())
        return Reply(201, {"id": len(self.jobs) - 1})

    def _read(self, call):
        return Reply(200, {"id": int(call.match["n"]), "status": "running"})

    def _redirect(self, call):
        return Reply(302, b"", {"Location": self.cdn.publish(tiny_mp4())})


@pytest.fixture
def servers():
    cdn = Cdn()
    api = Api(cdn)
    yield api, cdn
    api.close()
    cdn.close()


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(http, "BASE_DELAY", 0.01)


def client(url: str, **kw) -> http.Api:
    return http.Api("Fake", url, {"Authorization": f"Bearer {KEY}"}, key_hint="the preferences",
                    base_delay=0.01, **kw)


def test_reads_are_retried_on_429_and_5xx_honouring_retry_after(servers):
    api, _cdn = servers
    api.fault("read", Fault.status_(429, {"detail": "slow down"}, retry_after=0.3))
    api.fault("read", Fault.status_(503), times=2)
    start = time.monotonic()
    assert client(api.url).get("jobs/0") == {"id": 0, "status": "running"}
    assert time.monotonic() - start >= 0.3, "Retry-After was not honoured"
    assert len(api.calls_to(r"/jobs/0")) == 4


def test_googles_retry_info_in_the_body_sets_the_wait(servers):
    api, _cdn = servers
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.4s"}]}}
    api.fault("read", Fault.status_(429, body))
    start = time.monotonic()
    client(api.url).get("jobs/0")
    assert time.monotonic() - start >= 0.4


def test_reads_give_up_with_the_services_reason(servers):
    api, _cdn = servers
    api.fault("read", Fault.status_(500, {"detail": "database on fire"}), times=10)
    with pytest.raises(ServiceError, match="Fake had a server error \\(500: database on fire\\)"):
        client(api.url, max_attempts=3).get("jobs/0")
    assert len(api.calls_to(r"/jobs/0")) == 3


def test_a_create_is_retried_when_nothing_was_made(servers):
    api, _cdn = servers
    api.fault("create", Fault.status_(429, {"detail": "rate limited"}, retry_after=0.05))
    assert client(api.url).create("jobs", json={"prompt": "Qəmgin mahnı"}) == {"id": 0}
    assert api.jobs == [{"prompt": "Qəmgin mahnı"}]


@pytest.mark.parametrize("fault", [Fault.lost_reply(), Fault.after(502), Fault.hang(1.0)],
                         ids=["lost reply", "5xx after making it", "no answer in time"])
def test_a_create_whose_reply_is_lost_is_never_sent_again(servers, fault):
    api, _cdn = servers
    api.fault("create", fault)
    with pytest.raises(SubmissionUncertain, match="Check the Fake dashboard; Generate again submits a new paid job"):
        client(api.url, timeout=(2.0, 0.5)).create("jobs", json={"prompt": "x"})
    time.sleep(0.6 if fault.kind == "hang" else 0)
    assert len(api.jobs) == 1, "one job made, and it was not asked for again"
    assert len(api.calls_to(r"/jobs$", "POST")) == 1


def test_a_refused_key_is_not_retried_and_never_shown(servers, caplog):
    api, _cdn = servers
    caplog.set_level(logging.DEBUG)
    wrong = http.Api("Fake", api.url, {"Authorization": "Bearer sk-wrong-key-999"}, key_hint="the preferences")
    with pytest.raises(ServiceError) as err:
        wrong.create("jobs", json={})
    assert "Fake refused the key (401" in str(err.value) and "Check the key in the preferences" in str(err.value)
    assert "sk-wrong-key-999" not in str(err.value), "the server echoed the key; the message must not"
    assert "sk-wrong-key-999" not in caplog.text
    assert len(api.calls_to(r"/jobs$", "POST")) == 1


def test_a_server_that_is_not_there_says_so_and_nothing_is_made():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(ServiceError, match=f"Cannot reach Fake at http://127.0.0.1:{port}/") as err:
        client(f"http://127.0.0.1:{port}", max_attempts=2).create("jobs", json={})
    assert not isinstance(err.value, SubmissionUncertain)


def test_downloads_carry_no_key_to_the_file_host_even_across_a_redirect(servers, tmp_path):
    api, cdn = servers
    c = client(api.url)
    info = c.download(cdn.publish(tiny_mp4(Fraction(24), 120, 1280, 720)), tmp_path / "a.part")
    assert (info.fps, info.frames, info.width, info.height) == (24, 120, 1280, 720)
    c.download(api.url + "/redirect", tmp_path / "b.part")
    assert api.calls_to("/redirect")[0].headers["authorization"] == f"Bearer {KEY}", "the API's own origin gets it"
    assert cdn.keys_seen() == []


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_a_download_cut_short_is_fetched_again(servers, tmp_path, kind):
    _api, cdn = servers
    url = cdn.publish(tiny_mp4(Fraction(30000, 1001), 90))
    cdn.download_fault(kind)
    info = client(_api.url).download(url, tmp_path / "clip.part")
    assert info.frames == 90 and len(cdn.calls_to("/files/")) == 2


def test_a_download_that_stays_cut_fails_and_leaves_no_file(servers, tmp_path):
    _api, cdn = servers
    url = cdn.publish(tiny_mp4())
    cdn.download_fault("truncate", times=10)
    with pytest.raises(ServiceError, match="The Fake clip is not whole: .*cut short"):
        client(_api.url, max_attempts=3).download(url, tmp_path / "clip.part")
    assert not (tmp_path / "clip.part").exists()


def test_an_html_page_is_not_a_clip(servers, tmp_path):
    _api, cdn = servers
    url = cdn.publish(tiny_mp4())
    cdn.download_fault("html")
    with pytest.raises(ServiceError, match="The Fake download is an HTML page, not a clip"):
        client(_api.url).download(url, tmp_path / "clip.part")
    assert len(cdn.calls_to("/files/")) == 1, "not retried: a login page stays a login page"
    assert not (tmp_path / "clip.part").exists()


def test_an_expired_link_says_so(servers, tmp_path):
    _api, cdn = servers
    url = cdn.publish(tiny_mp4())
    cdn.expire_all()
    with pytest.raises(ServiceError, match="link has expired or is gone \\(403\\)"):
        client(_api.url).download(url, tmp_path / "clip.part")


def test_a_clip_past_the_size_limit_is_refused(servers, tmp_path):
    _api, cdn = servers
    url = cdn.publish(tiny_mp4())
    with pytest.raises(ServiceError, match="too large"):
        client(_api.url).download(url, tmp_path / "clip.part", max_bytes=1000)
    assert not (tmp_path / "clip.part").exists()
