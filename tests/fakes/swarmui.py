"""A fake SwarmUI (docs/API.md, src/WebAPI/*.cs) on a real local server.

Routes: POST /API/GetNewSession, /API/ListModels, /API/InterruptAll (errors as SwarmUI sends
them: {"error": ...} and {"error_id": "invalid_session_id"}), GET /View/... (the outputs), and
the websocket /API/GenerateText2ImageWS, spoken with its own small RFC 6455 server side: the
client's frames must be masked. A generation answers with SwarmUI's messages in order: the queue
status, gen_progress `steps` times, the output path, discard_indices, socket_intention close,
the status again, then a close frame. Parameters are checked the way SwarmUI does (ids reduced to
their letters, models, integers and ranges, base64 images); an unknown parameter is only recorded,
as SwarmUI only logs it.

What happens to the next generation is queued: `fail_next(text)` (an error after the status),
`lose_next()` (the request is read and the generation counted, then the connection closes with no
answer), `drop_next()` (the connection breaks mid-generation), `never_finish()` (progress until
interrupted), `output_next(path)` (the output path reported). `expire_next_session()` forgets the
next session made, as a SwarmUI restart would.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
import time
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

from .clips import tiny_mp4
from .server import Call, FakeServer, Reply

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MODELS = ("Wan/wan2.1_t2v_1.3B_fp16.safetensors", "Wan/wan2.1_i2v_480p_14B_fp8.safetensors",
          "OfficialStableDiffusion/sd_xl_base_1.0.safetensors")
VIDEO_FORMATS = ("webp", "gif", "gif-hd", "webm", "h264-mp4", "h265-mp4", "prores")
INVALID_SESSION = {"error": "Invalid session ID. You may need to refresh the page.", "error_id": "invalid_session_id"}

# SwarmUI's parameter ids (the letters of each name) and how each is checked.
INT, TEXT, MODEL, IMAGE, DECIMAL, CHOICE = "int", "text", "model", "image", "decimal", "choice"
PARAMS: dict[str, tuple[str, str, Any]] = {  # id: (display name, kind, limits)
    "images": ("Images", INT, (1, 10000)),
    "prompt": ("Prompt", TEXT, None),
    "negativeprompt": ("Negative Prompt", TEXT, None),
    "seed": ("Seed", INT, (-1, 2**63 - 1)),
    "width": ("Width", INT, (64, 16384)),
    "height": ("Height", INT, (64, 16384)),
    "model": ("Model", MODEL, None),
    "textvideoframes": ("Text2Video Frames", INT, (1, 1000)),
    "initimage": ("Init Image", IMAGE, None),
    "initimagecreativity": ("Init Image Creativity", DECIMAL, (0, 1)),
    "videomodel": ("Video Model", MODEL, None),
    "videoframes": ("Video Frames", INT, (1, 1000)),
    "videoendimage": ("Video End Image", IMAGE, None),
    "videofps": ("Video FPS", INT, (1, 1024)),
    "videoformat": ("Video Format", CHOICE, VIDEO_FORMATS),
}
REMAPS = {"textvideofps": "videofps", "textvideoformat": "videoformat"}  # SwarmUI 0.9.7's renames


def clean_id(name: str) -> str:
    letters = re.sub(r"[^a-z]", "", name.lower())
    return REMAPS.get(letters, letters)


class FakeSwarmUI(FakeServer):
    def __init__(self, token: str = "", steps: int = 3, step_delay: float = 0.05, version: str = "0.9.7.2"):
        super().__init__()
        self.token = token  # "": SwarmUI without accounts
        self.steps = steps
        self.step_delay = step_delay
        self.version = version
        self.models = list(MODELS)
        self.sessions: set[str] = set()
        self.sessions_made = 0
        self.generations = 0  # generations SwarmUI started (a request that passed its checks)
        self.bodies: list[dict] = []  # the request of each generation
        self.unknown: list[str] = []  # parameters SwarmUI would skip with a warning
        self.interrupted: list[str] = []  # sessions InterruptAll was called on
        self.files: dict[str, bytes] = {}  # output path -> clip
        self._outcomes: list[tuple[str, Any]] = []
        self._expire_next = False
        self.route("POST", r"/API/GetNewSession", self._new_session, name="session")
        self.route("POST", r"/API/ListModels", self._list_models, name="models")
        self.route("POST", r"/API/InterruptAll", self._interrupt, name="interrupt")
        self.route("GET", r"/View/(?P<path>.+)", self._view, name="view")

    # -- test controls -----------------------------------------------------------------------------------------------

    def fail_next(self, text: str = "All available backends failed to load the model.") -> None:
        self._outcomes.append(("fail", text))

    def lose_next(self) -> None:
        self._outcomes.append(("lose", None))

    def drop_next(self) -> None:
        self._outcomes.append(("drop", None))

    def never_finish(self) -> None:
        self._outcomes.append(("never", None))

    def output_next(self, path: str) -> None:
        self._outcomes.append(("output", path))

    def expire_next_session(self) -> None:
        self._expire_next = True

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    # -- HTTP routes -------------------------------------------------------------------------------------------------

    def _refused(self, call: Call) -> Reply | None:
        if self.token and f"swarm_token={self.token}" not in call.headers.get("cookie", ""):
            return Reply(401, {"error": "You are not logged in.", "error_id": "bad_login"})
        if call.headers.get("content-type", "").split(";")[0] != "application/json":
            return Reply(400, {"error": "Wrong content type", "error_id": "basic_api"})
        return None

    def _session_of(self, call: Call) -> tuple[dict, Reply | None]:
        refused = self._refused(call)
        if refused:
            return {}, refused
        body = call.json()
        with self.lock:
            if body.get("session_id") not in self.sessions:
                return body, Reply(401, INVALID_SESSION)
        return body, None

    def _new_session(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused:
            return refused
        session = hashlib.sha1(str(time.perf_counter_ns()).encode()).hexdigest().upper()
        with self.lock:
            self.sessions_made += 1
            if not self._expire_next:
                self.sessions.add(session)
            self._expire_next = False
        return Reply(200, {"session_id": session, "user_id": "local", "output_append_user": True,
                           "version": self.version, "server_id": "fake", "permissions": ["*"]})

    def _list_models(self, call: Call) -> Reply:
        body, refused = self._session_of(call)
        if refused:
            return refused
        if not isinstance(body.get("path"), str) or not isinstance(body.get("depth"), int):
            return Reply(200, {"error": "Missing required parameter 'path' or 'depth'"})
        return Reply(200, {"folders": sorted({m.split("/")[0] for m in self.models}),
                           "files": [{"name": m, "architecture": "wan-2_1"} for m in self.models]})

    def _interrupt(self, call: Call) -> Reply:
        body, refused = self._session_of(call)
        if refused:
            return refused
        with self.lock:
            self.interrupted.append(body["session_id"])
        return Reply(200, {"success": True})

    def _view(self, call: Call) -> Reply:
        data = self.files.get("View/" + unquote(call.match["path"]))
        if data is None:
            return Reply(404, "<html><body>404, file not found</body></html>")
        return Reply(200, data, {"Content-Type": "video/mp4"})

    # -- the websocket ---------------------------------------------------------------------------------------------

    def _dispatch(self, h) -> None:
        if h.path.split("?")[0] == "/API/GenerateText2ImageWS" and h.headers.get("Upgrade", "").lower() == "websocket":
            return self._websocket(h)
        return super()._dispatch(h)

    def _websocket(self, h) -> None:
        h.close_connection = True
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self.lock:
            self.calls.append(Call("WS", "/API/GenerateText2ImageWS", {}, headers, b""))
        if self.token and f"swarm_token={self.token}" not in headers.get("cookie", ""):
            h.send_response(401)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(101, "Switching Protocols")
        h.send_header("Upgrade", "websocket")
        h.send_header("Connection", "Upgrade")
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()).decode()
        h.send_header("Sec-WebSocket-Accept", accept)
        h.end_headers()
        h.wfile.flush()
        ws = _ServerSide(h)
        try:
            self._generate(ws, json.loads(ws.receive()))
        except (OSError, EOFError):
            pass  # the client went away: a real SwarmUI goes on generating, unheard

    def _generate(self, ws: _ServerSide, body: dict) -> None:
        session = body.get("session_id")
        with self.lock:
            known = session in self.sessions
            outcome, arg = self._outcomes.pop(0) if known and self._outcomes else ("ok", None)
        if not known:
            ws.send(INVALID_SESSION)
            return ws.close()
        if outcome == "lose":
            with self.lock:
                self.generations += 1
                self.bodies.append(body)
            return  # the connection ends with nothing said
        ws.send({"status": {"waiting_gens": 1, "loading_models": 1, "waiting_backends": 0, "live_gens": 0},
                 "backend_status": {"status": "running", "class": "", "message": "", "any_loading": True},
                 "supported_features": ["text2video", "video"]})
        error = self._validate(body)
        if error:
            ws.send({"error": error})
            ws.send({"socket_intention": "close"})
            return ws.close()
        with self.lock:
            self.generations += 1
            self.bodies.append(body)
            number = self.generations
        if outcome == "fail":
            ws.send({"error": arg})
            ws.send({"socket_intention": "close"})
            return ws.close()
        step = 0
        while step < self.steps or outcome == "never":
            with self.lock:
                if session in self.interrupted:
                    ws.send({"socket_intention": "close"})
                    return ws.close()
            step += 1
            time.sleep(self.step_delay)
            ws.send({"gen_progress": {"batch_index": "0", "request_id": "1",
                                      "overall_percent": min(0.99, step / (self.steps + 1)), "current_percent": 0.5,
                                      "preview": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}})
            if outcome == "drop" and step == 1:
                return  # the connection breaks mid-generation
        params = {clean_id(k): v for k, v in body.items()}
        frames = params.get("videoframes") or params.get("textvideoframes") or 25
        path = arg if outcome == "output" else f"View/local/raw/2026-12-01/{number:04d}-{str(body['prompt'])[:20]}.mp4"
        with self.lock:
            self.files[path] = tiny_mp4(Fraction(params.get("videofps", 24)), frames, params["width"], params["height"])
        ws.send({"image": path, "batch_index": "0", "request_id": "1", "metadata": json.dumps({"sui_image_params": {}})})
        ws.send({"discard_indices": []})
        ws.send({"socket_intention": "close"})
        ws.send({"status": {"waiting_gens": 0, "loading_models": 0, "waiting_backends": 0, "live_gens": 0}})
        ws.close()

    def _validate(self, body: dict) -> str:
        """SwarmUI's refusal of a request, or ""."""
        if not isinstance(body.get("images"), int):
            return "Missing required parameter 'images'"
        for key, value in body.items():
            if key in ("session_id", "presets", "extra_metadata"):
                continue
            pid = clean_id(key)
            if pid not in PARAMS:
                self.unknown.append(key)
                continue
            name, kind, limits = PARAMS[pid]
            problem = _invalid(kind, limits, value, self.models)
            if problem:
                return f"Invalid value for parameter {name}: Invalid {problem} value for param {name} - '{value}'"
        if "model" not in body:
            return "No model input given. Did your UI load properly?"
        return ""


def _invalid(kind: str, limits: Any, value: Any, models: list[str]) -> str:
    """What kind of value `value` fails to be, or ""."""
    if kind == INT:
        ok = isinstance(value, int) and not isinstance(value, bool) and limits[0] <= value <= limits[1]
        return "" if ok else "integer"
    if kind == DECIMAL:
        return "" if isinstance(value, (int, float)) and limits[0] <= value <= limits[1] else "decimal"
    if kind == TEXT:
        return "" if isinstance(value, str) else "text"
    if kind == CHOICE:
        return "" if value in limits else "dropdown"
    if kind == MODEL:
        names = set(models) | {m.rsplit(".", 1)[0] for m in models}
        return "" if value in names else "model"
    data = str(value).split(",", 1)[1] if str(value).startswith("data:") else str(value)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return "image"
    return "" if len(data) >= 10 else "image"


class _ServerSide:
    """The server half of RFC 6455 over a request handler's streams: masked frames in, plain out."""

    def __init__(self, h) -> None:
        self._in = h.rfile
        self._out = h.wfile

    def receive(self) -> str:
        parts = []
        while True:
            head = self._in.read(2)
            if len(head) < 2:
                raise EOFError
            fin, opcode, n = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x7F
            if not head[1] & 0x80:
                raise OSError("an unmasked client frame (RFC 6455 5.1): the server must close")
            if n == 126:
                n = struct.unpack(">H", self._in.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._in.read(8))[0]
            key = self._in.read(4)
            data = self._in.read(n)
            pad = (key * (n // 4 + 1))[:n]
            payload = (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big") if n else b""
            if opcode in (0x0, 0x1):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode("utf-8")
            elif opcode == 0x8:
                raise EOFError

    def send(self, message: dict) -> None:
        self._frame(0x1, json.dumps(message).encode())

    def close(self) -> None:
        self._frame(0x8, struct.pack(">H", 1000))

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        size = bytes([n]) if n < 126 else bytes([126]) + struct.pack(">H", n) if n < 65536 else \
            bytes([127]) + struct.pack(">Q", n)
        self._out.write(bytes([0x80 | opcode]) + size + payload)
        self._out.flush()
