"""A tiny local server speaking the hello-api wire format, with fault injection."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HelloServer:
    def __init__(self, responder: Callable[[str], str] | None = None) -> None:
        self.responder = responder or (lambda prompt: f"hello, you said {len(prompt)} chars")
        self.faults: list[tuple[int, dict[str, str]]] = []
        self.bodies: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                status, headers, payload = 200, {}, b""
                if server.faults:
                    status, headers = server.faults.pop(0)
                    payload = json.dumps({"error": "injected"}).encode()
                elif self.headers.get("Authorization") != "Bearer good-key":
                    status, payload = 401, b'{"error": "bad key"}'
                else:
                    text = server.responder(body["prompt"])
                    payload = json.dumps(
                        {
                            "text": text,
                            "finish_reason": "stop",
                            "usage": {
                                "input_tokens": len(body["prompt"].split()),
                                "output_tokens": len(text.split()),
                            },
                        }
                    ).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
