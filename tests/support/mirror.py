"""A dump mirror on 127.0.0.1 in Wikimedia's layout, for the download and run tests.

:func:`serve` serves a folder over HTTP on an ephemeral port (the server binds port 0 and
keeps it, so no port is ever picked and then lost to another process);
:func:`status_json` writes a dump run's ``dumpstatus.json``. The server honours ``Range``
and can drop connections or flip a byte, per file, to test resuming and checksums.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

Request = namedtuple("Request", "path range status")
"""One request the mirror answered: its path, ``Range`` header and status code."""


class MirrorHandler(BaseHTTPRequestHandler):
    """Serves files under ``server.root``; honours ``Range: bytes=N-`` unless told not to,
    can drop the connection after N bytes (``server.drop_after[name]``: one count per
    request) or serve one flipped byte (``server.corrupt``)."""

    server: Mirror

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        srv, rng = self.server, self.headers.get("Range")
        path = (srv.root / unquote(self.path.lstrip("/"))).resolve()
        if not path.is_relative_to(srv.root) or not path.is_file():
            srv.log.append(Request(self.path, rng, 404))
            self.send_error(404)
            return
        data = bytearray(path.read_bytes())
        if path.name in srv.corrupt:
            data[len(data) // 2] ^= 0xFF
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        start = int(m.group(1)) if m and not srv.ignore_range else 0
        if start >= len(data) > 0:
            srv.log.append(Request(self.path, rng, 416))
            self.send_error(416)
            return
        status = 206 if m and not srv.ignore_range else 200
        srv.log.append(Request(self.path, rng, status))
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        drops = srv.drop_after.get(path.name)
        if drops:
            self.wfile.write(data[start : start + drops.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:])


class Mirror(ThreadingHTTPServer):
    """The server of :func:`serve`: its folder, URL, request log and fault settings."""

    root: Path
    url: str
    log: list[Request]
    drop_after: dict[str, list[int]]
    corrupt: set[str]
    ignore_range: bool

    def gets(self, name: str) -> list[Request]:
        """The requests for files called ``name``."""
        return [r for r in self.log if r.path.rsplit("/", 1)[-1] == name]


def sha1(data: bytes) -> str:
    """Hex SHA-1 of ``data``, as Wikimedia's checksum files give it."""
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def status_json(folder: Path, jobs: dict[str, tuple[str, list[str]]]) -> None:
    """Write a Wikimedia-style dumpstatus.json: job -> (status, files in ``folder``)."""
    out = {"jobs": {}, "version": "0.8"}
    for job, (state, names) in jobs.items():
        files = {}
        for n in names:
            data = (folder / n).read_bytes()
            url = f"/{folder.parent.name}/{folder.name}/{n}"
            files[n] = {"size": len(data), "url": url, "sha1": sha1(data), "md5": "0" * 32}
        out["jobs"][job] = {"status": state, "updated": "2026-01-02 03:04:05", "files": files}
    (folder / "dumpstatus.json").write_text(json.dumps(out), encoding="utf-8")


@contextmanager
def serve(root: Path) -> Iterator[Mirror]:
    """Serve ``root`` over HTTP on 127.0.0.1 (an ephemeral port) until the block ends."""
    server = Mirror(("127.0.0.1", 0), MirrorHandler)
    server.root = root.resolve()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.log, server.drop_after, server.corrupt, server.ignore_range = [], {}, set(), False
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
