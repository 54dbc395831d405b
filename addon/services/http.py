"""The one HTTP layer every cloud service talks through (requests, which Blender ships).

- Reads are retried with exponential backoff and jitter on 429, 5xx and connection errors,
  honouring Retry-After (and retry-after-ms) and Google's RetryInfo in the error body.
- A create (a POST that may start a paid job) is retried only when the error proves nothing was
  made: no connection at all, 400-class answers, 401, 429. A reply lost after sending, or a 5xx,
  raises SubmissionUncertain: the job may exist and be billed.
- Keys go only to the API's own origin: downloads from other hosts get no key, and a redirect to
  another origin drops it. Every secret is cut out of error messages.
- Downloads stream to the caller's temporary name, with a size limit, and must be a video.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

import requests

from .. import probe
from .base import JobControl, ServiceError, SubmissionUncertain

log = logging.getLogger("shotline.http")

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
MAX_ATTEMPTS = 6
BASE_DELAY = 1.0
MAX_DELAY = 60.0
MAX_DOWNLOAD = 4 * 1024**3  # a 4 GB clip is not a clip
CHUNK = 1 << 20
_MAX_TEXT = 300


class ApiError(ServiceError):
    """An HTTP error answer, with its status and parsed body for the service to interpret."""

    def __init__(self, message: str, status: int, body: Any, retryable: bool = False):
        super().__init__(message, retryable)
        self.status = status
        self.body = body


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(
        parts.scheme.lower())


def is_video(head: bytes) -> bool:
    """ISO media (MP4, MOV: an 'ftyp' or other top-level box), Matroska/WebM, or GIF."""
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return True
    return head.startswith(b"\x1a\x45\xdf\xa3") or head.startswith((b"GIF87a", b"GIF89a"))


def error_text(body: Any) -> str:
    """The human part of the error bodies these APIs send (see service-apis.md §9.3)."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("status") or "")
    if isinstance(err, str) and err:
        return err
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI validation (fal): [{loc, msg, type}, ...]
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:]) or 'input'}: {d.get('msg', '')}" if isinstance(d, dict)
            else str(d) for d in detail)
    if detail:
        return str(detail)
    return str(body.get("title") or body.get("message") or "")


def retry_delay(response: requests.Response | None, body: Any) -> float | None:
    """Seconds the server asks us to wait: Retry-After, retry-after-ms, or Google's RetryInfo."""
    if response is not None:
        ms = response.headers.get("retry-after-ms")
        if ms:
            try:
                return max(0.0, float(ms) / 1000)
            except ValueError:
                pass
        after = response.headers.get("Retry-After")
        if after:
            try:
                return max(0.0, float(after))
            except ValueError:
                pass  # an HTTP date: rare; the backoff decides
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        for detail in body["error"].get("details") or []:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
                match = re.fullmatch(r"([\d.]+)s", str(detail.get("retryDelay", "")))
                if match:
                    return float(match.group(1))
    return None


class Api:
    """One service's HTTP client: a base URL, the headers that carry its key, and its label for messages."""

    def __init__(self, label: str, base_url: str, auth: dict[str, str] | None = None, *,
                 headers: dict[str, str] | None = None, key_hint: str = "",
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
                 max_attempts: int = MAX_ATTEMPTS, base_delay: float = BASE_DELAY):
        self.label = label
        self.base_url = base_url.rstrip("/") + "/"
        self.auth = dict(auth or {})
        self.key_hint = key_hint  # where the key is set, for 401/403 messages
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.session = requests.Session()
        self.session.trust_env = True  # company proxies
        self.session.headers.update({"User-Agent": "Shotline (Blender add-on)", **(headers or {})})
        self._secrets = [v.split(" ", 1)[-1] for v in self.auth.values() if v]

    # -- helpers ---------------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if "://" in path else urljoin(self.base_url, path.lstrip("/"))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "•••")
        return re.sub(r"([?&](?:key|token|api_key|sig|signature|X-Amz-Signature)=)[^&\s]+", r"\1•••", text,
                      flags=re.I)

    def _headers_for(self, url: str) -> dict[str, str]:
        return dict(self.auth) if origin(url) == origin(self.base_url) else {}

    def _sleep(self, seconds: float, ctl: JobControl | None) -> None:
        if ctl is not None:
            ctl.sleep(seconds)
        else:
            time.sleep(seconds)

    def _backoff(self, attempt: int, asked: float | None) -> float:
        if asked is not None:
            return min(asked, MAX_DELAY) + random.uniform(0, 0.25)
        return min(self.base_delay * 2 ** (attempt - 1), MAX_DELAY) * random.uniform(0.5, 1.0)

    def _error(self, response: requests.Response) -> ApiError:
        body = _body(response)
        status = response.status_code
        text = " ".join(error_text(body).split())
        if not text and isinstance(body, str) and "<html" in body[:200].lower():
            text = "an HTML page instead of an API answer (a proxy or the wrong URL?)"
        text = self.redact(text)[:_MAX_TEXT]
        if status in (401, 403) or (status == 400 and "API_KEY_INVALID" in json.dumps(body)):
            hint = f" Check the key{' in ' + self.key_hint if self.key_hint else ''}."
            message = f"{self.label} refused the key ({status}{': ' + text if text else ''}).{hint}"
        elif status == 429:
            message = f"{self.label} is rate-limiting requests (429{': ' + text if text else ''})."
        elif status >= 500:
            message = f"{self.label} had a server error ({status}{': ' + text if text else ''})."
        else:
            message = f"{self.label} answered {status}{': ' + text if text else ''}."
        return ApiError(message, status, body, retryable=status == 429 or status >= 500)

    def _send(self, method: str, url: str, **kw) -> requests.Response:
        """One request with the key only for the API's origin; redirects followed by hand so a
        key never crosses to another origin."""
        headers = {**self._headers_for(url), **kw.pop("headers", {})}
        for _ in range(5):
            response = self.session.request(method, url, headers=headers, timeout=self.timeout,
                                            allow_redirects=False, **kw)
            if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
                return response
            target = urljoin(url, response.headers["Location"])
            response.close()
            if origin(target) != origin(url):
                headers = {k: v for k, v in headers.items() if k not in self.auth}
            if response.status_code == 303:
                method, kw = "GET", {k: v for k, v in kw.items() if k not in ("json", "data", "files")}
            url = target
        raise ServiceError(f"{self.label} redirected too many times.")

    # -- calls ------------------------------------------------------------------------------------------------------

    def read(self, method: str, path: str, ctl: JobControl | None = None, **kw) -> Any:
        """An idempotent call (GET, status, cancel): retried on 429, 5xx and connection errors."""
        url = self.url(path)
        for attempt in range(1, self.max_attempts + 1):
            if ctl is not None:
                ctl.check()
            try:
                response = self._send(method, url, **kw)
            except requests.RequestException as e:
                error: ServiceError = ServiceError(self._connection_text(e), retryable=True)
                asked = None
            else:
                if response.ok:
                    return _body(response)
                error = self._error(response)
                asked = retry_delay(response, error.body)
            if not error.retryable or attempt == self.max_attempts:
                raise error
            delay = self._backoff(attempt, asked)
            log.info("%s: %s; retrying in %.1f s", self.label, error, delay)
            self._sleep(delay, ctl)
        raise AssertionError("unreachable")

    def get(self, path: str, ctl: JobControl | None = None, **kw) -> Any:
        return self.read("GET", path, ctl, **kw)

    def create(self, path: str, ctl: JobControl | None = None, **kw) -> Any:
        """A POST that may start a paid job (json=... or files=...): retried only while nothing can have been made."""
        url = self.url(path)
        for attempt in range(1, self.max_attempts + 1):
            if ctl is not None:
                ctl.check()
            try:
                response = self._send("POST", url, **kw)
            except requests.ConnectionError as e:
                if not _never_sent(e):
                    raise self._uncertain(f"the connection broke ({_short(e)})") from None
                error, asked = ServiceError(self._connection_text(e), retryable=True), None
            except requests.Timeout as e:
                raise self._uncertain(f"no answer in time ({_short(e)})") from None
            except requests.RequestException as e:
                raise self._uncertain(_short(e)) from None
            else:
                if response.ok:
                    return _body(response)
                error = self._error(response)
                if response.status_code >= 500:
                    raise self._uncertain(str(error)) from None
                asked = retry_delay(response, error.body)
            if not error.retryable or attempt == self.max_attempts:
                raise error
            delay = self._backoff(attempt, asked)
            log.info("%s: %s; nothing was created, retrying in %.1f s", self.label, error, delay)
            self._sleep(delay, ctl)
        raise AssertionError("unreachable")

    def _uncertain(self, why: str) -> SubmissionUncertain:
        return SubmissionUncertain(
            f"Submission uncertain: {self.redact(why)[:_MAX_TEXT]}. Check the {self.label} dashboard; "
            f"Generate again submits a new paid job.")

    def _connection_text(self, e: Exception) -> str:
        return f"Cannot reach {self.label} at {self.redact(self.base_url)} ({_short(e)})."

    def download(self, url: str, dest: Path, ctl: JobControl | None = None, *, max_bytes: int = MAX_DOWNLOAD,
                 on_progress: Callable[[float | None], None] | None = None) -> probe.ClipInfo:
        """Stream `url` into `dest` (the queue's temporary name): the key only to the API's origin,
        at most `max_bytes`, retried from the start on connection errors, 5xx and a file cut short.
        It must be a whole video; returns what the file says it is (rate, frames, size)."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._download_once(url, dest, ctl, max_bytes, on_progress)
            except ServiceError as e:
                dest.unlink(missing_ok=True)
                if not e.retryable or attempt == self.max_attempts:
                    raise
                delay = self._backoff(attempt, None)
                log.info("%s: download: %s; retrying in %.1f s", self.label, e, delay)
                self._sleep(delay, ctl)
        raise AssertionError("unreachable")

    def _download_once(self, url: str, dest: Path, ctl: JobControl | None, max_bytes: int,
                       on_progress: Callable[[float | None], None] | None) -> probe.ClipInfo:
        try:
            response = self._send("GET", url, stream=True)
        except requests.RequestException as e:
            raise ServiceError(f"The {self.label} download failed ({_short(e)}).", retryable=True) from None
        with response:
            # The host that answered (after redirects), not the one asked: a file host's 403 is an
            # expired link, not a refused key.
            if response.status_code in (403, 404, 410) and origin(response.url or url) != origin(self.base_url):
                raise ServiceError(f"The {self.label} clip's link has expired or is gone ({response.status_code}).")
            if not response.ok:
                raise self._error(response)
            expected = int(response.headers.get("Content-Length") or 0)
            if expected > max_bytes:
                raise ServiceError(f"The {self.label} clip is too large ({expected / 1e9:.1f} GB).")
            written = 0
            try:
                with open(dest, "wb") as out:
                    for chunk in response.iter_content(CHUNK):
                        if ctl is not None:
                            ctl.check()
                        if written == 0 and chunk and not is_video(chunk[:16]):
                            kind = "an HTML page" if b"<" in chunk[:64] else "not a video"
                            raise ServiceError(f"The {self.label} download is {kind}, not a clip.")
                        written += len(chunk)
                        if written > max_bytes:
                            raise ServiceError(f"The {self.label} clip is larger than {max_bytes} bytes.")
                        out.write(chunk)
                        if on_progress is not None:
                            on_progress(written / expected if expected else None)
            except requests.RequestException as e:
                raise ServiceError(f"The {self.label} download broke off ({_short(e)}).", retryable=True) from None
            except OSError as e:
                raise ServiceError(f"Cannot write the clip: {e.strerror or e} ({dest.parent}).") from None
        if written == 0:
            raise ServiceError(f"The {self.label} download was empty.", retryable=True)
        if expected and written != expected:
            raise ServiceError(f"The {self.label} download was cut short ({written} of {expected} bytes).",
                               retryable=True)
        try:
            return probe.read_clip(dest)
        except probe.ClipError as e:
            raise ServiceError(f"The {self.label} clip is not whole: {e}.", retryable=True) from None


def _body(response: requests.Response) -> Any:
    text = response.text
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text[:2000]


def _never_sent(e: requests.ConnectionError) -> bool:
    """Connection refused, timed out connecting, or the name not found: the request never left,
    so a create made nothing."""
    if isinstance(e, requests.ConnectTimeout):
        return True
    text = str(e)
    return any(s in text for s in ("Connection refused", "Name or service not known", "Failed to resolve",
                                   "NewConnectionError", "nodename nor servname", "getaddrinfo failed"))


def _short(e: Exception) -> str:
    text = " ".join(str(e).split())
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the server closed the connection without answering"
    if "ConnectionResetError" in text or "Connection reset" in text:
        return "the connection was reset"
    match = re.search(r"\]\s*([^\]'\")]+)['\")]*$", text)  # urllib3's nested reason, last part
    text = match.group(1).strip() if match else text
    return text[:160] or type(e).__name__
