"""Web seeds (BEP 19) against a real HTTP server that honours Range (busybox httpd, started on
loopback by the test and stopped by PID), alone and beside a libtorrent seeder, and against
scripted servers for what busybox will not do: ignore Range, redirect, answer 503 with
Retry-After, and count the connections open at once (three URLs of one server share one cap
of two). A web seed serving corrupted data is dropped and the download completes from the
peer; a web seed that is down does not stop the peer's download.

Run as: /usr/bin/python3 webseed_interop.py <path to torrent binary>
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402

BUSYBOX = shutil.which('busybox')
IPS = swarm.IpPool('127.0.5.')
W = None
SRC = None  # what the web seeds and the peer serve
BAD = None  # the same tree with a corrupted byte in every file
HTTPD = {}  # 'good' / 'bad' -> (Proc, port)
T = {}  # name -> torrent path (url-list empty; with_seeds() writes variants)
RUN_TIMEOUT = 60

# A single file with a short last piece; a tree with spaces, '#', '%' and non-ASCII names,
# files across piece boundaries, an empty file.
SINGLE = 'single file.bin'
BIG = 'big.bin'  # long enough that a peer and the web seed both get a share
TREE = 'tree #1'
TREE_FILES = [('a 100%.bin', 300001), ('sub dir/\u00e9t\u00e9 #2.bin', 70000),
              ('sub dir/empty', 0), ('z.bin', 5)]


def busybox_httpd(root, tag):
    port = swarm.free_port()
    proc = swarm.Proc([BUSYBOX, 'httpd', '-f', '-p', '127.0.0.1:%d' % port, '-h', root],
                      os.path.join(W, 'httpd-%s.log' % tag))
    swarm.wait_until(lambda: _connects(port), 10, what='busybox httpd on port %d' % port)
    return proc, port


def _connects(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        return True
    except OSError:
        return False


def setUpModule():
    global W, SRC, BAD
    W = tempfile.mkdtemp(prefix='webseed-interop-')
    try:
        SRC = os.path.join(W, 'src')
        os.makedirs(SRC)
        swarm.make_single(SRC, SINGLE, 2 * MiB + 12345, 1)
        swarm.make_multi(SRC, TREE, TREE_FILES, 2)
        swarm.make_single(SRC, BIG, 48 * MiB + 1, 3)
        for name, plen in ((SINGLE, 64 * KiB), (TREE, 16 * KiB), (BIG, 256 * KiB)):
            out = os.path.join(W, name + '.torrent')
            p = run_bin('create', '-o', out, '-l', str(plen), os.path.join(SRC, name))
            assert p.returncode == 0, p.stderr
            T[name] = out
        BAD = os.path.join(W, 'bad')
        shutil.copytree(SRC, BAD)
        for dirpath, _, names in os.walk(BAD):
            for n in names:
                path = os.path.join(dirpath, n)
                size = os.path.getsize(path)
                if size > 1000:
                    with open(path, 'r+b') as f:
                        f.seek(size // 2)
                        b = f.read(1)
                        f.seek(size // 2)
                        f.write(bytes([b[0] ^ 0xFF]))
        HTTPD['good'] = busybox_httpd(SRC, 'good')
        HTTPD['bad'] = busybox_httpd(BAD, 'bad')
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    for proc, _ in HTTPD.values():
        proc.stop()
    HTTPD.clear()
    if W:
        shutil.rmtree(W, ignore_errors=True)


def run_bin(*args, timeout=RUN_TIMEOUT):
    return subprocess.run([btcommon.TORRENT, *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          env=swarm.child_env())


def with_seeds(name, urls, tag):
    """The torrent `name` with url-list `urls` (outside the info dict: same info hash)."""
    with open(T[name], 'rb') as f:
        data = f.read()
    root = btcommon.bdecode(data)
    start, end = root.spans[b'info']
    out = {k: v for k, v in root.items() if k != b'info'}
    out[b'info'] = btcommon.Raw(data[start:end])
    out[b'url-list'] = [u.encode() for u in urls]
    path = os.path.join(W, '%s-%s.torrent' % (tag, name.replace(' ', '_')))
    with open(path, 'wb') as f:
        f.write(btcommon.bencode(out))
    return path


def good_url(port=None, prefix=''):
    return 'http://127.0.0.1:%d/%s' % (port or HTTPD['good'][1], prefix)


def single_url(port=None):
    from urllib.parse import quote
    return good_url(port) + quote(SINGLE)


def webseed_bytes(stderr):
    m = re.search(rb'torrent: ([0-9.]+ [KMG]?i?B) of it from web seeds', stderr)
    return m.group(1).decode() if m else None


def peers_used(stderr):
    m = re.search(rb'from (\d+) peers?;', stderr)
    return int(m.group(1)) if m else None


class ScriptedServer:
    """A loopback HTTP/1.1 server for misbehaviour: mode 'ignore-range' answers every GET with
    200 and the whole file; 'redirect' answers 302 to `target`; 'busy' answers the first
    `busy` requests with 503 and Retry-After, then 302 to `target`; 'range' serves files of
    `root` (a leading /mirror/ ignored) honouring Range, slowly enough (64 KiB a millisecond)
    that connections overlap, and counts the connections open at once (`max_open`). Records
    each request's time and path."""

    def __init__(self, mode, root=None, target=None, busy=1, retry_after=2):
        self.mode, self.root, self.target = mode, root, target
        self.busy, self.retry_after = busy, retry_after
        self.requests = []
        self.open = self.max_open = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.open += 1
                self.max_open = max(self.max_open, self.open)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _closing(self, counted):
        """The connection stops counting as open (once)."""
        with self.lock:
            if counted[0]:
                counted[0] = False
                self.open -= 1

    def _handle(self, conn):
        from urllib.parse import unquote
        counted = [True]
        conn.settimeout(10)
        try:
            head = b''
            while b'\r\n\r\n' not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            path = head.split(b' ')[1].decode()
            self.requests.append((time.monotonic(), path))
            n = len(self.requests)
            if self.mode == 'busy' and n <= self.busy:
                conn.sendall(b'HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\n'
                             b'Content-Length: 4\r\nConnection: close\r\n\r\nbusy'
                             % self.retry_after)
            elif self.mode in ('redirect', 'busy'):
                conn.sendall(b'HTTP/1.1 302 Found\r\nLocation: %s%s\r\n'
                             b'Content-Length: 0\r\nConnection: close\r\n\r\n'
                             % (self.target.encode(), path.encode()))
            elif self.mode == 'range':
                self._send_range(conn, head, unquote(path), counted)
            else:
                with open(os.path.join(self.root, unquote(path).lstrip('/')), 'rb') as f:
                    body = f.read()
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close'
                             b'\r\n\r\n' % len(body))
                try:
                    conn.sendall(body)
                except OSError:
                    pass  # the client stopped reading once it had its range
        except OSError:
            pass
        finally:
            self._closing(counted)
            conn.close()

    def _send_range(self, conn, head, path, counted):
        if path.startswith('/mirror/'):
            path = path[len('/mirror'):]
        with open(os.path.join(self.root, path.lstrip('/')), 'rb') as f:
            data = f.read()
        m = re.search(rb'\r\nRange: bytes=(\d+)-(\d+)\r\n', head, re.I)
        first, last = (int(m.group(1)), int(m.group(2))) if m else (0, len(data) - 1)
        last = min(last, len(data) - 1)
        conn.sendall(b'HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/%d\r\n'
                     b'Content-Length: %d\r\nConnection: close\r\n\r\n'
                     % (first, last, len(data), last - first + 1))
        for at in range(first, last + 1, 64 * KiB):
            end = min(at + 64 * KiB, last + 1)
            if end == last + 1:
                # The client cannot see the reply end before its last bytes are sent, and may
                # open its next connection right then: this one stops counting now, not when
                # this thread gets round to closing it.
                self._closing(counted)
            conn.sendall(data[at:end])
            time.sleep(0.001)

    def url(self):
        return 'http://127.0.0.1:%d/' % self.port

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(5)


@unittest.skipUnless(BUSYBOX, 'busybox is not installed (scripts/install-deps)')
class WebSeedTest(btcommon.CliTestCase):

    def download(self, torrent, *extra, expect_ok=True):
        out = tempfile.mkdtemp(dir=W)
        p = run_bin('download', '--no-dht', '--no-tracker', '-d', out, *extra, torrent)
        if expect_ok:
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        return p, out

    def assertSame(self, out, name):
        a, b = os.path.join(out, name), os.path.join(SRC, name)
        if os.path.isdir(b):
            self.assertEqual(swarm.tree(a), swarm.tree(b))
        else:
            self.assertEqual(swarm.sha1_file(a), swarm.sha1_file(b))

    def test_single_file_alone(self):
        p, out = self.download(with_seeds(SINGLE, [single_url()], 'alone'))
        self.assertSame(out, SINGLE)
        self.assertEqual(webseed_bytes(p.stderr), '2.0 MiB', p.stderr)
        self.assertEqual(peers_used(p.stderr), 0)

    def test_single_file_directory_url(self):
        # A URL ending in '/' gets the escaped name appended.
        p, out = self.download(with_seeds(SINGLE, [good_url()], 'dir'))
        self.assertSame(out, SINGLE)

    def test_multi_file_alone(self):
        p, out = self.download(with_seeds(TREE, [good_url()], 'alone'))
        self.assertSame(out, TREE)
        self.assertIsNotNone(webseed_bytes(p.stderr), p.stderr)

    def test_multi_file_base_without_slash(self):
        p, out = self.download(with_seeds(TREE, [good_url().rstrip('/')], 'noslash'))
        self.assertSame(out, TREE)

    def test_with_libtorrent_seeder(self):
        meta = swarm.Meta(T[BIG])
        seeder = swarm.LibtorrentSeeder(IPS.take(), [meta], SRC, W)
        try:
            p, out = self.download(with_seeds(BIG, [good_url()], 'both'), '--peer',
                                   seeder.address)
        finally:
            seeder.stop()
        self.assertSame(out, BIG)
        self.assertIsNotNone(webseed_bytes(p.stderr), p.stderr)
        self.assertGreaterEqual(peers_used(p.stderr), 1, p.stderr)

    def test_magnet_ws(self):
        # A magnet's ws= is a web seed once the metadata has come from the peer.
        from urllib.parse import quote
        meta = swarm.Meta(T[BIG])
        seeder = swarm.LibtorrentSeeder(IPS.take(), [meta], SRC, W, upload_limit=4 * MiB)
        try:
            link = 'magnet:?xt=urn:btih:%s&x.pe=%s&ws=%s' % (
                meta.info_hash_hex, seeder.address, quote(good_url(), safe=''))
            p, out = self.download(link)
        finally:
            seeder.stop()
        self.assertSame(out, BIG)
        self.assertIsNotNone(webseed_bytes(p.stderr), p.stderr)

    def test_server_ignoring_range(self):
        srv = ScriptedServer('ignore-range', root=SRC)
        try:
            p, out = self.download(with_seeds(TREE, [srv.url()], 'norange'))
        finally:
            srv.stop()
        self.assertSame(out, TREE)
        self.assertGreater(len(srv.requests), 0)

    def test_redirect(self):
        srv = ScriptedServer('redirect', target=good_url().rstrip('/'))
        try:
            p, out = self.download(with_seeds(SINGLE, [srv.url() + SINGLE.replace(' ', '%20')],
                                              'redirect'))
        finally:
            srv.stop()
        self.assertSame(out, SINGLE)
        self.assertGreater(len(srv.requests), 0)

    def test_503_retry_after(self):
        srv = ScriptedServer('busy', target=good_url().rstrip('/'), busy=1, retry_after=2)
        try:
            p, out = self.download(with_seeds(SINGLE, [srv.url() + SINGLE.replace(' ', '%20')],
                                              'busy'))
        finally:
            srv.stop()
        self.assertSame(out, SINGLE)
        times = [t for t, _ in srv.requests]
        self.assertGreaterEqual(len(times), 2, srv.requests)
        # The second request waited for Retry-After (the other connection may go at once only
        # if it was started before the 503 came).
        later = [t - times[0] for t in times[1:]]
        self.assertGreaterEqual(max(later), 1.9, later)

    def test_one_server_cap(self):
        # Three URLs of one server (two directories and the file itself): two connections at
        # once over all three, not two each.
        from urllib.parse import quote
        srv = ScriptedServer('range', root=SRC)
        try:
            urls = [srv.url(), srv.url() + 'mirror/', srv.url() + quote(BIG)]
            p, out = self.download(with_seeds(BIG, urls, 'one-server'))
        finally:
            srv.stop()
        self.assertSame(out, BIG)
        self.assertEqual(webseed_bytes(p.stderr), '48.0 MiB', p.stderr)
        self.assertGreaterEqual(len(srv.requests), 12, srv.requests)  # 4 MiB runs
        self.assertGreaterEqual(srv.max_open, 1)
        self.assertLessEqual(srv.max_open, 2, 'connections open at once')

    def test_corrupted_web_seed_dropped(self):
        meta = swarm.Meta(T[SINGLE])
        # A slow seeder, so that the web seed's run (its bad piece in it) surely comes first:
        # a fast one could deliver every piece before the web seed's first byte.
        seeder = swarm.LibtorrentSeeder(IPS.take(), [meta], SRC, W, upload_limit=256 * KiB)
        try:
            bad = 'http://127.0.0.1:%d/' % HTTPD['bad'][1]
            p, out = self.download(with_seeds(SINGLE, [bad], 'corrupt'), '--peer',
                                   seeder.address)
        finally:
            seeder.stop()
        self.assertSame(out, SINGLE)
        self.assertIn(b'web seed dropped: its data failed verification', p.stderr)
        self.assertRegex(p.stderr, rb'[1-9]\d* pieces? failed verification')

    def test_corrupted_web_seed_alone_stalls(self):
        bad = 'http://127.0.0.1:%d/' % HTTPD['bad'][1]
        p, out = self.download(with_seeds(SINGLE, [bad], 'corrupt-alone'), expect_ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b'web seed dropped: its data failed verification', p.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, SINGLE)))

    def test_server_down(self):
        meta = swarm.Meta(T[TREE])
        seeder = swarm.LibtorrentSeeder(IPS.take(), [meta], SRC, W)
        try:
            down = 'http://127.0.0.1:%d/' % swarm.closed_port()
            p, out = self.download(with_seeds(TREE, [down], 'down'), '--peer', seeder.address)
        finally:
            seeder.stop()
        self.assertSame(out, TREE)
        self.assertIsNone(webseed_bytes(p.stderr), p.stderr)


if __name__ == '__main__':
    btcommon.main()
