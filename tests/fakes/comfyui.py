"""A fake ComfyUI server (service-apis.md §7) on a real local port: the HTTP routes and the /ws
websocket, with a little executor that "runs" queued prompts node by node.

Routes: POST /prompt (the client may choose prompt_id; a bad prompt gets 400 with `error` and
`node_errors` in ComfyUI's shape; a LoadImage/LoadVideo/LoadAudio naming a file never uploaded is
refused like ComfyUI does), GET /queue, GET /history/{id}, GET /view (refuses `..` and absolute
names, as server.py does), POST /upload/image (multipart; identical bytes reuse the name, a clash
gets " (1)"), POST /interrupt, POST /queue {"delete"|"clear"}, GET /object_info, GET /system_stats.
The websocket (hand-built on the HTTP connection, RFC 6455 server side) sends `status` on connect,
then for a prompt of that client: execution_start, execution_cached, executing per node, progress
per sampler step (each after a ping the client must answer), executed (sent fragmented), then
execution_success / execution_error / execution_interrupted and the `executing {node: null}`
terminator. Client frames must be masked.

Test handles: `runs` (completed runs per prompt id) and `prompts` (what each id asked),
`kill()` (the process dies: port closed, connections cut, queue and history lost) and `revive()`
(a fresh process on the same port), `fail_at(node_id, message)` (the next prompt raises there),
`refuse(node_id, message)` (the next POST /prompt is invalid at that node), `hold()`/`release()`
(prompts wait in the queue), `websocket = False` (/ws answers 404), `files_for` (what a save node
writes: replace it to serve other names or bytes), `ui_key` ("images" like SaveVideo, or "gifs"
like VideoHelperSuite) and `saves`: "video" (`clip`), or pictures as SaveImage and SaveAnimatedWEBP
make them: "png" (one PNG per frame, named by ComfyUI's counter, which starts at `counter`),
"webp" or "gif" (one animated file). Pictures take their count and size from the workflow's
length, width and height inputs (else 24 frames of 320x180) and an animation its rate from the
save node's fps (else 16); no two frames alike (a GIF would merge them).
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from http.server import ThreadingHTTPServer
from io import BytesIO
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from .clips import tiny_mp4
from .server import Call, FakeServer, Reply

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SAMPLERS = {"KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced"}
OUTPUTS = {"SaveVideo", "VHS_VideoCombine", "SaveAnimatedWEBP", "SaveImage", "SaveWEBM"}
LOADERS = {"LoadImage": "image", "LoadVideo": "file", "LoadAudio": "audio"}
KNOWN = SAMPLERS | OUTPUTS | set(LOADERS) | {
    "CheckpointLoaderSimple", "CLIPTextEncode", "EmptyHunyuanLatentVideo", "EmptyLTXVLatentVideo", "VAEDecode",
    "CreateVideo", "WanImageToVideo", "UNETLoader", "CLIPLoader", "VAELoader", "PrimitiveInt",
    # the nodes of the workflows in tests/workflows (ComfyUI core and common extensions)
    "CFGGuider", "CLIPVisionEncode", "CLIPVisionLoader", "ConditioningZeroOut", "GetVideoComponents",
    "KSamplerSelect", "LTXVConditioning", "LTXVImgToVideo", "LTXVPreprocess", "LTXVScheduler", "ModelSamplingSD3",
    "PrimitiveFloat", "PrimitiveStringMultiline", "RandomNoise", "SamplerCustom", "TrimVideoLatent",
    "WanFirstLastFrameToVideo", "WanVaceToVideo"}
CUSTOM = {"StyleConditioningBlend"}  # a custom node the director installed: known to the server too


class FakeComfyUI(FakeServer):
    def __init__(self, steps: int = 4, step_time: float = 0.01):
        super().__init__()
        self.steps, self.step_time = steps, step_time
        self.runs: Counter[str] = Counter()  # prompt id -> completed runs
        self.prompts: dict[str, dict] = {}  # prompt id -> the workflow it ran
        self.uploads: dict[str, bytes] = {}  # "subfolder/name" -> bytes
        self.files: dict[tuple[str, str, str], bytes] = {}  # (type, subfolder, name) -> bytes
        self.clip: Callable[[dict], bytes] = lambda _workflow: tiny_mp4()  # the video a run saves
        self.pongs = 0
        self.step = 0  # the running sampler's step
        self.unmasked = 0  # client frames that came without a mask (must stay 0)
        self.websocket = True
        self.ui_key = "images"
        self.saves = "video"
        self.counter = 1  # SaveImage's next file number
        self.files_for: Callable[[str, str, dict], list[tuple[str, str, bytes]]] = self._save
        self._fail_at: list[tuple[str, str]] = []
        self._refuse: list[tuple[str, str]] = []
        self._held = False
        self._conns: set[socket.socket] = set()
        self._peers: dict[str, _Peer] = {}
        self._wake = threading.Condition(self.lock)
        self._fresh_state()
        self._track(self._server)
        for method, pattern, handler in (
                ("POST", r"/prompt", self._prompt), ("GET", r"/prompt", self._prompt_info),
                ("GET", r"/queue", self._queue), ("POST", r"/queue", self._queue_edit),
                ("GET", r"/history/(?P<id>[^/]+)", self._history), ("GET", r"/view", self._view),
                ("POST", r"/upload/image", self._upload), ("POST", r"/interrupt", self._interrupt),
                ("GET", r"/object_info", self._object_info), ("GET", r"/system_stats", self._stats)):
            self.route(method, pattern, handler)
            self.route(method, "/api" + pattern, handler, name=handler.__name__.lstrip("_"))
        self._stopped = False
        self._executor = threading.Thread(target=self._execute_forever, name="fake-comfyui-executor", daemon=True)
        self._executor.start()

    def _fresh_state(self) -> None:
        self.alive = True
        self.number = 0
        self.pending: list[list] = []  # [number, prompt_id, prompt, extra_data, outputs]
        self.running: list | None = None
        self.history: dict[str, dict] = {}
        self._interrupt_flag = False
        self.life = getattr(self, "life", 0) + 1

    # -- test handles -------------------------------------------------------------------------------------------

    def kill(self) -> None:
        """The ComfyUI process dies: the port closes, every connection is cut, queue and history are lost."""
        with self.lock:
            if not self.alive:
                return
            self.alive = False
            self.pending, self.running = [], None
            self._wake.notify_all()
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            conns, self._peers = list(self._conns), {}
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def revive(self) -> None:
        """A fresh ComfyUI on the same port (empty queue and history)."""
        port = self._server.server_address[1]
        handler = self._server.RequestHandlerClass
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        with self.lock:
            self._fresh_state()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-comfyui", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self.lock:
            self._stopped = True
            self._wake.notify_all()
        self.kill()

    def fail_at(self, node_id: str, message: str, exception_type: str = "RuntimeError") -> None:
        with self.lock:
            self._fail_at.append((node_id, f"{exception_type}\n{message}"))

    def refuse(self, node_id: str, message: str) -> None:
        with self.lock:
            self._refuse.append((node_id, message))

    def hold(self) -> None:
        with self.lock:
            self._held = True

    def release(self) -> None:
        with self.lock:
            self._held = False
            self._wake.notify_all()

    def runs_of(self, text: str) -> int:
        """Completed runs of prompts whose workflow holds `text` in some input."""
        return sum(n for pid, n in self.runs.items()
                   if text in json.dumps(self.prompts.get(pid), ensure_ascii=False))

    def _save(self, prompt_id: str, node_id: str, node: dict) -> list[tuple[str, str, bytes]]:
        prefix = str(node["inputs"].get("filename_prefix", "ComfyUI"))
        subfolder, _, name = prefix.rpartition("/")
        graph = self.prompts.get(prompt_id, {})
        if self.saves == "video":
            return [(f"{name}_{len(self.files) + 1:05}_.mp4", subfolder, self.clip(graph))]
        frames = _pictures(graph)
        if self.saves == "png":
            saved = []
            for frame in frames:
                out = BytesIO()
                frame.save(out, "PNG")
                saved.append((f"{name}_{self.counter:05}_.png", subfolder, out.getvalue()))
                self.counter += 1
            return saved
        out = BytesIO()
        duration = 1000 / float(node["inputs"].get("fps", 16))
        if self.saves == "webp":  # as SaveAnimatedWEBP: whole milliseconds, cut down
            frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=int(duration),
                           lossless=False, quality=90)
        else:
            frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=duration)
        return [(f"{name}_{len(self.files) + 1:05}_.{self.saves}", subfolder, out.getvalue())]

    # -- connections ----------------------------------------------------------------------------------------------

    def _track(self, server: ThreadingHTTPServer) -> None:
        fake, base = self, server.RequestHandlerClass

        class Tracked(base):
            def setup(self):
                super().setup()
                with fake.lock:
                    fake._conns.add(self.connection)

            def finish(self):
                with fake.lock:
                    fake._conns.discard(self.connection)
                super().finish()

        server.RequestHandlerClass = Tracked

    def _dispatch(self, h) -> None:
        if h.command == "GET" and urlsplit(h.path).path in ("/ws", "/api/ws"):
            return self._serve_websocket(h)
        return super()._dispatch(h)

    # -- HTTP routes --------------------------------------------------------------------------------------------------

    def _prompt(self, call: Call) -> Reply:
        try:
            body = call.json()
        except ValueError:
            return Reply(400, {"error": {"type": "invalid_json", "message": "Invalid JSON"}, "node_errors": {}})
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, dict):
            return Reply(400, _error("no_prompt", "No prompt provided", "No prompt provided"))
        for node_id, node in prompt.items():
            if not isinstance(node, dict) or node.get("class_type") not in KNOWN | CUSTOM:
                kind = node.get("class_type") if isinstance(node, dict) else None
                return Reply(400, _error("invalid_prompt", f"Cannot execute because node {kind} does not exist.",
                                         f"Node ID '#{node_id}'"))
        outputs = [i for i, n in prompt.items() if n["class_type"] in OUTPUTS]
        if not outputs:
            return Reply(400, _error("prompt_no_outputs", "Prompt has no outputs", ""))
        node_errors = {}
        with self.lock:
            refused = self._refuse.pop(0) if self._refuse else None
        if refused:
            node_errors[refused[0]] = _node_error(prompt, refused[0], "custom_validation_failed",
                                                  "Failed to validate prompt for output", refused[1], outputs)
        for node_id, node in prompt.items():
            field = LOADERS.get(node["class_type"])
            name = str(node["inputs"].get(field, "")) if field else ""
            if field and name not in self.uploads:
                node_errors[node_id] = _node_error(prompt, node_id, "custom_validation_failed",
                                                   "Custom validation failed for node", f"Invalid file: {name}",
                                                   outputs, field)
        if node_errors:
            return Reply(400, {"error": {"type": "prompt_outputs_failed_validation",
                                         "message": "Prompt outputs failed validation", "details": "",
                                         "extra_info": {}}, "node_errors": node_errors})
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        with self.lock:
            self.number += 1
            number = self.number
            self.pending.append([number, prompt_id, prompt, extra, outputs])
            self.prompts[prompt_id] = prompt
            self._wake.notify_all()
        self._broadcast_status()
        return Reply(200, {"prompt_id": prompt_id, "number": number, "node_errors": {}})

    def _prompt_info(self, call: Call) -> Reply:
        return Reply(200, {"exec_info": {"queue_remaining": self._remaining()}})

    def _queue(self, call: Call) -> Reply:
        with self.lock:
            return Reply(200, {"queue_running": [self.running] if self.running else [],
                               "queue_pending": list(self.pending)})

    def _queue_edit(self, call: Call) -> Reply:
        body = call.json() or {}
        with self.lock:
            if body.get("clear"):
                self.pending = []
            for prompt_id in body.get("delete") or []:
                self.pending = [item for item in self.pending if item[1] != prompt_id]
        self._broadcast_status()
        return Reply(200)

    def _history(self, call: Call) -> Reply:
        with self.lock:
            entry = self.history.get(call.match["id"])
            return Reply(200, {call.match["id"]: entry} if entry else {})

    def _view(self, call: Call) -> Reply:
        name = call.query.get("filename", [""])[0]
        if not name or name[0] == "/" or ".." in name:
            return Reply(400)
        subfolder = call.query.get("subfolder", [""])[0]
        if ".." in subfolder or subfolder.startswith("/"):
            return Reply(403)
        with self.lock:
            data = self.files.get((call.query.get("type", ["output"])[0], subfolder, name))
        if data is None:
            return Reply(404)
        return Reply(200, data, {"Content-Type": "video/mp4", "Content-Disposition": f'filename="{name}"'})

    def _upload(self, call: Call) -> Reply:
        message = email.message_from_bytes(
            b"Content-Type: " + call.headers.get("content-type", "").encode() + b"\r\n\r\n" + call.body,
            policy=email.policy.HTTP)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()} \
            if message.is_multipart() else {}
        image = parts.get("image")
        if image is None or not image.get_filename():
            return Reply(400)
        data = image.get_payload(decode=True)
        subfolder = parts["subfolder"].get_content().strip() if "subfolder" in parts else ""
        overwrite = parts["overwrite"].get_content().strip() if "overwrite" in parts else ""
        base, dot, ext = image.get_filename().rpartition(".")
        name, i = image.get_filename(), 1
        with self.lock:
            while overwrite not in ("true", "1") and _join(subfolder, name) in self.uploads \
                    and self.uploads[_join(subfolder, name)] != data:
                name, i = f"{base} ({i}){dot}{ext}", i + 1
            self.uploads[_join(subfolder, name)] = data
        return Reply(200, {"name": name, "subfolder": subfolder, "type": "input"})

    def _interrupt(self, call: Call) -> Reply:
        body = call.json() if call.body else None
        with self.lock:
            wanted = body.get("prompt_id") if isinstance(body, dict) else None
            if self.running and (wanted is None or wanted == self.running[1]):
                self._interrupt_flag = True
        return Reply(200)

    def _object_info(self, call: Call) -> Reply:
        return Reply(200, {kind: {"input": {"required": {}}, "output_node": kind in OUTPUTS, "name": kind}
                           for kind in sorted(KNOWN)})

    def _stats(self, call: Call) -> Reply:
        return Reply(200, {"system": {"comfyui_version": "0.3.64", "python_version": "fake"}, "devices": []})

    def _remaining(self) -> int:
        with self.lock:
            return len(self.pending) + (1 if self.running else 0)

    # -- the executor -------------------------------------------------------------------------------------------------

    def _execute_forever(self) -> None:
        while True:
            with self.lock:
                while not self._stopped and (not self.alive or self._held or not self.pending):
                    self._wake.wait(0.1)
                if self._stopped:
                    return
                self.pending.sort(key=lambda item: item[0])
                self.running = item = self.pending.pop(0)
                self._interrupt_flag = False
                life = self.life
                failure = self._fail_at.pop(0) if self._fail_at else None
            self._run(item, life, failure)

    def _run(self, item: list, life: int, failure: tuple[str, str] | None) -> None:
        _number, prompt_id, prompt, extra, _outputs = item
        sid = extra.get("client_id")
        messages: list[list] = []

        def emit(kind: str, data: dict, to_all: bool = False, fragmented: bool = False) -> None:
            if kind.startswith("execution_"):
                messages.append([kind, data])
            self._send_event(kind, data, None if to_all else sid, fragmented)

        def lost() -> bool:
            with self.lock:
                return self.life != life or not self.alive

        emit("execution_start", {"prompt_id": prompt_id, "timestamp": _ms()})
        emit("execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": _ms()})
        outputs: dict[str, dict] = {}
        status = "success"
        executed: list[str] = []
        for node_id in sorted(prompt, key=lambda k: (len(k), k)):
            node = prompt[node_id]
            emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
            steps = self.steps if node["class_type"] in SAMPLERS else 1
            for step in range(1, steps + 1):
                time.sleep(self.step_time)
                if lost():
                    return  # the process died with it: no history, no terminator
                with self.lock:
                    interrupted = self._interrupt_flag
                if interrupted:
                    emit("execution_interrupted", {"prompt_id": prompt_id, "node_id": node_id,
                                                   "node_type": node["class_type"], "executed": executed,
                                                   "timestamp": _ms()}, to_all=True)
                    status = "error"
                    break
                if node["class_type"] in SAMPLERS:
                    self.step = step
                    self._ping(sid)
                    emit("progress", {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id})
            if status == "error":
                break
            if failure and failure[0] == node_id:
                kind, _, message = failure[1].partition("\n")
                emit("execution_error", {"prompt_id": prompt_id, "node_id": node_id, "node_type": node["class_type"],
                                         "executed": executed, "exception_message": message,
                                         "exception_type": kind, "traceback": ["  File \"nodes.py\""],
                                         "current_inputs": {}, "current_outputs": {}, "timestamp": _ms()})
                status = "error"
                break
            if node["class_type"] in OUTPUTS:
                saved = []
                for name, subfolder, data in self.files_for(prompt_id, node_id, node):
                    with self.lock:
                        self.files[("output", subfolder, name)] = data
                    saved.append({"filename": name, "subfolder": subfolder, "type": "output"})
                ui = {"images": saved, "animated": [self.saves != "png"]} if self.ui_key == "images" else \
                    {self.ui_key: [dict(s, format="video/h264-mp4", frame_rate=24.0) for s in saved]}
                outputs[node_id] = ui
                emit("executed", {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id},
                     fragmented=True)
            executed.append(node_id)
        if status == "success":
            emit("execution_success", {"prompt_id": prompt_id, "timestamp": _ms()})
        with self.lock:
            if self.life != life:
                return
            self.running = None
            self.history[prompt_id] = {
                "prompt": item, "outputs": outputs,
                "status": {"status_str": status, "completed": status == "success", "messages": messages},
                "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
                         for n in outputs}}
            if status == "success":
                self.runs[prompt_id] += 1
        emit("executing", {"node": None, "prompt_id": prompt_id})
        self._broadcast_status()

    # -- the websocket (server side) ----------------------------------------------------------------------------------

    def _serve_websocket(self, h) -> None:
        query = parse_qs(urlsplit(h.path).query)
        with self.lock:
            self.calls.append(Call("GET", "/ws", query, {k.lower(): v for k, v in h.headers.items()}, b""))
        key = h.headers.get("Sec-WebSocket-Key")
        if not self.websocket or not key or h.headers.get("Upgrade", "").lower() != "websocket":
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(101, "Switching Protocols")
        h.send_header("Upgrade", "websocket")
        h.send_header("Connection", "Upgrade")
        h.send_header("Sec-WebSocket-Accept",
                      base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode())
        h.end_headers()
        h.wfile.flush()
        h.close_connection = True
        sid = query.get("clientId", [uuid.uuid4().hex])[0]
        peer = _Peer(h)
        with self.lock:
            self._peers[sid] = peer
        peer.send_json("status", {"status": {"exec_info": {"queue_remaining": self._remaining()}}, "sid": sid})
        try:
            while True:
                frame = peer.read_frame()
                if frame is None:
                    break
                masked, opcode, payload = frame
                if not masked:
                    with self.lock:
                        self.unmasked += 1
                    break
                if opcode == 0x8:
                    peer.send(0x8, payload[:2])
                    break
                if opcode == 0x9:
                    peer.send(0xA, payload)
                elif opcode == 0xA:
                    with self.lock:
                        self.pongs += 1
        finally:
            with self.lock:
                if self._peers.get(sid) is peer:
                    del self._peers[sid]

    def _send_event(self, kind: str, data: dict, sid: str | None, fragmented: bool = False) -> None:
        with self.lock:
            peers = list(self._peers.values()) if sid is None else [p for s, p in self._peers.items() if s == sid]
        for peer in peers:
            peer.send_json(kind, data, fragmented)

    def _broadcast_status(self) -> None:
        self._send_event("status", {"status": {"exec_info": {"queue_remaining": self._remaining()}}}, None)

    def _ping(self, sid: str | None) -> None:
        with self.lock:
            peer = self._peers.get(sid) if sid else None
        if peer:
            peer.send(0x9, b"comfy")


class _Peer:
    """The server's side of one websocket: unmasked frames out, masked frames in."""

    def __init__(self, h):
        self.h = h
        self.lock = threading.Lock()

    def send(self, opcode: int, payload: bytes) -> None:
        with self.lock:
            try:
                self.h.wfile.write(_frame(opcode, payload, True))
            except OSError:
                pass

    def send_json(self, kind: str, data: dict, fragmented: bool = False) -> None:
        text = json.dumps({"type": kind, "data": data}).encode()
        if not fragmented or len(text) < 3:
            return self.send(0x1, text)
        a, b = len(text) // 3, 2 * len(text) // 3
        with self.lock:  # the three fragments must not interleave with another message
            try:
                self.h.wfile.write(_frame(0x1, text[:a], False) + _frame(0x0, text[a:b], False)
                                   + _frame(0x0, text[b:], True))
            except OSError:
                pass

    def read_frame(self) -> tuple[bool, int, bytes] | None:
        try:
            head = self.h.rfile.read(2)
            if len(head) < 2:
                return None
            masked, n = bool(head[1] & 0x80), head[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.h.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.h.rfile.read(8))[0]
            key = self.h.rfile.read(4) if masked else b""
            payload = self.h.rfile.read(n)
        except (OSError, struct.error):
            return None
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return masked, head[0] & 0x0F, payload


def _frame(opcode: int, payload: bytes, fin: bool) -> bytes:
    """An unmasked (server) frame."""
    n = len(payload)
    size = bytes([n]) if n < 126 else (bytes([126]) + struct.pack(">H", n) if n < 65536
                                       else bytes([127]) + struct.pack(">Q", n))
    return bytes([(0x80 if fin else 0) | opcode]) + size + payload


def _pictures(graph: dict) -> list[Image.Image]:
    """The frames a run makes: as many and as large as the workflow's latent says, each its own colour."""
    inputs = next((n["inputs"] for n in graph.values() if {"length", "width", "height"} <= set(n["inputs"])), {})
    count, width, height = inputs.get("length", 24), inputs.get("width", 320), inputs.get("height", 180)
    return [Image.new("RGB", (width, height), (index % 256, index // 256 % 256, 160)) for index in range(count)]


def _error(kind: str, message: str, details: str) -> dict:
    return {"error": {"type": kind, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}


def _node_error(prompt: dict, node_id: str, kind: str, message: str, details: str, outputs: list[str],
                input_name: str = "") -> dict:
    return {"errors": [{"type": kind, "message": message, "details": details,
                        "extra_info": {"input_name": input_name} if input_name else {}}],
            "dependent_outputs": outputs, "class_type": prompt.get(node_id, {}).get("class_type", "")}


def _join(subfolder: str, name: str) -> str:
    return f"{subfolder}/{name}" if subfolder else name


def _ms() -> int:
    return int(time.time() * 1000)
