"""A web app for previews to reach, run inside a sandbox by its system python3 (standard library only).

    python3 preview_app.py PORT

GET /hello answers with the request's path, Host, Authorization and Cookie headers; /page a 1 MiB
page; /stream five lines 0.2 s apart; /forever lines without end; /huge announces 10 GB and sends zeros;
/huge-chunked sends zeros without end; /endless-head a header without end; /not-http
something else than HTTP; /ws is a WebSocket echo. Everything else is 404.
"""

import base64
import hashlib
import json
import socketserver
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = b"x" * (1024 * 1024)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/ws"):
            return self.websocket()
        if self.path.startswith("/hello"):
            body = json.dumps(
                {
                    "path": self.path,
                    "host": self.headers.get("Host"),
                    "authorization": self.headers.get("Authorization"),
                    "cookie": self.headers.get("Cookie"),
                    "sandbox_headers": {
                        k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-sandbox")
                    },
                }
            ).encode()
            return self.whole(body, "application/json")
        if self.path == "/page":
            return self.whole(PAGE, "text/html")
        if self.path == "/endless-head":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Filler: ")
            while True:
                self.wfile.write(b"y" * 65536)
        if self.path == "/not-http":
            self.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n" * 10)
            self.close_connection = True
            return
        if self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024**3))
            self.end_headers()
            zeros = bytes(1024 * 1024)
            while True:
                self.wfile.write(zeros)
        if self.path in ("/stream", "/forever", "/huge-chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            number = 0
            while self.path != "/stream" or number < 5:
                data = bytes(256 * 1024) if self.path == "/huge-chunked" else f"tick {number}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                number += 1
                if self.path != "/huge-chunked":
                    time.sleep(0.2)
            self.wfile.write(b"0\r\n\r\n")
            return
        self.whole(b"not here", "text/plain", status=404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        digest = hashlib.sha256()
        while length:
            chunk = self.rfile.read(min(length, 1 << 20))
            digest.update(chunk)
            length -= len(chunk)
        self.whole(digest.hexdigest().encode(), "text/plain")

    def whole(self, body, kind, status=200):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                self.close_connection = True
                return
            opcode, size = head[0] & 0x0F, head[1] & 0x7F
            if size == 126:
                size = struct.unpack(">H", self.rfile.read(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(size)))
            if opcode == 8:
                self.wfile.write(b"\x88\x00")
                self.close_connection = True
                return
            if opcode in (1, 2):
                reply = data.upper() if opcode == 1 else data
                length = len(reply)
                header = bytes([0x80 | opcode])
                if length < 126:
                    header += bytes([length])
                elif length < 65536:
                    header += bytes([126]) + struct.pack(">H", length)
                else:
                    header += bytes([127]) + struct.pack(">Q", length)
                self.wfile.write(header + reply)
                self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    socketserver.TCPServer.allow_reuse_address = True
    Server(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
