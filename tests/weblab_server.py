"""The web of the web-limit tests, run inside their private network namespace (tests/weblab.py):
HTTP on 80 and 8080, HTTPS on 443 (a self-signed certificate for the test names), a TCP
listener on 853 (DNS over TLS), a UDP echo on 443 (QUIC) and on 53 (the lab's resolver).
Every HTTP answer says which Host it was asked for: ``hello HOST``. Stops when its standard input closes.

    python tests/weblab_server.py CERT KEY
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"hello {self.headers.get('Host', '-')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class DualStack(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    request_queue_size = 256  # not 5: the bench opens 200 connections a second

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class Dot(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"dot\n")


class DotServer(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True


def udp_echo(port: int) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    while True:
        data, peer = sock.recvfrom(2048)
        sock.sendto(data, peer)


def main() -> None:
    cert, key = sys.argv[1:3]
    servers: list[socketserver.BaseServer] = [DualStack(("::", 80), Hello), DualStack(("::", 8080), Hello)]
    tls = DualStack(("::", 443), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    servers += [tls, DotServer(("::", 853), Dot)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    for port in (443, 53):  # QUIC, and the lab's resolver (an echo is enough to see it reached)
        threading.Thread(target=udp_echo, args=(port,), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
