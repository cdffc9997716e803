"""The wire server with OpenAI's Batch API: files and batches, as the SDK speaks them.

``POST /v1/files`` (multipart upload, purpose "batch"), ``POST /v1/batches``,
``GET /v1/batches/{id}`` (each poll moves the batch one state on: validating -> in_progress ->
finalizing -> completed), ``GET /v1/files/{id}/content`` (input, output and error files),
``POST /v1/batches/{id}/cancel`` (cancelling -> cancelled) and ``GET /v1/batches``. Each line is
answered by the same responder, faults and counters as an online request, when its batch
completes, so ``paid_twice()`` covers online and batch requests together.

    server = BatchWireServer().start()
    server.hold = True        # batches stay in_progress until released
    server.fail_lines = {...}  # custom ids answered with HTTP 500 in the error file
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections import Counter
from typing import Any

from wire_server import WireCall, WireServer, _Handler, _reply

STEPS = ("validating", "in_progress", "finalizing", "completed")


class BatchWireServer(WireServer):
    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_lines: Counter[str] = Counter()  # custom id -> times answered in a batch
        self.polls: Counter[str] = Counter()
        self.hold = False  # keep batches in_progress (a kill test's window)
        self.fail_lines: set[str] = set()  # custom ids that fail (HTTP 500) once each
        self.line_failures: Counter[str] = Counter()
        self.poll_errors = 0  # the next N polls answer HTTP 500
        self._ids = itertools.count(1)
        self._batch_lock = threading.Lock()

    def handler_base(self) -> type[_Handler]:
        return _BatchHandler

    @property
    def batches_created(self) -> int:
        return len(self.batches)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):04d}"

    # -- answering a batch ------------------------------------------------------------------

    def advance(self, batch: dict[str, Any]) -> None:
        with self._batch_lock:
            state = batch["status"]
            if state == "cancelling":
                batch["status"] = "cancelled"
                return
            if state in ("completed", "cancelled", "failed", "expired"):
                return
            if self.hold and state == "in_progress":
                return
            nxt = STEPS[STEPS.index(state) + 1]
            if nxt == "completed":
                self._answer(batch)
            batch["status"] = nxt

    def _answer(self, batch: dict[str, Any]) -> None:
        lines = self.files[batch["input_file_id"]]["text"].splitlines()
        out, errors = [], []
        done = failed = 0
        for raw in lines:
            if not raw.strip():
                continue
            item = json.loads(raw)
            cid = item["custom_id"]
            status, body = self._line(item, batch["api_key"])
            rid = f"req-{cid[:12]}"
            if status == 200:
                done += 1
                self.batch_lines[cid] += 1
                out.append(
                    {
                        "id": f"line-{cid[:12]}",
                        "custom_id": cid,
                        "response": {"status_code": 200, "request_id": rid, "body": body},
                        "error": None,
                    }
                )
            else:
                failed += 1
                errors.append(
                    {
                        "id": f"line-{cid[:12]}",
                        "custom_id": cid,
                        "response": {"status_code": status, "request_id": rid, "body": body},
                        "error": None,
                    }
                )
        batch["request_counts"] = {
            "total": len(out) + len(errors),
            "completed": done,
            "failed": failed,
        }
        for kind, rows in (("output_file_id", out), ("error_file_id", errors)):
            if rows:
                fid = self.next_id("file")
                self.files[fid] = {"text": "".join(json.dumps(r) + "\n" for r in rows)}
                batch[kind] = fid

    def _line(self, item: dict[str, Any], api_key: str | None) -> tuple[int, dict[str, Any]]:
        url = item.get("url", "")
        body = item.get("body") or {}
        kind = "chat" if url.endswith("/chat/completions") else "completion"
        call = WireCall("openai", kind, url, body, api_key, list(body.get("messages") or []))
        with self._lock:
            self.calls.append(call)
            self.model_seen[str(body.get("model"))] += 1
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") in self.reject_response_formats:
            msg = f"response_format type {fmt.get('type')!r} is not supported by this server"
            return 400, {"error": {"message": msg, "type": "invalid_request_error"}}
        cid = item["custom_id"]
        if cid in self.fail_lines and not self.line_failures[cid]:
            self.line_failures[cid] += 1
            return 500, {"error": {"message": "internal error", "type": "server_error"}}
        fault = self._take_fault(call)
        if fault is not None and fault.kind not in ("truncate",):
            with self._lock:
                self.failures[fault.kind] += 1
            status = int(fault.kind) if fault.kind.isdigit() else 500
            return status, {"error": {"message": f"fault {fault.kind}"}}
        out = self.responder(call)
        texts = [out] if isinstance(out, str) else list(out)
        n = int(body.get("n") or 1)
        if len(texts) < n:
            texts = (texts * n)[:n]
        prompt_tokens, completion_tokens = self.usage(call, texts)
        with self._lock:
            self.successes[call.key] += 1
            self.by_api_key[api_key or ""] += 1
        return 200, _reply(call, texts, "stop", prompt_tokens, completion_tokens)


class _BatchHandler(_Handler):
    owner: BatchWireServer

    def _key(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def _batch_json(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if k != "api_key"}

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        srv = self.owner
        if path == "/v1/files":
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw
            )
            fields: dict[str, Any] = {}
            filename = None
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if part.get_filename():
                    filename = part.get_filename()
                fields[str(name)] = part.get_payload(decode=True)
            if fields.get("purpose") != b"batch" or "file" not in fields:
                self._json(400, {"error": {"message": "purpose 'batch' and a file are needed"}})
                return
            fid = srv.next_id("file")
            data = fields["file"]
            srv.files[fid] = {"text": data.decode("utf-8"), "filename": filename}
            self._json(
                200,
                {
                    "id": fid,
                    "object": "file",
                    "bytes": len(data),
                    "created_at": int(time.time()),
                    "filename": filename or "upload.jsonl",
                    "purpose": "batch",
                },
            )
            return
        if path == "/v1/batches":
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if body.get("input_file_id") not in srv.files:
                self._json(404, {"error": {"message": "no such file"}})
                return
            if self._key() in (None, "", "invalid"):
                self._json(401, {"error": {"message": "Incorrect API key provided"}})
                return
            bid = srv.next_id("batch")
            total = len(srv.files[body["input_file_id"]]["text"].splitlines())
            batch = {
                "id": bid,
                "object": "batch",
                "endpoint": body.get("endpoint"),
                "input_file_id": body["input_file_id"],
                "completion_window": body.get("completion_window", "24h"),
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": int(time.time()),
                "request_counts": {"total": total, "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
                "api_key": self._key(),
            }
            srv.batches[bid] = batch
            self._json(200, self._batch_json(batch))
            return
        if path.startswith("/v1/batches/") and path.endswith("/cancel"):
            bid = path.split("/")[3]
            batch = srv.batches.get(bid)
            if batch is None:
                self._json(404, {"error": {"message": f"no batch {bid}"}})
                return
            if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
                batch["status"] = "cancelling"
            self._json(200, self._batch_json(batch))
            return
        super().do_POST()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        srv = self.owner
        if path == "/v1/batches":
            data = [self._batch_json(b) for b in srv.batches.values()]
            self._json(200, {"object": "list", "data": data, "has_more": False})
            return
        if path.startswith("/v1/batches/"):
            bid = path.split("/")[3]
            batch = srv.batches.get(bid)
            if batch is None:
                self._json(404, {"error": {"message": f"no batch {bid}"}})
                return
            srv.polls[bid] += 1
            if srv.poll_errors > 0:
                srv.poll_errors -= 1
                self._json(500, {"error": {"message": "internal error"}})
                return
            srv.advance(batch)
            self._json(200, self._batch_json(batch))
            return
        if path.startswith("/v1/files/") and path.endswith("/content"):
            fid = path.split("/")[3]
            f = srv.files.get(fid)
            if f is None:
                self._json(404, {"error": {"message": f"no file {fid}"}})
                return
            payload = f["text"].encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self._json(404, {"error": {"message": f"no route {path}"}})
