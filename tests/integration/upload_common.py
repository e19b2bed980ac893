"""Helpers for the upload-side integration tests (upload_*.py): stdlib + python3-libtorrent.

- `Seed`: `torrent seed` (the binary under test) running in the background with --listen,
  -p and --progress=json -v, its stderr read line by line: the "seeding" JSON lines give the
  uploaded byte count, the -v lines the peers opened and closed. Stopped by PID (SIGINT, the
  Ctrl-C a user would press; SIGKILL if it does not exit).
- `lt_session()`: a quiet python3-libtorrent session bound to one loopback address.
- `MiniPeer`: a small BitTorrent peer written here (plaintext, no extensions) that handshakes
  with a seeder and can download a whole torrent honestly, or send whatever a test wants.
- `vmrss_kib()`: a process's resident set size from /proc.
- magnets: `magnet_uri()` builds one (tr=, x.pe=); `lt_add_magnet()` / `lt_wait_metadata()`
  open one in libtorrent; `Aria2Magnet` opens one in aria2c (the metadata only, or the whole
  torrent); `torrent_file_hash()` reads a saved .torrent back with libtorrent.
- `RtorrentDownloader`: rtorrent 0.9.8 headless (daemon mode), stopped by PID.

Reuses swarm.py (payloads, torrents, opentracker, processes). Everything stays on 127.0.0.0/8.
"""

import hashlib
import os
import shutil
import re
import signal
import socket
import subprocess
import struct
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import btcommon  # noqa: E402
import swarm  # noqa: E402

BLOCK = 16 * 1024
# Safety nets, should a test process be killed before its cleanups run: every process started
# here also ends by itself after this many seconds (seed --seed-time, aria2c --stop, timeout(1)).
SELF_STOP_S = 300

# message ids
CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL = range(9)


def stop_on_sigterm():
    """SIGTERM (meson's timeout) raises KeyboardInterrupt in the main thread, so that the
    finally blocks and cleanups stop every process this test started."""
    def handler(signum, frame):
        raise KeyboardInterrupt('SIGTERM')
    signal.signal(signal.SIGTERM, handler)


def vmrss_kib(pid):
    """VmRSS of a live process in KiB (None once it is gone)."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# --- our seeder -------------------------------------------------------------------------------

def wait_listening(ip, port, timeout, alive=None, log=None):
    """Waits until ip:port accepts a TCP connection (closed at once, nothing sent). alive():
    is the process still running (else fail at once, with log() if given)."""
    def ok():
        if alive is not None and not alive():
            raise RuntimeError('the process exited before listening on %s:%d%s'
                               % (ip, port, ': ' + log() if log else ''))
        try:
            with socket.create_connection((ip, port), timeout=0.5,
                                          source_address=(swarm.PROBE_IP, 0)):
                return True
        except OSError:
            return False
    swarm.wait_until(ok, timeout, step=0.1, what='%s:%d to listen' % (ip, port))


class Background:
    """The binary under test in the background (swarm.Client: stderr read line by line), on
    ip:port. stop() is Ctrl-C by PID (SIGKILL if it does not exit) and returns the Result;
    close() kills it if still running (teardown)."""

    def __init__(self, *args, ip, port, ready=None, timeout=30):
        self.ip = ip
        self.port = port
        self.client = swarm.Client(*args)
        self.pid = self.client.proc.pid
        self.result = None
        try:
            if ready:
                swarm.wait_until(lambda: ready in self.stderr() or not self.alive(), timeout,
                                 what='%r from %s' % (ready, ' '.join(map(str, args))))
                if ready not in self.stderr():
                    raise RuntimeError('exited before %r: %r' % (ready, self.client.wait(5)))
            else:
                wait_listening(ip, port, timeout, self.alive)
        except BaseException:
            self.close()
            raise

    @property
    def address(self):
        return '%s:%d' % (self.ip, self.port)

    def alive(self):
        return self.client.proc.poll() is None

    def stderr(self):
        with self.client.lock:
            return b''.join(self.client.err_lines).decode('utf-8', 'replace')

    def stop(self, timeout=20):
        if self.result is None:
            if self.alive():
                os.kill(self.pid, signal.SIGINT)
            self.result = self.client.wait(timeout)
            self.client.close()
            swarm.check_sanitizers(self.result.stderr)
        return self.result

    def close(self):
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass



class Aria2Downloader:
    """aria2c downloading one torrent into outdir from its tracker's peers, bound to ip (its
    listening, peer and tracker sockets); exits 0 once it verified everything."""

    def __init__(self, ip, meta, outdir, cwd):
        self.ip = ip
        self.port = swarm.free_port(ip)
        argv = [swarm.ARIA2C, '--no-conf', '--seed-time=0', '--enable-dht=false',
                '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
                '--disable-ipv6=true', '--interface=%s' % ip, '--listen-port=%d' % self.port,
                '--dir=%s' % outdir, '--file-allocation=none', '--bt-max-peers=0',
                '--bt-min-crypto-level=plain', '--bt-require-crypto=false',
                '--summary-interval=0', '--console-log-level=warn', '--auto-save-interval=0',
                '--allow-overwrite=false', '--show-console-readout=false',
                '--stop=%d' % SELF_STOP_S, meta.path]
        self.proc = swarm.Proc(argv, outdir + '.aria2.log', cwd=cwd)

    def wait(self, timeout):
        try:
            rc = self.proc.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('aria2c not done after %s s: %s' % (timeout,
                                                                    self.proc.read_log()))
        if rc != 0:
            raise AssertionError('aria2c exited %s: %s' % (rc, self.proc.read_log()))

    def stop(self):
        self.proc.stop()


class TransmissionDownloader:
    """transmission-cli (3.00) downloading one torrent into outdir, listening on ip:port:
    plaintext preferred, no DHT/LPD/PEX/uTP/port mapping, files written under their final
    names. It never exits by itself: its completion script (-f) creates a marker file, and
    stop() ends it by PID."""

    def __init__(self, ip, meta, outdir, cwd):
        self.ip = ip
        self.port = swarm.free_port(ip)
        self.config = tempfile.mkdtemp(prefix='tr-', dir=cwd)
        self.marker = os.path.join(self.config, 'done')
        script = os.path.join(self.config, 'done.sh')
        with open(script, 'w') as f:
            f.write('#!/bin/sh\n: > "%s"\n' % self.marker)
        os.chmod(script, 0o755)
        swarm.write_transmission_settings(
            self.config, ip, self.port, outdir, **{
                'rename-partial-files': False, 'incomplete-dir-enabled': False,
                'script-torrent-done-enabled': True, 'script-torrent-done-filename': script})
        argv = ['timeout', str(SELF_STOP_S), swarm.TRANSMISSION_CLI, '-g', self.config,
                '-w', outdir, '-p', str(self.port), '-et', '-M', '-U', '-D', '-f', script,
                meta.path]
        self.proc = swarm.Proc(argv, os.path.join(self.config, 'log.txt'), cwd=cwd)

    def wait(self, timeout):
        def done():
            if not self.proc.alive():
                raise AssertionError('transmission-cli exited: %s' % self.proc.read_log())
            return os.path.exists(self.marker)
        try:
            swarm.wait_until(done, timeout, step=0.1, what='Transmission to complete')
        except TimeoutError as e:
            raise AssertionError('%s: %s' % (e, self.proc.read_log()))

    def done(self):
        return os.path.exists(self.marker)

    def progress(self):
        """The last 'Progress: x%' transmission-cli printed (None if none yet)."""
        found = re.findall(r'Progress: ([\d.]+)%', self.proc.read_log(20000))
        return float(found[-1]) if found else None

    def stop(self):
        self.proc.stop()


class Seed(Background):
    """`torrent seed [--no-tracker] --listen IP -p PORT -v --progress=json [--peer ..]
    TORRENT DATA` in the background. Ready once it printed 'seeding on port PORT'."""

    def __init__(self, meta, data, ip, port=None, peers=(), tracker=False, extra=(),
                 timeout=30):
        self.meta = meta
        port = port or swarm.free_port(ip)
        args = ['seed', '--listen', ip, '-p', port, '-v', '--progress=json',
                '--seed-time', SELF_STOP_S]
        if not tracker:
            args.append('--no-tracker')
        for p in peers:
            args += ['--peer', p]
        args += [*extra, meta.path, data]
        super().__init__(*args, ip=ip, port=port, ready='torrent: seeding on port %d' % port,
                         timeout=timeout)

    def lines(self):
        return self.stderr().splitlines()

    def ready(self):
        return ('torrent: seeding on port %d' % self.port) in self.stderr()

    def uploaded(self):
        """The highest 'uploaded' of the seeding JSON lines so far (0 if none)."""
        return max([o['uploaded'] for o in self.client.progress() if o.get('seeding')],
                   default=0)

    def wait_uploaded(self, n, timeout=10):
        """Waits until a seeding line shows at least n bytes uploaded (one a second)."""
        swarm.wait_until(lambda: self.uploaded() >= n or not self.alive(), timeout,
                         what='%s to report %d bytes uploaded' % (self.address, n))
        return self.uploaded()

    def closed_lines(self, peer=None):
        """The -v 'closed' lines ('torrent: peer ADDR: closed: REASON'), for one peer or all."""
        out = []
        for line in self.lines():
            if ': closed: ' not in line or not line.startswith('torrent: peer '):
                continue
            if peer is None or line.startswith('torrent: peer %s: ' % peer):
                out.append(line)
        return out

    def wait_closed(self, peer, timeout=10):
        return swarm.wait_until(lambda: self.closed_lines(peer), timeout,
                                what='a closed line for %s' % peer)


# --- libtorrent -------------------------------------------------------------------------------

def lt_session(ip, encryption=True, timeout=10):
    """A libtorrent session listening on ip (a free port); returns (session, port).
    encryption=False turns MSE off both ways (plaintext only)."""
    import libtorrent as lt
    cat = lt.alert.category_t
    settings = {
        'listen_interfaces': '%s:0' % ip, 'outgoing_interfaces': ip,
        'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
        'enable_natpmp': False, 'allow_multiple_connections_per_ip': True,
        'enable_incoming_utp': False, 'enable_outgoing_utp': False,
        'enable_incoming_tcp': True, 'enable_outgoing_tcp': True,
        'active_seeds': -1, 'active_limit': -1, 'active_downloads': -1,
        'alert_mask': cat.status_notification | cat.error_notification | cat.storage_notification,
    }
    if not encryption:
        settings['out_enc_policy'] = lt.enc_policy.disabled
        settings['in_enc_policy'] = lt.enc_policy.disabled
    s = lt.session(settings)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s.wait_for_alert(100)
        for a in s.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                raise RuntimeError('libtorrent cannot listen on %s: %s' % (ip, a.message()))
            if isinstance(a, lt.listen_succeeded_alert):
                return s, s.listen_port()
    raise TimeoutError('libtorrent did not listen on %s within %s s' % (ip, timeout))


def lt_add(session, meta, save_path, have=None):
    """Adds meta's torrent, started at once; `have`: piece indices it already has (marked had
    and verified: the data must be there)."""
    import libtorrent as lt
    ti = lt.torrent_info(meta.path)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    if have is not None:
        bits = [i in have for i in range(ti.num_pieces())]
        atp.have_pieces = bits
        atp.verified_pieces = bits
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return session.add_torrent(atp)


def flush_to_disk(session, handle, timeout):
    """libtorrent calls a torrent complete once every piece hashed, possibly before its disk
    threads wrote the last blocks to the files: have it flush, and wait for that, so a test
    that reads the files reads what libtorrent verified."""
    import libtorrent as lt
    handle.flush_cache()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        session.wait_for_alert(100)
        if any(isinstance(a, lt.cache_flushed_alert) for a in session.pop_alerts()):
            return
    raise TimeoutError('libtorrent did not flush its cache within %.1f s' % timeout)


def lt_wait_seeding(session, handle, timeout, what='libtorrent download'):
    """Waits until the torrent is complete (is_seeding); pops alerts meanwhile. Raises with
    the last status on timeout."""
    end = time.monotonic() + timeout
    while True:
        st = handle.status()
        if st.is_seeding:
            flush_to_disk(session, handle, max(1.0, end - time.monotonic()))
            return st
        if time.monotonic() >= end:
            raise TimeoutError('%s not complete after %s s: state %s, progress %.3f, '
                               'peers %d, error %r' % (what, timeout, st.state, st.progress,
                                                       st.num_peers, st.errc.message()))
        session.wait_for_alert(100)
        session.pop_alerts()


# --- a small BitTorrent peer ------------------------------------------------------------------

class MiniPeer:
    """A plaintext BitTorrent connection to a seeder, from source_ip. Messages are (id,
    payload) tuples; keep-alives are skipped."""

    def __init__(self, ip, port, meta, source_ip, rcvbuf=None, timeout=10):
        self.meta = meta
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.bind((source_ip, 0))
        self.sock.connect((ip, port))
        self.local = '%s:%d' % self.sock.getsockname()
        self.buf = b''
        self.peer_choking = True
        self.bitfield = None

    def handshake(self):
        self.sock.sendall(b'\x13BitTorrent protocol' + bytes(8) + self.meta.info_hash +
                          b'-MP0001-' + os.urandom(12))
        hs = self.recv_exact(68)
        if hs[:20] != b'\x13BitTorrent protocol' or hs[28:48] != self.meta.info_hash:
            raise ConnectionError('bad handshake reply %r' % hs)
        return hs[48:68]

    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise EOFError('closed by the seeder after %d of %d bytes' % (len(self.buf), n))
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, mid, payload=b''):
        self.sock.sendall(struct.pack('>IB', 1 + len(payload), mid) + payload)

    def send_raw(self, data):
        self.sock.sendall(data)

    @staticmethod
    def request_msg(index, begin, length, mid=REQUEST):
        return struct.pack('>IBIII', 13, mid, index, begin, length)

    def request(self, index, begin, length):
        self.send_raw(self.request_msg(index, begin, length))

    def recv(self, timeout=None):
        """The next message (id, payload); raises socket.timeout, EOFError or OSError."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while True:
            (n,) = struct.unpack('>I', self.recv_exact(4))
            if n == 0:
                continue
            body = self.recv_exact(n)
            mid, payload = body[0], body[1:]
            if mid == CHOKE:
                self.peer_choking = True
            elif mid == UNCHOKE:
                self.peer_choking = False
            elif mid == BITFIELD:
                self.bitfield = payload
            return mid, payload

    def wait_for(self, mid, timeout):
        """Reads until a message with id `mid` arrives; returns (it, [messages before it])."""
        end = time.monotonic() + timeout
        seen = []
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout('no message %d within %s s (saw %r)' % (
                    mid, timeout, [m for m, _ in seen]))
            m = self.recv(left)
            if m[0] == mid:
                return m, seen
            seen.append(m)

    def closed_by_peer(self, timeout):
        """True if the seeder closes the connection within `timeout` s (reading and dropping
        whatever it still sends); False if it is still open then."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True

    def download_all(self, timeout=30, pipeline=64):
        """INTERESTED, waits for UNCHOKE, requests every block (pipelined), checks every
        piece's SHA-1. Returns the torrent's content."""
        meta = self.meta
        end = time.monotonic() + timeout
        self.send(INTERESTED)
        if self.peer_choking:
            self.wait_for(UNCHOKE, timeout)
        blocks = []
        for i in range(meta.num_pieces):
            size = meta.piece_size(i)
            for b in range(0, size, BLOCK):
                blocks.append((i, b, min(BLOCK, size - b)))
        got = {}
        nxt = 0
        outstanding = set()
        while len(got) < len(blocks):
            while nxt < len(blocks) and len(outstanding) < pipeline:
                self.request(*blocks[nxt])
                outstanding.add(blocks[nxt])
                nxt += 1
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout('download_all: %d of %d blocks after %s s' % (
                    len(got), len(blocks), timeout))
            mid, payload = self.recv(left)
            if mid == PIECE:
                index, begin = struct.unpack('>II', payload[:8])
                key = (index, begin, len(payload) - 8)
                if key in outstanding:
                    outstanding.discard(key)
                    got[key] = payload[8:]
            elif mid == CHOKE:
                # requests are dropped by a choke: ask again after the next unchoke
                self.wait_for(UNCHOKE, max(0.1, end - time.monotonic()))
                for key in sorted(outstanding):
                    self.request(*key)
        data = b''.join(got[k] for k in blocks)
        for i in range(meta.num_pieces):
            piece = data[i * meta.piece_length:i * meta.piece_length + meta.piece_size(i)]
            if hashlib.sha1(piece).digest() != meta.info[b'pieces'][20 * i:20 * i + 20]:
                raise AssertionError('piece %d from the seeder fails its hash' % i)
        return data

    def close(self, reset=False):
        try:
            if reset:  # RST instead of FIN
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            self.sock.close()
        except OSError:
            pass


def honest_download(seed, meta, source_ip, timeout=30):
    """A MiniPeer downloading the whole torrent from seed; returns the content."""
    p = MiniPeer(seed.ip, seed.port, meta, source_ip, timeout=timeout)
    try:
        p.handshake()
        return p.download_all(timeout)
    finally:
        p.close()


# --- opentracker ------------------------------------------------------------------------------

def add_announce(meta, url):
    """Rewrites meta's torrent file with `url` as its announce URL, the info dictionary kept
    byte for byte (so the info hash does not change). Returns the new swarm.Meta."""
    root = btcommon.bdecode(meta.data)
    start, end = root.spans[b'info']
    out = {k: btcommon.Raw(meta.data[a:b]) for k, (a, b) in root.spans.items()}
    out[b'announce'] = url
    with open(meta.path, 'wb') as f:
        f.write(btcommon.bencode(out))
    new = swarm.Meta(meta.path)
    assert new.info_hash == meta.info_hash
    return new


class Tracker(swarm.OpenTracker):
    """swarm.OpenTracker with its whole whitelist given at the start, and more patient.
    opentracker reads the whitelist in a thread of its own, and now and then (more often on a
    loaded machine) that thread never loads it: every announce is then refused, and SIGHUP does
    not help. So the tracker is started again (on a new free port) until a probe announce for
    every hash is accepted; no SIGHUP reload is ever needed. Info hashes do not depend on the
    announce URL: make the torrents, start the tracker, then name it in them (add_announce)."""

    def __init__(self, info_hashes_hex, workdir, attempts=8, timeout=3):
        self.hashes = [os.urandom(20).hex()] + list(info_hashes_hex)
        self.dir = tempfile.mkdtemp(prefix='opentracker-', dir=workdir)
        os.chmod(self.dir, 0o755)
        d = os.path.dirname(self.dir)
        while d and d != '/':  # opentracker drops to 'nobody' and needs to reach its dir
            os.chmod(d, os.stat(d).st_mode | 0o111)
            d = os.path.dirname(d)
        path = os.path.join(self.dir, 'whitelist.txt')
        with open(path, 'w') as f:
            f.write(''.join(h + '\n' for h in self.hashes))
        os.chmod(path, 0o644)
        last = None
        for attempt in range(attempts):
            self.port = swarm.free_port(swarm.LOOPBACK, udp_too=True)
            self.proc = swarm.Proc(
                ['timeout', str(SELF_STOP_S), swarm.OPENTRACKER, '-i', swarm.LOOPBACK,
                 '-p', str(self.port), '-P', str(self.port), '-d', self.dir,
                 '-w', 'whitelist.txt'],
                os.path.join(workdir, 'opentracker-%d.log' % self.port))
            try:
                self._wait_ready(timeout)
                return
            except (RuntimeError, TimeoutError, OSError) as e:
                last = e
                self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        raise RuntimeError('opentracker did not serve its whitelist after %d starts: %s'
                           % (attempts, last))

    def whitelist(self, info_hashes_hex, timeout=10):
        raise NotImplementedError('give every hash to the constructor')


# --- magnets ----------------------------------------------------------------------------------

def magnet_uri(meta, trackers=(), peers=(), name=True):
    """A BEP 9 magnet link for meta's torrent: xt (hex info hash), dn (unless name=False), one
    tr= per tracker URL (percent-encoded whole, as clients write them) and one x.pe= per
    'HOST:PORT' peer."""
    parts = ['xt=urn:btih:' + meta.info_hash_hex]
    if name:
        parts.append('dn=' + urllib.parse.quote(meta.name, safe=''))
    parts += ['tr=' + urllib.parse.quote(t, safe='') for t in trackers]
    parts += ['x.pe=' + urllib.parse.quote(p, safe=':[]') for p in peers]
    return 'magnet:?' + '&'.join(parts)


def _host_port(address):
    host, _, port = address.rpartition(':')
    return host.strip('[]'), int(port)


def lt_add_magnet(session, uri, save_path, peers=()):
    """Adds a magnet link to a libtorrent session (lt_session()), started at once, and dials
    every 'HOST:PORT' in peers. Returns the handle."""
    import libtorrent as lt
    atp = lt.parse_magnet_uri(uri)
    atp.save_path = save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handle = session.add_torrent(atp)
    for p in peers:
        handle.connect_peer(_host_port(p))
    return handle


def lt_wait_metadata(session, handle, timeout, what='libtorrent magnet'):
    """Waits until the magnet's handle has its metadata; returns its torrent_info."""
    end = time.monotonic() + timeout
    while True:
        st = handle.status()
        if st.has_metadata:
            return handle.torrent_file()
        if time.monotonic() >= end:
            raise TimeoutError('%s: no metadata after %s s: state %s, peers %d, error %r'
                               % (what, timeout, st.state, st.num_peers, st.errc.message()))
        session.wait_for_alert(100)
        session.pop_alerts()


def torrent_file_hash(path):
    """The v1 info hash (40 hex) of a .torrent file as libtorrent reads it (raises if
    libtorrent refuses the file)."""
    import libtorrent as lt
    ti = lt.torrent_info(path)
    return str(ti.info_hashes().v1)


class Aria2Magnet:
    """aria2c opening a magnet link, bound to ip, saving into outdir. metadata_only: it stops
    once it has the metadata and writes it as outdir/<info hash>.torrent
    (--bt-metadata-only --bt-save-metadata); else it downloads the whole torrent and exits
    once it verified everything (--seed-time=0). aria2c takes no peer addresses: it finds
    peers through the magnet's trackers, or a seeder dials it (its port is self.port)."""

    def __init__(self, ip, uri, outdir, cwd, metadata_only=False):
        self.ip = ip
        self.port = swarm.free_port(ip)
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)  # else aria2c silently saves no metadata
        argv = [swarm.ARIA2C, '--no-conf', '--seed-time=0', '--enable-dht=false',
                '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
                '--disable-ipv6=true', '--interface=%s' % ip, '--listen-port=%d' % self.port,
                '--dir=%s' % outdir, '--file-allocation=none', '--bt-max-peers=0',
                '--bt-min-crypto-level=plain', '--bt-require-crypto=false',
                '--summary-interval=0', '--console-log-level=warn', '--auto-save-interval=0',
                '--allow-overwrite=false', '--show-console-readout=false',
                '--bt-save-metadata=true', '--stop=%d' % SELF_STOP_S]
        if metadata_only:
            argv.append('--bt-metadata-only=true')
        argv.append(uri)
        self.proc = swarm.Proc(argv, outdir + '.aria2.log', cwd=cwd)

    def saved_torrent(self, info_hash_hex):
        return os.path.join(self.outdir, info_hash_hex + '.torrent')

    def wait(self, timeout):
        try:
            rc = self.proc.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('aria2c not done after %s s: %s' % (timeout,
                                                                    self.proc.read_log()))
        if rc != 0:
            raise AssertionError('aria2c exited %s: %s' % (rc, self.proc.read_log()))

    def stop(self):
        self.proc.stop()


# --- rtorrent ---------------------------------------------------------------------------------

class RtorrentDownloader:
    """rtorrent 0.9.8 downloading one torrent into outdir, listening on ip:port, headless
    (system.daemon.set, REAL-PEERS.md): plaintext allowed, no DHT, PEX or UDP trackers. Its
    event.download.finished hook creates a marker file (rtorrent has verified every piece
    then); stop() ends it by PID with SIGTERM (SIGINT does not stop it in daemon mode). It
    dials the peers its tracker gives; a seeder can also dial it."""

    RTORRENT = '/usr/bin/rtorrent'

    def __init__(self, ip, meta, outdir, cwd):
        self.ip = ip
        self.port = swarm.free_port(ip)
        self.home = tempfile.mkdtemp(prefix='rtorrent-', dir=cwd)
        self.marker = os.path.join(self.home, 'done')
        session_dir = os.path.join(self.home, 'session')
        os.makedirs(session_dir)
        os.makedirs(outdir, exist_ok=True)
        rc = os.path.join(self.home, 'rtorrent.rc')
        with open(rc, 'w') as f:
            f.write('\n'.join([
                'directory.default.set = %s' % outdir,
                'session.path.set = %s' % session_dir,
                'network.bind_address.set = %s' % ip,
                'network.local_address.set = %s' % ip,
                'network.port_range.set = %d-%d' % (self.port, self.port),
                'network.port_random.set = no',
                'protocol.encryption.set = allow_incoming,try_outgoing,enable_retry',
                'dht.mode.set = disable',
                'protocol.pex.set = no',
                'trackers.use_udp.set = no',
                'throttle.global_down.max_rate.set = 0',
                'throttle.global_up.max_rate.set = 0',
                'pieces.hash.on_completion.set = no',
                'system.daemon.set = true',
                'method.set_key = event.download.finished, magnetreal_done, '
                '"execute.nothrow = touch, %s"' % self.marker,
                'load.start_verbose = %s' % meta.path,
                '']))
        # its own HOME, so that no ~/.rtorrent.rc of the machine's user is read
        argv = ['timeout', str(SELF_STOP_S), 'env', 'HOME=%s' % self.home, self.RTORRENT,
                '-n', '-o', 'import=%s' % rc]
        self.proc = swarm.Proc(argv, os.path.join(self.home, 'log.txt'), cwd=self.home)
        self.started = time.monotonic()

    @property
    def address(self):
        return '%s:%d' % (self.ip, self.port)

    def done(self):
        return os.path.exists(self.marker)

    def wait(self, timeout):
        """Waits for the finished hook; returns the seconds since rtorrent was started."""
        def finished():
            if not self.proc.alive():
                raise AssertionError('rtorrent exited (%s): %s' % (
                    self.proc.proc.returncode, self.proc.read_log()))
            return self.done()
        try:
            swarm.wait_until(finished, timeout, step=0.05, what='rtorrent to complete')
        except TimeoutError as e:
            raise AssertionError('%s: %s' % (e, self.proc.read_log()))
        return time.monotonic() - self.started

    def stop(self):
        self.proc.stop()
