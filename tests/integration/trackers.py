"""Tracker helpers for the `torrent peers` integration tests (stdlib only).

- make_torrent(): a v1 torrent over a small random payload, written by hand.
- OpenTracker: Debian's opentracker on a free loopback port (HTTP and UDP on the same number),
  with a whitelist in a temporary directory; stopped by PID.
- announce_http() / announce_udp(): announces as a fake peer from a chosen source address
  (127.0.0.x), so that a real tracker records each fake peer under its own IP.
- FakeHTTPTracker / FakeUDPTracker: scripted trackers served from threads of the test process.
- run_torrent(): runs the binary with a timeout, measuring wall time and peak RSS.

Everything listens on and talks to 127.0.0.0/8 only.
"""

import gzip
import hashlib
import http.client
import http.server
import os
import random
import select
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse

import btcommon
from btcommon import bdecode, bencode

OPENTRACKER = '/usr/bin/opentracker'
LOOPBACK = '127.0.0.1'
PROBE_IP = '127.0.0.97'  # the readiness probe's address, removed from the swarm again
UDP_PROTOCOL_ID = 0x41727101980


# --- small things -----------------------------------------------------------------------------

def compact4(ip, port):
    return socket.inet_pton(socket.AF_INET, ip) + struct.pack('>H', port)


def compact6(ip, port):
    return socket.inet_pton(socket.AF_INET6, ip) + struct.pack('>H', port)


def free_port(tcp=True, udp=True, host=LOOPBACK):
    """A port number free on `host` for TCP and/or UDP right now (the kernel picks it)."""
    for _ in range(100):
        first = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        try:
            first.bind((host, 0))
            port = first.getsockname()[1]
            if tcp and udp:
                other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    other.bind((host, port))
                except OSError:
                    continue
                finally:
                    other.close()
            return port
        finally:
            first.close()
    raise RuntimeError('no free port found')


def closed_port():
    """A loopback port on which nothing listens (TCP connect is refused; UDP gets ICMP)."""
    return free_port(tcp=True, udp=True)


def wait_until(pred, timeout, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# --- torrents ---------------------------------------------------------------------------------

def make_torrent(directory, announce=None, announce_list=None, size=None, name=None, seed=None,
                 torrent_name=None):
    """Writes a single-file v1 torrent (and its payload) into `directory`, as `torrent_name`
    (default: the payload's name + .torrent). Returns (torrent path, info hash as 20 bytes).
    The same seed gives the same payload, name and so info hash."""
    rnd = random.Random(seed)
    size = size if size is not None else rnd.randint(20000, 70000)
    name = name or 'payload-%08x.bin' % rnd.getrandbits(32)
    payload = rnd.randbytes(size)
    with open(os.path.join(directory, name), 'wb') as f:
        f.write(payload)
    plen = 16384
    pieces = b''.join(hashlib.sha1(payload[i:i + plen]).digest()
                      for i in range(0, len(payload), plen))
    info = {'name': name, 'length': size, 'piece length': plen, 'pieces': pieces}
    root = {'info': info, 'created by': 'peers integration test'}
    if announce is not None:
        root['announce'] = announce
    if announce_list is not None:
        root['announce-list'] = announce_list
    data = bencode(root)
    path = os.path.join(directory, torrent_name or name + '.torrent')
    with open(path, 'wb') as f:
        f.write(data)
    return path, hashlib.sha1(bencode(info)).digest()


def peer_id(n):
    return b'-PT0001-' + b'%012d' % n


# --- running the binary -----------------------------------------------------------------------

class Run:
    def __init__(self, args, returncode, stdout, stderr, elapsed, maxrss_kib):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.maxrss_kib = maxrss_kib

    @property
    def out(self):
        return self.stdout.decode('utf-8', 'replace')

    @property
    def err(self):
        return self.stderr.decode('utf-8', 'replace')

    def lines(self):
        return self.out.splitlines()

    def __repr__(self):
        return 'Run(%r rc=%s %.2fs stdout=%r stderr=%r)' % (
            self.args, self.returncode, self.elapsed, self.stdout[:600], self.stderr[:1200])


# Runs argv[2:] as its child and writes the child's peak RSS (KiB) to argv[1]. A fresh small
# process: a child forked straight from the test process would inherit the test's own RSS high
# water mark in its ru_maxrss (Linux keeps it across exec).
_RSS_LAUNCHER = r"""
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
signal.signal(signal.SIGTERM, lambda *a: os.kill(pid, signal.SIGKILL))
while True:
    try:
        _, status, ru = os.wait4(pid, 0)
        break
    except InterruptedError:
        continue
with open(sys.argv[1], 'w') as f:
    f.write('%d\n' % ru.ru_maxrss)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


SANITIZER_MARKERS = (b'ERROR: AddressSanitizer', b'ERROR: LeakSanitizer', b'runtime error:',
                     b'WARNING: AddressSanitizer')


def run_torrent(*args, timeout=30, measure_rss=False):
    """Runs `torrent ARGS` with stdout/stderr in temp files; kills it (by PID) after `timeout`
    seconds. Returns a Run with the wall time and, with measure_rss, the binary's peak RSS."""
    argv = [btcommon.TORRENT, *map(str, args)]
    env = dict(os.environ, no_proxy='*', NO_PROXY='*')
    for k in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'all_proxy'):
        env.pop(k, None)
    rss_file = None
    cmd = argv
    if measure_rss:
        fd, rss_file = tempfile.mkstemp(prefix='rss-')
        os.close(fd)
        cmd = ['/usr/bin/python3', '-c', _RSS_LAUNCHER, rss_file, *argv]
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.monotonic()
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
            killed = False
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
                os.kill(p.pid, signal.SIGTERM if measure_rss else signal.SIGKILL)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(5)
            elapsed = time.monotonic() - start
            out.seek(0)
            err.seek(0)
            maxrss = None
            if rss_file:
                with open(rss_file) as f:
                    text = f.read().strip()
                maxrss = int(text) if text else None
            r = Run(argv[1:], p.returncode, out.read(), err.read(), elapsed, maxrss)
    finally:
        if rss_file:
            os.unlink(rss_file)
    if killed:
        raise AssertionError('torrent did not exit within %s s: %r' % (timeout, r))
    for marker in SANITIZER_MARKERS:
        if marker in r.stderr:
            raise AssertionError('sanitizer report (%r): %s' % (
                marker, r.stderr.decode('utf-8', 'replace')[-4000:]))
    return r


# --- opentracker ------------------------------------------------------------------------------

class OpenTracker:
    """Debian's opentracker on 127.0.0.1, HTTP and UDP on one free port number.

    It chroots into a temporary directory (made world-searchable) and reads the whitelist from
    there; only whitelisted info hashes are served."""

    def __init__(self, info_hashes):
        self.info_hashes = list(info_hashes)
        self.proc = None
        self.dir = None
        self.port = None

    @property
    def http_url(self):
        return 'http://%s:%d/announce' % (LOOPBACK, self.port)

    @property
    def udp_url(self):
        return 'udp://%s:%d/announce' % (LOOPBACK, self.port)

    def start(self):
        self.dir = tempfile.mkdtemp(prefix='opentracker-')
        os.chmod(self.dir, 0o755)
        wl = os.path.join(self.dir, 'whitelist.txt')
        with open(wl, 'w') as f:
            for h in self.info_hashes:
                f.write(h.hex() + '\n')
        os.chmod(wl, 0o644)
        self.log = open(os.path.join(self.dir, 'log.txt'), 'wb')
        last = None
        for _ in range(5):  # the port can be taken between free_port() and the bind
            self.port = free_port()
            self.proc = subprocess.Popen(
                [OPENTRACKER, '-i', LOOPBACK, '-p', str(self.port), '-P', str(self.port),
                 '-d', self.dir, '-w', 'whitelist.txt'],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
            try:
                self._wait_ready()
                return self
            except Exception as e:  # noqa: BLE001
                last = e
                self._kill()
        self.stop()
        raise RuntimeError('opentracker did not start: %s; log: %r' % (last, self.read_log()))

    def read_log(self):
        try:
            with open(os.path.join(self.dir, 'log.txt'), 'rb') as f:
                return f.read()[-2000:]
        except OSError:
            return b''

    def _wait_ready(self, timeout=10):
        """Ready when an announce for each whitelisted hash is accepted. The whitelist is read by
        another thread after the sockets answer (/scrape and 'stopped' announces are served
        before it is loaded), so the probe is a real announce from 127.0.0.97, removed again by
        a 'stopped' one."""
        end = time.monotonic() + timeout
        last = None
        pending = list(self.info_hashes)
        pid = b'-PROBE-' + bytes(13)
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError('exited with %s' % self.proc.returncode)
            try:
                r = announce_http(self.http_url, pending[0], pid, 9, source_ip=PROBE_IP,
                                  numwant=0, timeout=1)
                last = r
                if b'failure reason' not in r:
                    announce_http(self.http_url, pending[0], pid, 9, source_ip=PROBE_IP,
                                  event='stopped', numwant=0, timeout=1)
                    pending.pop(0)
                    if not pending:
                        return
                    continue
            except (OSError, RuntimeError, ValueError) as e:
                last = e
            time.sleep(0.02)
        raise RuntimeError('not ready within %s s: %r' % (timeout, last))

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def stop(self):
        self._kill()
        if self.dir:
            try:
                self.log.close()
            except Exception:  # noqa: BLE001
                pass
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- fake peers announcing --------------------------------------------------------------------

def announce_http(url, info_hash, pid, port, source_ip=LOOPBACK, event='started', numwant=200,
                  left=1000, timeout=5):
    """GET announce from a socket bound to source_ip; returns the decoded reply dict."""
    u = urllib.parse.urlsplit(url)
    params = [('info_hash', info_hash), ('peer_id', pid), ('port', str(port)),
              ('uploaded', '0'), ('downloaded', '0'), ('left', str(left)), ('compact', '1'),
              ('numwant', str(numwant))]
    if event:
        params.append(('event', event))
    q = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    path = (u.path or '/') + ('&' if u.query else '?') + (u.query + '&' if u.query else '') + q
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout,
                                   source_address=(source_ip, 0))
    try:
        c.request('GET', path)
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    if r.status != 200:
        raise RuntimeError('announce to %s: HTTP %s %r' % (url, r.status, body[:200]))
    return bdecode(body)


def parse_compact(blob, v6=False):
    step = 18 if v6 else 6
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    out = []
    for i in range(0, len(blob) - len(blob) % step, step):
        ip = socket.inet_ntop(fam, blob[i:i + step - 2])
        port = struct.unpack('>H', blob[i + step - 2:i + step])[0]
        out.append(('[%s]:%d' if v6 else '%s:%d') % (ip, port))
    return out


def reply_peers(reply):
    """'ip:port' strings from a decoded HTTP announce reply (compact or dictionary)."""
    peers = reply.get(b'peers', b'')
    if isinstance(peers, bytes):
        out = parse_compact(peers)
    else:
        out = ['%s:%d' % (p[b'ip'].decode(), p[b'port']) for p in peers]
    return out + parse_compact(reply.get(b'peers6', b''), v6=True)


def announce_udp(host, port, info_hash, pid, peer_port, source_ip=LOOPBACK, event=2,
                 numwant=200, left=1000, timeout=5):
    """BEP 15 connect + announce from a socket bound to source_ip. Returns (interval, leechers,
    seeders, ['ip:port', ...])."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.bind((source_ip, 0))
        tid = random.getrandbits(32)
        s.sendto(struct.pack('>QII', UDP_PROTOCOL_ID, 0, tid), (host, port))
        data, _ = s.recvfrom(2048)
        action, rtid, cid = struct.unpack('>IIQ', data[:16])
        if action != 0 or rtid != tid:
            raise RuntimeError('bad connect reply %r' % data)
        tid = random.getrandbits(32)
        pkt = struct.pack('>QII20s20sQQQIIIiH', cid, 1, tid, info_hash, pid, 0, left, 0, event,
                          0, random.getrandbits(32), numwant, peer_port)
        s.sendto(pkt, (host, port))
        data, _ = s.recvfrom(65536)
        action, rtid = struct.unpack('>II', data[:8])
        if action != 1 or rtid != tid:
            raise RuntimeError('bad announce reply %r' % data)
        interval, leechers, seeders = struct.unpack('>III', data[8:20])
        return interval, leechers, seeders, parse_compact(data[20:])
    finally:
        s.close()


# --- scripted HTTP tracker --------------------------------------------------------------------

class Reply:
    """What a scripted HTTP tracker sends: status, headers, body, after `delay` seconds.
    stall=True holds the connection open without answering (until the tracker stops)."""

    def __init__(self, body=b'', status=200, headers=None, stall=False, ctype='text/plain',
                 delay=0):
        self.body = body
        self.delay = delay
        self.status = status
        self.headers = dict(headers or {})
        self.stall = stall
        self.ctype = ctype


def ok_body(peers=(), peers6=(), interval=1800, extra=None, dict_peers=None):
    d = {'interval': interval}
    if dict_peers is not None:
        d['peers'] = dict_peers
    else:
        d['peers'] = b''.join(compact4(*p) for p in peers)
    if peers6:
        d['peers6'] = b''.join(compact6(*p) for p in peers6)
    d.update(extra or {})
    return bencode(d)


class FakeHTTPTracker:
    """A threaded HTTP server on 127.0.0.1:0. `script(request)` returns a Reply, where request
    is a dict: path, params (name -> raw bytes value), headers. Every request is recorded."""

    def __init__(self, script):
        self.script = script
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        tracker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                params = {}
                for part in u.query.split('&'):
                    if '=' in part:
                        k, v = part.split('=', 1)
                        params[urllib.parse.unquote(k)] = urllib.parse.unquote_to_bytes(v)
                req = {'path': u.path, 'params': params, 'headers': dict(self.headers),
                       'time': time.monotonic()}
                with tracker.lock:
                    tracker.requests.append(req)
                r = tracker.script(req)
                if r.stall:
                    tracker.release.wait(60)
                    return
                if r.delay and tracker.release.wait(r.delay):
                    return
                self.send_response(r.status)
                if 'Content-Type' not in r.headers:
                    self.send_header('Content-Type', r.ctype)
                if 'Content-Length' not in r.headers and 'Transfer-Encoding' not in r.headers:
                    self.send_header('Content-Length', str(len(r.body)))
                for k, v in r.headers.items():
                    self.send_header(k, v)
                self.send_header('Connection', 'close')
                self.end_headers()
                try:
                    self.wfile.write(r.body)
                    self.wfile.flush()
                except OSError:
                    pass  # the client gave up (size cap): expected in some tests
                self.close_connection = True

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((LOOPBACK, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def url(self, path='/announce'):
        return 'http://%s:%d%s' % (LOOPBACK, self.port, path)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def announces(self, event=None):
        with self.lock:
            reqs = list(self.requests)
        if event is None:
            return reqs
        return [r for r in reqs if r['params'].get('event') == event.encode()]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- scripted UDP tracker ---------------------------------------------------------------------

class FakeUDPTracker:
    """A BEP 15 tracker on a UDP socket (127.0.0.1:0) served by a thread.

    `script(kind, packet, fake)` is called for every datagram received, kind being 'connect',
    'announce' or 'other'; it returns a list of datagrams to send back (bytes), or None for the
    default behaviour: a connection id for a connect, and for an announce a reply listing
    `self.peers`. Every datagram is recorded in self.received as (kind, bytes, time)."""

    def __init__(self, script=None, peers=(), interval=1800, seeders=3, leechers=4):
        self.script = script
        self.peers = list(peers)
        self.interval = interval
        self.seeders = seeders
        self.leechers = leechers
        self.received = []
        self.issued_ids = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path='/announce'):
        return 'udp://%s:%d%s' % (LOOPBACK, self.port, path)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @staticmethod
    def kind_of(pkt):
        if len(pkt) >= 16 and struct.unpack('>QI', pkt[:12]) == (UDP_PROTOCOL_ID, 0):
            return 'connect'
        if len(pkt) >= 98 and struct.unpack('>I', pkt[8:12])[0] == 1:
            return 'announce'
        return 'other'

    @staticmethod
    def tid(pkt):
        return struct.unpack('>I', pkt[12:16])[0]

    def connect_reply(self, pkt, tid=None):
        cid = random.getrandbits(64)
        with self.lock:
            self.issued_ids.append(cid)
        return struct.pack('>IIQ', 0, self.tid(pkt) if tid is None else tid, cid)

    def announce_reply(self, pkt, peers=None, tid=None):
        peers = self.peers if peers is None else peers
        return struct.pack('>IIIII', 1, self.tid(pkt) if tid is None else tid, self.interval,
                           self.leechers, self.seeders) + b''.join(compact4(*p) for p in peers)

    @staticmethod
    def error_reply(pkt, message):
        return struct.pack('>II', 3, FakeUDPTracker.tid(pkt)) + message

    @staticmethod
    def announce_fields(pkt):
        (cid, action, tid, ih, pid, down, left, up, event, ip, key, numwant,
         port) = struct.unpack('>QII20s20sQQQIIIiH', pkt[:98])
        return {'connection_id': cid, 'tid': tid, 'info_hash': ih, 'peer_id': pid,
                'left': left, 'event': event, 'numwant': numwant, 'port': port}

    def count(self, kind):
        with self.lock:
            return sum(1 for k, _, _ in self.received if k == kind)

    def packets(self, kind):
        with self.lock:
            return [p for k, p, _ in self.received if k == kind]

    def _serve(self):
        while not self.stopping.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            try:
                pkt, addr = self.sock.recvfrom(65536)
            except OSError:
                continue
            kind = self.kind_of(pkt)
            self.last_addr = addr
            with self.lock:
                self.received.append((kind, pkt, time.monotonic()))
            out = self.script(kind, pkt, self) if self.script else None
            if out is None:
                if kind == 'connect':
                    out = [self.connect_reply(pkt)]
                elif kind == 'announce':
                    out = [self.announce_reply(pkt)]
                else:
                    out = []
            for d in out:
                try:
                    self.sock.sendto(d, addr)
                except OSError:
                    pass


def gzip_bytes(data):
    return gzip.compress(data, 9)
