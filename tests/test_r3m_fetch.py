"""Fetching weights against a real HTTP server on 127.0.0.1 (the official host cannot be reached from a test):
whole download, resume with a Range request after an interruption, a server that ignores Range, size and
hash mismatches, an HTML page instead of the file, and the offline message."""
from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import numpy as np
import pytest

from models.r3m.checkpoint import load_net, save_checkpoint
from models.r3m.fetch import FetchError, RemoteFile, download, fetch_r3m, official_files
from models.r3m.model import R3MNet
from models.text_encoder import SentenceEncoder, default_vocab_path

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class FileServer(ThreadingHTTPServer):
    """Serves `files` by path; Range support, truncation and the content type are switchable per test."""
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(('127.0.0.1', 0), Handler)
        self.files: dict[str, bytes] = {}
        self.content_type = 'application/octet-stream'
        self.ranges = True
        self.cut_after: int | None = None     # send only this many body bytes, then drop the connection
        self.requests: list[str | None] = []  # the Range header of each request

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.server_address[1]}{path}'


class Handler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        data = self.server.files.get(self.path)
        range_header = self.headers.get('Range')
        self.server.requests.append(range_header)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if range_header and self.server.ranges:
            start = int(re.fullmatch(r'bytes=(\d+)-', range_header).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header('Content-Range', f'bytes */{len(data)}')
                self.end_headers()
                return
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        else:
            self.send_response(200)
        self.send_header('Content-Type', self.server.content_type)
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.server.cut_after is not None:
            body = body[:self.server.cut_after]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_download_verifies_and_writes_atomically(server, tmp_path):
    server.files['/w.bin'] = PAYLOAD
    path = download(RemoteFile('w.bin', server.url('/w.bin'), len(PAYLOAD), PAYLOAD_SHA), tmp_path, progress=False)
    assert path == tmp_path / 'w.bin' and path.read_bytes() == PAYLOAD
    assert not (tmp_path / 'w.bin.part').exists()
    assert download(RemoteFile('w.bin', server.url('/w.bin'), len(PAYLOAD), PAYLOAD_SHA), tmp_path) == path
    assert server.requests == [None]          # present and verified: not downloaded again


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.files['/w.bin'] = PAYLOAD
    remote = RemoteFile('w.bin', server.url('/w.bin'), sha256=PAYLOAD_SHA)   # size unknown, as for R3M's files
    server.cut_after = 120_000
    with pytest.raises(FetchError, match='run the same command again to resume'):
        download(remote, tmp_path, progress=False)
    assert not (tmp_path / 'w.bin').exists()
    assert (tmp_path / 'w.bin.part').stat().st_size == 120_000
    server.cut_after = None
    assert download(remote, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.requests == [None, 'bytes=120000-']
    assert not (tmp_path / 'w.bin.part').exists()


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    server.files['/w.bin'] = PAYLOAD
    (tmp_path / 'w.bin.part').write_bytes(PAYLOAD[:5000])
    server.ranges = False                   # answers 200 with the whole file: the part is replaced, not appended to
    assert download(RemoteFile('w.bin', server.url('/w.bin'), len(PAYLOAD), PAYLOAD_SHA), tmp_path,
                    progress=False).read_bytes() == PAYLOAD


def test_part_past_the_end_starts_over(server, tmp_path):
    server.files['/w.bin'] = PAYLOAD
    (tmp_path / 'w.bin.part').write_bytes(PAYLOAD + b'junk')     # 416 for the resume point: start again
    assert download(RemoteFile('w.bin', server.url('/w.bin')), tmp_path, progress=False).read_bytes() == PAYLOAD


def test_hash_mismatch_is_refused_and_not_kept(server, tmp_path):
    server.files['/w.bin'] = PAYLOAD[:-1] + b'\x00'
    with pytest.raises(FetchError, match=f'sha256 [0-9a-f]{{64}}, expected {PAYLOAD_SHA}') as e:
        download(RemoteFile('w.bin', server.url('/w.bin'), sha256=PAYLOAD_SHA), tmp_path, progress=False)
    assert 'deleted' in str(e.value)
    assert not (tmp_path / 'w.bin').exists() and not (tmp_path / 'w.bin.part').exists()


def test_size_mismatch_is_refused(server, tmp_path):
    server.files['/w.bin'] = PAYLOAD
    with pytest.raises(FetchError, match='announces 300000 bytes, w.bin must have 1000'):
        download(RemoteFile('w.bin', server.url('/w.bin'), size=1000), tmp_path, progress=False)


def test_html_page_instead_of_the_file_is_refused(server, tmp_path):
    server.files['/w.bin'] = b'<html>Google Drive - quota exceeded</html>'
    server.content_type = 'text/html; charset=utf-8'
    with pytest.raises(FetchError, match='HTML page instead of w.bin'):
        download(RemoteFile('w.bin', server.url('/w.bin')), tmp_path, progress=False)
    assert not (tmp_path / 'w.bin').exists()


def test_fetch_r3m_end_to_end_from_a_mirror(server, tmp_path):
    text = SentenceEncoder.random(n_layers=1, dim=64, n_heads=1, hidden_dim=128, vocab_size=30522, seed=2)
    source = save_checkpoint(R3MNet.random(size=18, hidden_dim=16, lang_enc=text, seed=2), tmp_path / 'src',
                             default_vocab_path())
    server.files['/model.pt'] = (source / 'model.pt').read_bytes()
    server.files['/config.yaml'] = (source / 'config.yaml').read_bytes()
    files = [RemoteFile('model.pt', server.url('/model.pt')), RemoteFile('config.yaml', server.url('/config.yaml'))]
    dest = fetch_r3m(18, default_vocab_path(), tmp_path / 'resnet18', progress=False, files=files)
    assert sorted(p.name for p in dest.iterdir()) == ['config.yaml', 'model.pt', 'vocab.txt']
    assert (dest / 'vocab.txt').read_bytes() == default_vocab_path().read_bytes()
    assert load_net(dest).config.hidden_dim == 16


def test_offline_fetch_says_what_to_place_where(tmp_path):
    with socket.socket() as s:                 # a port nobody listens on: connection refused, as offline
        s.bind(('127.0.0.1', 0))
        dead = f'http://127.0.0.1:{s.getsockname()[1]}'
    files = [RemoteFile('model.pt', f'{dead}/model.pt'), RemoteFile('config.yaml', f'{dead}/config.yaml')]
    start = time.monotonic()
    with pytest.raises(FetchError) as e:
        fetch_r3m(50, default_vocab_path(), tmp_path / 'resnet50', timeout_s=2, progress=False, files=files)
    assert time.monotonic() - start < 5
    message = str(e.value)
    assert f'cannot download {dead}/model.pt' in message
    for name in ('model.pt', 'config.yaml', 'vocab.txt'):
        assert str(tmp_path / 'resnet50' / name) in message
    assert 'https://drive.google.com/uc?id=1Xu0ssuG0N1zjZS54wmWzJ7-nb0-7XzbA' in message


def test_official_sources_are_r3m_load_r3m_files():
    model, config = official_files(50)
    assert (model.name, config.name) == ('model.pt', 'config.yaml')
    assert 'id=1Xu0ssuG0N1zjZS54wmWzJ7-nb0-7XzbA' in model.url and 'id=10jY2VxrrhfOdNPmsFdES568hjjIoBJx8' in config.url
    with pytest.raises(ValueError, match='one of'):
        official_files(101)
