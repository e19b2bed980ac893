"""Local swarms for the download integration tests (stdlib + python3-libtorrent).

- payloads: random single files and directory trees of chosen sizes (seeded, reproducible);
- torrents: v1 torrents made by mktorrent or by libtorrent (`v1_only`), read back with
  btcommon's independent bdecode (`Meta`);
- seeders, each bound to its own loopback address (127.0.0.x), started and stopped by PID
  (their whole process group): libtorrent (a child `swarm.py lt-seed` process, one session that
  can seed several torrents), aria2c and transmission-cli;
- `OpenTracker`: Debian's opentracker on a free loopback port with a whitelist;
- `probe_seed()`: a tiny BitTorrent peer written here that handshakes with a seeder and reads
  its bitfield/haves: a seeder is "ready" when it shows every piece;
- `run_client()` / `Client`: the binary under test, with a timeout, sanitizer reports turned
  into failures, and the `--progress=json` lines parsed.

Everything listens on and talks to 127.0.0.0/8 only. Run as a script (`swarm.py lt-seed ...`)
it is the libtorrent seeder process itself.
"""

import atexit
import hashlib
import http.client
import json
import os
import queue
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import btcommon  # noqa: E402
from btcommon import bdecode  # noqa: E402

PYTHON = '/usr/bin/python3'  # Debian's: it has python3-libtorrent
MKTORRENT = '/usr/bin/mktorrent'
ARIA2C = '/usr/bin/aria2c'
TRANSMISSION_CLI = '/usr/bin/transmission-cli'
OPENTRACKER = '/usr/bin/opentracker'
LOOPBACK = '127.0.0.1'
PROBE_IP = '127.0.0.254'  # source address of our own probes (readiness, tracker probe)
KiB = 1024
MiB = 1024 * 1024


def child_env():
    """The environment for every child: never a proxy (all traffic is loopback)."""
    env = {k: v for k, v in os.environ.items() if 'proxy' not in k.lower()}
    env['no_proxy'] = env['NO_PROXY'] = '*'
    return env


# --- small things -----------------------------------------------------------------------------

class IpPool:
    """Hands out loopback addresses prefix.first, prefix.first+1, ... (one per seeder)."""

    def __init__(self, prefix, first=11):
        self.prefix = prefix
        self.next = first

    def take(self):
        ip = '%s%d' % (self.prefix, self.next)
        self.next += 1
        if self.next > 250:
            raise RuntimeError('IpPool %s exhausted' % self.prefix)
        return ip


def free_port(host=LOOPBACK, udp_too=False):
    """A TCP port (and UDP too if asked) free on `host` right now."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, 0))
            port = s.getsockname()[1]
            if udp_too:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    u.bind((host, port))
                except OSError:
                    continue
                finally:
                    u.close()
            return port
        finally:
            s.close()
    raise RuntimeError('no free port on %s' % host)


def closed_port(host=LOOPBACK):
    """A port on which nothing listens: a TCP connect there is refused."""
    return free_port(host, udp_too=True)


def wait_until(pred, timeout, step=0.05, what='condition'):
    """Polls pred() until true; raises TimeoutError after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise TimeoutError('timed out after %.1f s waiting for %s' % (timeout, what))
        time.sleep(step)


def sha1_file(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def tree(path):
    """{relative path: ('file', size, sha1) | ('dir',)} of everything under path (no symlinks
    followed), for comparing directory trees exactly."""
    out = {}
    for root, dirs, files in os.walk(path):
        for d in dirs:
            p = os.path.join(root, d)
            out[os.path.relpath(p, path)] = ('dir',)
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, path)] = ('file', os.path.getsize(p), sha1_file(p))
    return out


# --- payloads ---------------------------------------------------------------------------------

def make_file(path, size, seed):
    """Writes `size` seeded random bytes to path (creating directories) and returns nothing."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    rnd = random.Random(seed)
    with open(path, 'wb') as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rnd.randbytes(n))
            left -= n


def make_single(directory, name, size, seed):
    """A single random file directory/name of `size` bytes. Returns its path."""
    path = os.path.join(directory, name)
    make_file(path, size, seed)
    return path


def make_multi(directory, name, files, seed):
    """A tree directory/name/... from [(relative path, size), ...]. Returns the root's path."""
    root = os.path.join(directory, name)
    os.makedirs(root, exist_ok=True)
    for i, (rel, size) in enumerate(files):
        make_file(os.path.join(root, *rel.split('/')), size, seed * 1000 + i)
    return root


# --- torrents ---------------------------------------------------------------------------------

def make_torrent(target, out, piece_length, trackers=(), tool=None, source=None):
    """Makes a v1 torrent of `target` (a file or a directory) at `out`.

    tool: 'mktorrent' (piece lengths 32 KiB..256 MiB) or 'libtorrent' (create_torrent with
    v1_only; any power of two from 16 KiB); default mktorrent when it can. trackers: announce
    URLs, one tier each. source: mktorrent's -s (changes the info hash). Returns a Meta."""
    if tool is None:
        tool = 'mktorrent' if piece_length >= 32768 else 'libtorrent'
    if tool == 'mktorrent':
        log2 = piece_length.bit_length() - 1
        if 1 << log2 != piece_length:
            raise ValueError('piece length must be a power of two')
        cmd = [MKTORRENT, '-d', '-l', str(log2), '-o', out]
        for t in trackers:
            cmd += ['-a', t]
        if source:
            cmd += ['-s', source]
        cmd.append(target)
        if os.path.exists(out):
            os.unlink(out)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if p.returncode != 0:
            raise RuntimeError('mktorrent failed: %r' % p.stdout[-2000:])
    else:
        if source is not None:
            raise ValueError('source= needs mktorrent')
        import libtorrent as lt
        fs = lt.file_storage()
        lt.add_files(fs, target)
        ct = lt.create_torrent(fs, piece_length, flags=lt.create_torrent.v1_only)
        for tier, t in enumerate(trackers):
            ct.add_tracker(t, tier)
        ct.set_creator('download integration tests')
        lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(target)))
        with open(out, 'wb') as f:
            f.write(lt.bencode(ct.generate()))
    meta = Meta(out)
    if any(f.get(b'attr', b'') for f in meta.info.get(b'files', [])):
        raise RuntimeError('%s has pad files' % out)
    return meta


def make_big_info(directory, name, seed, info_bytes=1100 * KiB, piece_length=16 * KiB):
    """A multi-file payload whose torrent's info dictionary is over `info_bytes` (default a
    little over 1 MiB: more than 64 metadata blocks of 16 KiB), made of many small files with
    long names in 30 folders with long names, and its v1 torrent (libtorrent, 16 KiB pieces).
    Every file entry costs about 440 bytes of the info dict, so the content stays small (about
    2 KiB a file). Returns (root, Meta); the torrent is directory/name.torrent."""
    rnd = random.Random(seed)
    per_file = 440
    count = info_bytes // per_file + 1
    folders = ['%02d-' % i + 'd' * 196 for i in range(30)]
    files = []
    for i in range(count):
        leaf = '%05d-' % i + 'f' * 200 + '.bin'
        files.append(('%s/%s' % (folders[i % len(folders)], leaf), rnd.randint(1, 4 * KiB)))
    root = make_multi(directory, name, files, seed)
    meta = make_torrent(root, os.path.join(directory, name + '.torrent'), piece_length,
                        tool='libtorrent')
    start, end = meta.root.spans[b'info']
    if end - start <= info_bytes:
        raise RuntimeError('info dict of %s is only %d bytes' % (meta.path, end - start))
    return root, meta


class Meta:
    """A torrent read back with btcommon's bdecode (independent of the code under test)."""

    def __init__(self, path):
        self.path = path
        with open(path, 'rb') as f:
            self.data = f.read()
        self.root = bdecode(self.data)
        self.info = self.root[b'info']
        self.info_hash_hex = btcommon.info_hash(self.data)
        self.info_hash = bytes.fromhex(self.info_hash_hex)
        self.name = self.info[b'name'].decode('utf-8')
        self.piece_length = self.info[b'piece length']
        self.multi = b'files' in self.info
        if self.multi:
            self.files = [('/'.join(p.decode('utf-8') for p in f[b'path']), f[b'length'])
                          for f in self.info[b'files']]
        else:
            self.files = [(self.name, self.info[b'length'])]
        self.total = sum(size for _, size in self.files)
        self.num_pieces = len(self.info[b'pieces']) // 20
        assert self.num_pieces == (self.total + self.piece_length - 1) // self.piece_length

    def piece_size(self, i):
        return min(self.piece_length, self.total - i * self.piece_length)

    def content(self, source):
        """The torrent's bytes in order, read from `source` (the file, or the directory that
        holds the files of a multi-file torrent: the one named after the torrent)."""
        if not self.multi:
            with open(source, 'rb') as f:
                return f.read()
        parts = []
        for rel, _ in self.files:
            with open(os.path.join(source, *rel.split('/')), 'rb') as f:
                parts.append(f.read())
        return b''.join(parts)

    def piece(self, source, i):
        data = self.content(source)
        return data[i * self.piece_length:i * self.piece_length + self.piece_size(i)]

    def check_piece(self, data, i):
        return hashlib.sha1(data).digest() == self.info[b'pieces'][20 * i:20 * i + 20]


# --- every child, stopped whatever happens ---------------------------------------------------
# Children run in their own sessions (so that their whole group can be killed), which also
# takes them out of the group a test runner kills on timeout: so every child is registered here
# and killed at exit and on SIGTERM/SIGINT/SIGHUP.

_children = {}  # pid -> Popen
_children_lock = threading.Lock()


def _register(popen):
    with _children_lock:
        _children[popen.pid] = popen


def _unregister(popen):
    with _children_lock:
        _children.pop(popen.pid, None)


def kill_all_children():
    with _children_lock:
        children = list(_children.values())
        _children.clear()
    for p in children:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


def _on_signal(signum, frame):
    kill_all_children()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


atexit.register(kill_all_children)
if threading.current_thread() is threading.main_thread() and __name__ != '__main__':
    for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(_sig, _on_signal)


# --- processes --------------------------------------------------------------------------------

class Proc:
    """A child in its own process group, output to a log file; stop() kills the group by the
    child's PID (SIGTERM, then SIGKILL) and waits for it, every wait bounded."""

    def __init__(self, argv, log_path, cwd=None, stdin=subprocess.DEVNULL, stdout=None,
                 preexec_fn=None):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, 'ab')
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=stdin,
                                     stdout=stdout if stdout is not None else self.log,
                                     stderr=self.log, env=child_env(), start_new_session=True,
                                     preexec_fn=preexec_fn)
        _register(self.proc)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def read_log(self, tail=3000):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')[-tail:]
        except OSError:
            return ''

    def kill(self, sig=signal.SIGKILL):
        """Sends sig to the child's process group (the child is its group's leader)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace=5):
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(10)
        else:  # the leader is gone; make sure nothing of its group is left
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _unregister(self.proc)
        for f in (self.proc.stdin, self.proc.stdout):
            if f:
                try:
                    f.close()
                except OSError:
                    pass
        self.log.close()


# --- a minimal peer, to see that a seeder is ready --------------------------------------------

def _recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError('closed after %d of %d bytes' % (len(buf), n))
        buf += chunk
    return buf


def probe_seed(ip, port, meta, timeout=2.0, source_ip=PROBE_IP):
    """Handshakes with ip:port for meta's torrent and reads messages for up to `timeout` s.
    Returns (peer id, whether it has every piece)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source_ip, 0))
        s.connect((ip, port))
        pid = b'-PR0001-' + os.urandom(12)
        s.sendall(b'\x13BitTorrent protocol' + bytes(8) + meta.info_hash + pid)
        hs = _recv_exact(s, 68)
        if hs[28:48] != meta.info_hash:
            raise ConnectionError('wrong info hash in the handshake')
        remote_id = hs[48:68]
        have = set()
        end = time.monotonic() + timeout
        while len(have) < meta.num_pieces and time.monotonic() < end:
            s.settimeout(max(0.05, end - time.monotonic()))
            try:
                (n,) = struct.unpack('>I', _recv_exact(s, 4))
            except socket.timeout:
                break
            body = _recv_exact(s, n) if n else b''
            if not body:
                continue
            if body[0] == 5:  # bitfield
                bits = body[1:]
                for i in range(meta.num_pieces):
                    if i // 8 < len(bits) and bits[i // 8] & (0x80 >> (i % 8)):
                        have.add(i)
            elif body[0] == 4 and len(body) == 5:  # have
                have.add(struct.unpack('>I', body[1:])[0])
        return remote_id, len(have) >= meta.num_pieces
    finally:
        s.close()


def wait_seeding(ip, port, metas, timeout, proc=None):
    """Waits until ip:port shows every piece of each torrent in metas. Returns {info hash hex:
    the seeder's peer id for it}."""
    ids = {}
    end = time.monotonic() + timeout
    last = None
    for meta in metas:
        while True:
            if proc is not None and not proc.alive():
                raise RuntimeError('seeder %s exited (%s): %s' % (
                    proc.argv[0], proc.proc.returncode, proc.read_log()))
            try:
                pid, full = probe_seed(ip, port, meta, timeout=1.0)
                if full:
                    ids[meta.info_hash_hex] = pid
                    break
                last = 'not all pieces yet'
            except OSError as e:
                last = e
            if time.monotonic() >= end:
                raise TimeoutError('%s:%d does not seed %s after %.0f s (%s)%s' % (
                    ip, port, meta.name, timeout, last,
                    '; log: ' + proc.read_log() if proc else ''))
            time.sleep(0.1)
    return ids


# --- seeders ----------------------------------------------------------------------------------

class LibtorrentSeeder:
    """A libtorrent session on ip (its own process: `swarm.py lt-seed`) seeding the given
    torrents from `save_path` with every piece marked had and verified. Port chosen by the
    kernel. upload_limit (bytes/s) applies to each torrent, loopback peers included.
    With announce=True it force-reannounces and waits for a tracker reply for each torrent."""

    def __init__(self, ip, metas, save_path, workdir, upload_limit=0, announce=False,
                 timeout=20):
        self.ip = ip
        self.metas = list(metas)
        self.port = None
        self.peer_ids = {}
        argv = [PYTHON, os.path.abspath(__file__), 'lt-seed', ip, save_path, str(upload_limit),
                '1' if announce else '0'] + [m.path for m in self.metas]
        log = os.path.join(workdir, 'lt-%s.log' % ip)
        self.proc = Proc(argv, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()
        try:
            self.port = int(self._expect('listening', timeout)[1])
            if announce:
                for _ in self.metas:
                    self._expect('announced', timeout)
            self.peer_ids = wait_seeding(ip, self.port, self.metas, timeout, self.proc)
        except BaseException:
            self.stop()
            raise

    def _reader(self):
        for line in self.proc.proc.stdout:
            self.lines.put(line.decode('utf-8', 'replace').split())
        self.lines.put(None)

    def _expect(self, word, timeout):
        end = time.monotonic() + timeout
        while True:
            try:
                words = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise TimeoutError('libtorrent seeder on %s: no %r within %s s; log: %s' % (
                    self.ip, word, timeout, self.proc.read_log()))
            if words is None:
                raise RuntimeError('libtorrent seeder on %s exited: %s' % (
                    self.ip, self.proc.read_log()))
            if words and words[0] == word:
                return words
            if words and words[0] == 'error':
                raise RuntimeError('libtorrent seeder on %s: %s' % (self.ip, ' '.join(words)))

    def command(self, line):
        """'rate BYTES_PER_S', 'reannounce' or 'connect HOST:PORT'."""
        self.proc.proc.stdin.write(line.encode() + b'\n')
        self.proc.proc.stdin.flush()

    @property
    def address(self):
        return '%s:%d' % (self.ip, self.port)

    def stop(self):
        self.proc.stop()


def aria2_seeder_args(ip, port, save_path):
    return [ARIA2C, '--no-conf', '--seed-ratio=0.0', '--check-integrity=true',
            '--bt-hash-check-seed=true', '--enable-dht=false', '--enable-dht6=false',
            '--bt-enable-lpd=false', '--enable-peer-exchange=false', '--disable-ipv6=true',
            '--interface=%s' % ip, '--listen-port=%d' % port, '--dir=%s' % save_path,
            '--file-allocation=none', '--bt-max-peers=0', '--max-concurrent-downloads=20',
            '--bt-min-crypto-level=plain', '--bt-require-crypto=false',
            '--summary-interval=0', '--console-log-level=warn', '--auto-save-interval=0',
            '--allow-overwrite=false', '--quiet=false', '--show-console-readout=false']


class Aria2Seeder:
    """aria2c on ip:port seeding the given torrents (one process) from save_path; ready when
    every torrent shows all pieces to a probe."""

    def __init__(self, ip, metas, save_path, workdir, timeout=30):
        self.ip = ip
        self.metas = list(metas)
        self.port = free_port(ip)
        argv = aria2_seeder_args(ip, self.port, save_path) + [m.path for m in self.metas]
        self.proc = Proc(argv, os.path.join(workdir, 'aria2-%s.log' % ip), cwd=workdir)
        try:
            self.peer_ids = wait_seeding(ip, self.port, self.metas, timeout, self.proc)
        except BaseException:
            self.stop()
            raise

    @property
    def address(self):
        return '%s:%d' % (self.ip, self.port)

    def stop(self):
        self.proc.stop()


def write_transmission_settings(config, ip, port, download_dir, **extra):
    """settings.json for a quiet transmission-cli on ip:port (REAL-PEERS.md): plaintext, no
    DHT/LPD/PEX/uTP/port mapping, no limits or queues, no RPC; extra keys added as given."""
    settings = {
        'encryption': 0, 'dht-enabled': False, 'lpd-enabled': False, 'pex-enabled': False,
        'utp-enabled': False, 'port-forwarding-enabled': False,
        'bind-address-ipv4': ip, 'bind-address-ipv6': '::1', 'peer-port': port,
        'peer-port-random-on-start': False, 'ratio-limit-enabled': False,
        'idle-seeding-limit-enabled': False, 'speed-limit-up-enabled': False,
        'speed-limit-down-enabled': False, 'alt-speed-enabled': False,
        'rpc-enabled': False, 'blocklist-enabled': False, 'start-added-torrents': True,
        'message-level': 2, 'download-queue-enabled': False, 'seed-queue-enabled': False,
        'download-dir': download_dir,
    }
    settings.update(extra)
    with open(os.path.join(config, 'settings.json'), 'w') as f:
        json.dump(settings, f)


class TransmissionSeeder:
    """transmission-cli (3.00) on ip:port seeding one torrent from save_path: plaintext
    connections, no DHT/LPD/PEX/uTP/port mapping, no limits. It verifies the data first
    (-v); ready when a probe sees every piece. It waits for its rechoke timer (up to ~10 s)
    before it unchokes a new peer."""

    def __init__(self, ip, meta, save_path, workdir, timeout=30):
        self.ip = ip
        self.metas = [meta]
        self.port = free_port(ip)
        self.config = tempfile.mkdtemp(prefix='transmission-', dir=workdir)
        write_transmission_settings(self.config, ip, self.port, save_path)
        argv = [TRANSMISSION_CLI, '-g', self.config, '-w', save_path, '-p', str(self.port),
                '-et', '-M', '-U', '-D', '-v', meta.path]
        self.proc = Proc(argv, os.path.join(workdir, 'transmission-%s.log' % ip), cwd=workdir)
        try:
            self.peer_ids = wait_seeding(ip, self.port, self.metas, timeout, self.proc)
        except BaseException:
            self.stop()
            raise

    @property
    def address(self):
        return '%s:%d' % (self.ip, self.port)

    def stop(self):
        self.proc.stop()


def start_all(factories, timeout=60):
    """Runs the seeder constructors (callables) in parallel threads, so that their start-up
    times overlap. Returns their results in order; if any fails, stops the others and
    re-raises the first error."""
    results = [None] * len(factories)
    errors = [None] * len(factories)

    def run(i, f):
        try:
            results[i] = f()
        except BaseException as e:  # noqa: BLE001
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i, f), daemon=True)
               for i, f in enumerate(factories)]
    for t in threads:
        t.start()
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    hung = any(t.is_alive() for t in threads)
    failed = next((e for e in errors if e is not None), None)
    if hung or failed:
        for r in results:
            if r is not None:
                r.stop()
        if failed:
            raise failed
        raise TimeoutError('seeders not started within %s s' % timeout)
    return results


# --- opentracker ------------------------------------------------------------------------------

def http_get(host, port, path, source_ip=PROBE_IP, timeout=3):
    c = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source_ip, 0))
    try:
        c.request('GET', path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class OpenTracker:
    """Debian's opentracker on 127.0.0.1, HTTP and UDP on one free port number, serving only
    the whitelisted info hashes (40-hex strings). Ready when a probe announce for each hash is
    accepted (the probe is then removed with a 'stopped' announce)."""

    def __init__(self, info_hashes_hex, workdir, timeout=10, attempts=3):
        # A random hash keeps the whitelist non-empty, so that readiness means "list loaded".
        self.hashes = [os.urandom(20).hex()] + list(info_hashes_hex)
        self.dir = tempfile.mkdtemp(prefix='opentracker-', dir=workdir)
        os.chmod(self.dir, 0o755)
        # opentracker drops to 'nobody' and must reach its directory: make the temporary
        # directories above it searchable (mkdtemp makes them 0700), nothing outside them.
        top = os.path.realpath(tempfile.gettempdir())
        d = os.path.dirname(os.path.realpath(self.dir))
        while d.startswith(top + os.sep):
            os.chmod(d, os.stat(d).st_mode | 0o111)
            d = os.path.dirname(d)
        with open(os.path.join(self.dir, 'whitelist.txt'), 'w') as f:
            f.write(''.join(h + '\n' for h in self.hashes))
        os.chmod(os.path.join(self.dir, 'whitelist.txt'), 0o644)
        last = None
        for _ in range(attempts):  # a port can be taken between free_port() and the bind
            self.port = free_port(LOOPBACK, udp_too=True)
            self.proc = Proc([OPENTRACKER, '-i', LOOPBACK, '-p', str(self.port), '-P',
                              str(self.port), '-d', self.dir, '-w', 'whitelist.txt'],
                             os.path.join(workdir, 'opentracker-%d.log' % self.port))
            try:
                self._wait_ready(timeout)
                return
            except (RuntimeError, TimeoutError) as e:
                last = e
                self.proc.stop()
        raise RuntimeError('opentracker did not start: %s' % last)

    @property
    def url(self):
        return 'http://%s:%d/announce' % (LOOPBACK, self.port)

    @property
    def udp_url(self):
        return 'udp://%s:%d/announce' % (LOOPBACK, self.port)

    def _announce(self, ih, event, source_ip=PROBE_IP, port=9):
        q = urllib.parse.urlencode({'info_hash': ih, 'peer_id': b'-PROBE-' + bytes(13),
                                    'port': port, 'uploaded': 0, 'downloaded': 0, 'left': 1,
                                    'compact': 1, 'numwant': 0, 'event': event},
                                   quote_via=urllib.parse.quote)  # a space is %20, never '+'
        status, body = http_get(LOOPBACK, self.port, '/announce?' + q, source_ip)
        return bdecode(body) if status == 200 else {b'failure reason': b'HTTP %d' % status}

    def _wait_ready(self, timeout):
        pending = [bytes.fromhex(h) for h in self.hashes]
        end = time.monotonic() + timeout
        last = None
        while pending:
            if not self.proc.alive():
                raise RuntimeError('opentracker exited: %s' % self.proc.read_log())
            try:
                r = self._announce(pending[0], 'started')
                last = r
                if b'failure reason' not in r:
                    self._announce(pending[0], 'stopped')
                    pending.pop(0)
                    continue
            except (OSError, ValueError) as e:
                last = e
            if time.monotonic() >= end:
                raise TimeoutError('opentracker not ready: %r; log: %s' % (
                    last, self.proc.read_log()))
            time.sleep(0.05)

    def whitelist(self, info_hashes_hex, timeout=10):
        """Adds hashes to the whitelist (SIGHUP makes opentracker read it again) and waits
        until they are served."""
        self.hashes += [h for h in info_hashes_hex if h not in self.hashes]
        path = os.path.join(self.dir, 'whitelist.txt')
        with open(path + '.new', 'w') as f:
            f.write(''.join(h + '\n' for h in self.hashes))
        os.chmod(path + '.new', 0o644)
        os.replace(path + '.new', path)
        os.kill(self.proc.pid, signal.SIGHUP)
        try:
            self._wait_ready(timeout / 2)
            return
        except (RuntimeError, TimeoutError):
            pass
        # Debian's opentracker sometimes never reloads its list on SIGHUP: start it again on
        # the same port (torrents already carry its URL) with the whole list.
        last = None
        for _ in range(3):
            self.proc.stop()
            self.proc = Proc([OPENTRACKER, '-i', LOOPBACK, '-p', str(self.port), '-P',
                              str(self.port), '-d', self.dir, '-w', 'whitelist.txt'],
                             os.path.join(os.path.dirname(self.dir),
                                          'opentracker-%d-again.log' % self.port))
            try:
                self._wait_ready(timeout)
                return
            except (RuntimeError, TimeoutError) as e:
                last = e
        raise RuntimeError('opentracker did not take the new whitelist: %s' % last)

    def scrape(self, info_hash_hex):
        """(complete, incomplete) for one info hash."""
        ih = bytes.fromhex(info_hash_hex)
        status, body = http_get(LOOPBACK, self.port,
                                '/scrape?' + urllib.parse.urlencode(
                                    {'info_hash': ih}, quote_via=urllib.parse.quote))
        if status != 200:
            return 0, 0
        files = bdecode(body).get(b'files', {})
        st = files.get(ih, {})
        return st.get(b'complete', 0), st.get(b'incomplete', 0)

    def wait_seeders(self, info_hash_hex, n, timeout=15):
        wait_until(lambda: self.scrape(info_hash_hex)[0] >= n, timeout, step=0.1,
                   what='%d seeder(s) of %s at the tracker' % (n, info_hash_hex))

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the binary under test --------------------------------------------------------------------

SANITIZER_MARKERS = (b'ERROR: AddressSanitizer', b'ERROR: LeakSanitizer', b'runtime error:',
                     b'SUMMARY: UndefinedBehaviorSanitizer', b'SUMMARY: AddressSanitizer')


class Result:
    def __init__(self, argv, returncode, stdout, stderr, elapsed):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    @property
    def out(self):
        return self.stdout.decode('utf-8', 'replace')

    @property
    def err(self):
        return self.stderr.decode('utf-8', 'replace')

    def json_lines(self):
        return parse_json_lines(self.stderr)

    def summary(self):
        for obj in self.json_lines():
            if obj.get('event') == 'summary':
                return obj
        return None

    def __repr__(self):
        return 'Result(%s -> rc=%s in %.2f s, stdout=%r, stderr=%r)' % (
            ' '.join(self.argv[1:]), self.returncode, self.elapsed, self.out[-500:],
            self.err[-2500:])


def parse_json_lines(stderr):
    out = []
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith(b'{'):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def check_sanitizers(stderr):
    for m in SANITIZER_MARKERS:
        if m in stderr:
            raise AssertionError('sanitizer report: %s' % stderr.decode('utf-8', 'replace')[-4000:])


def run_client(*args, timeout=60, cwd=None, preexec_fn=None):
    """Runs the binary under test (btcommon.TORRENT) in its own process group; on timeout the
    group is killed and an AssertionError raised. Sanitizer reports fail the test."""
    argv = [btcommon.TORRENT, *[str(a) for a in args]]
    start = time.monotonic()
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=child_env(), start_new_session=True,
                         preexec_fn=preexec_fn)
    _register(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=10)
        raise AssertionError('timed out after %s s: %s\nstderr: %s' % (
            timeout, ' '.join(argv), err.decode('utf-8', 'replace')[-3000:]))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        _unregister(p)
    r = Result(argv, p.returncode, out, err, time.monotonic() - start)
    check_sanitizers(err)
    return r


class Client:
    """The binary under test running in the background, stderr read line by line (for
    --progress=json); kill() sends SIGKILL to it by PID."""

    def __init__(self, *args, cwd=None):
        self.argv = [btcommon.TORRENT, *[str(a) for a in args]]
        self.start = time.monotonic()
        self.proc = subprocess.Popen(self.argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=child_env(), start_new_session=True)
        _register(self.proc)
        self.err_lines = []
        self.lock = threading.Lock()
        self.out = b''
        self.t_err = threading.Thread(target=self._read_err, daemon=True)
        self.t_out = threading.Thread(target=self._read_out, daemon=True)
        self.t_err.start()
        self.t_out.start()

    def _read_err(self):
        for line in self.proc.stderr:
            with self.lock:
                self.err_lines.append(line)

    def _read_out(self):
        self.out = self.proc.stdout.read()

    def progress(self):
        with self.lock:
            return parse_json_lines(b''.join(self.err_lines))

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout):
        """Waits for the exit; returns a Result (kills the process on timeout and raises)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait(10)
            raise AssertionError('timed out after %s s: %s' % (timeout, ' '.join(self.argv)))
        self.t_err.join(10)
        self.t_out.join(10)
        with self.lock:
            err = b''.join(self.err_lines)
        return Result(self.argv, self.proc.returncode, self.out, err,
                      time.monotonic() - self.start)

    def close(self):
        if self.proc.poll() is None:
            self.kill()
            self.proc.wait(10)
        _unregister(self.proc)
        for f in (self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


# --- the libtorrent seeder process ------------------------------------------------------------

def _lt_seed_main(argv):
    """swarm.py lt-seed IP SAVE_PATH UPLOAD_LIMIT ANNOUNCE TORRENT...

    Prints 'listening PORT', then 'announced HASH' for each torrent after a tracker reply
    (ANNOUNCE=1). Reads commands on stdin ('rate N', 'reannounce', 'connect HOST:PORT': dial
    that peer for every torrent); exits when stdin closes
    (so it never outlives the test process)."""
    import libtorrent as lt
    ip, save_path, limit, announce = argv[0], argv[1], int(argv[2]), argv[3] == '1'
    torrents = argv[4:]
    cat = lt.alert.category_t
    s = lt.session({
        'listen_interfaces': '%s:0' % ip, 'outgoing_interfaces': ip,
        'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
        'allow_multiple_connections_per_ip': True, 'enable_incoming_utp': False,
        'enable_outgoing_utp': False, 'enable_incoming_tcp': True, 'enable_outgoing_tcp': True,
        'anonymous_mode': False, 'announce_to_all_tiers': True,
        'active_seeds': -1, 'active_limit': -1, 'active_downloads': -1,
        'alert_mask': cat.status_notification | cat.error_notification |
        cat.tracker_notification})
    # Loopback peers are "local" and exempt from rate limits by default: put every address in
    # the global peer class so that upload limits apply to them too.
    f = lt.ip_filter()
    f.add_rule('0.0.0.0', '255.255.255.255', 1 << lt.session.global_peer_class_id)
    s.set_peer_class_filter(f)
    port = None
    end = time.monotonic() + 20
    while port is None and time.monotonic() < end:
        s.wait_for_alert(200)
        for a in s.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                print('error listen failed: %s' % a.message(), flush=True)
                return 1
            if isinstance(a, lt.listen_succeeded_alert):
                port = s.listen_port()
    if port is None:
        print('error no listen_succeeded_alert', flush=True)
        return 1
    handles = []
    for path in torrents:
        ti = lt.torrent_info(path)
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = save_path
        n = ti.num_pieces()
        atp.have_pieces = [True] * n
        atp.verified_pieces = [True] * n
        # started at once, never queued behind the session's other torrents
        atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        h = s.add_torrent(atp)
        if limit:
            h.set_upload_limit(limit)
        handles.append(h)
    print('listening %d' % port, flush=True)

    cmds = queue.Queue()

    def stdin_reader():
        for line in sys.stdin:
            cmds.put(line.split())
        cmds.put(None)

    threading.Thread(target=stdin_reader, daemon=True).start()
    announced = set()
    if announce:
        for h in handles:
            h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
    while True:
        s.wait_for_alert(100)
        for a in s.pop_alerts():
            if isinstance(a, lt.tracker_reply_alert):
                ih = str(a.handle.info_hash())
                if announce and ih not in announced:
                    announced.add(ih)
                    print('announced %s' % ih, flush=True)
            elif isinstance(a, (lt.tracker_error_alert, lt.torrent_error_alert,
                                lt.file_error_alert)):
                print('log %s' % a.message().replace('\n', ' '), flush=True)
        try:
            while True:
                c = cmds.get_nowait()
                if c is None:
                    return 0
                if c and c[0] == 'rate':
                    for h in handles:
                        h.set_upload_limit(int(c[1]))
                elif c and c[0] == 'reannounce':
                    for h in handles:
                        h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
                elif c and c[0] == 'connect':
                    host, _, port = c[1].rpartition(':')
                    for h in handles:
                        h.connect_peer((host, int(port)))
        except queue.Empty:
            pass


if __name__ == '__main__':
    if len(sys.argv) >= 2 and sys.argv[1] == 'lt-seed':
        try:
            sys.exit(_lt_seed_main(sys.argv[2:]))
        except BrokenPipeError:
            sys.exit(0)
    sys.exit('usage: swarm.py lt-seed IP SAVE_PATH UPLOAD_LIMIT ANNOUNCE TORRENT...')
