"""DHT nodes on loopback for the DHT integration tests and bench/dht.sh (issue 12).

Real Mainline DHT implementations, each node on its own 127.0.x.y, started and stopped by PID:
- `LtDht`: one child process (`dhtnodes.py lt-dht`) holding N python3-libtorrent sessions, one
  per address, bootstrapped from each other (never from the internet: every session's
  `dht_bootstrap_nodes` names only loopback nodes). Any of its sessions can seed a torrent
  (announced into the DHT by libtorrent itself), open a magnet, or run a `get_peers` search.
- `LtDhtClient`: one fresh libtorrent session (`dhtnodes.py lt-get`) that opens a magnet knowing
  only a DHT node, and reports when it found its first peer, got the metadata and finished,
  in seconds from its own start.
- `NodeDht`: the npm package `bittorrent-dht` (tests/node_modules, from tests/package-lock.json
  via scripts/install-deps) in `dhtnode.mjs`: announce and lookup on command.
- `Aria2DhtMagnet`: aria2c opening a trackerless magnet with its DHT on loopback
  (`--dht-entry-point`), metadata only or the whole torrent.
- `krpc_query()`: a KRPC query written here (bencode from btcommon), to probe a node: the
  readiness check for our own node, and the test of the shape of its replies.

Everything listens on and talks to 127.0.0.0/8 only; no node is ever given a public router.
Every wait is bounded. Run as a script it is one of the child processes above.
"""

import os
import queue
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import btcommon  # noqa: E402
import swarm  # noqa: E402

NODE = '/usr/bin/node'
NODE_SCRIPT = os.path.join(HERE, 'dhtnode.mjs')
NODE_MODULES = os.path.normpath(os.path.join(HERE, '..', 'node_modules'))


def have_node_dht():
    """Whether `bittorrent-dht` is installed (scripts/install-deps runs `npm ci` in tests/)."""
    return os.access(NODE, os.X_OK) and os.path.isdir(os.path.join(NODE_MODULES,
                                                                   'bittorrent-dht'))


def addr(s):
    host, _, port = s.rpartition(':')
    return host.strip('[]'), int(port)


# --- a KRPC probe -----------------------------------------------------------------------------

def krpc_query(target, method, args, source_ip=swarm.PROBE_IP, timeout=2.0, tid=None,
               node_id=None):
    """Sends one KRPC query to target ('IP:PORT') from a fresh UDP socket on source_ip and
    returns the decoded reply (a dict with bytes keys), or None if none came in `timeout`
    seconds. Datagrams with another transaction id are skipped (they are not our reply)."""
    tid = tid or os.urandom(2)
    a = dict(args)
    a[b'id'] = node_id or os.urandom(20)
    msg = btcommon.bencode({b't': tid, b'y': b'q', b'q': method, b'a': a})
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((source_ip, 0))
        s.sendto(msg, addr(target))
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            s.settimeout(left)
            try:
                data, _ = s.recvfrom(65536)
            except socket.timeout:
                return None
            try:
                reply = btcommon.bdecode(data)
            except (ValueError, IndexError):
                continue
            if isinstance(reply, dict) and reply.get(b't') == tid:
                return reply
    finally:
        s.close()


def wait_krpc(target, timeout, alive=None):
    """Waits until target answers a ping; returns the reply."""
    def ok():
        if alive is not None and not alive():
            raise RuntimeError('the node at %s exited before answering a ping' % target)
        return krpc_query(target, b'ping', {}, timeout=0.3)
    return swarm.wait_until(ok, timeout, step=0.05, what='%s to answer a KRPC ping' % target)


def compact_nodes(blob):
    """A `nodes` string (26 bytes each) as [(id, 'IP:PORT')]."""
    out = []
    for i in range(0, len(blob) - len(blob) % 26, 26):
        e = blob[i:i + 26]
        out.append((e[:20], '%s:%d' % (socket.inet_ntoa(e[20:24]),
                                       int.from_bytes(e[24:26], 'big'))))
    return out


def compact_peer(b):
    return '%s:%d' % (socket.inet_ntoa(b[:4]), int.from_bytes(b[4:6], 'big'))


# --- a child process speaking lines -----------------------------------------------------------

class LineChild:
    """A child (swarm.Proc: own process group, stopped by PID) whose stdout lines are queued;
    commands go to its stdin. It exits when its stdin closes, so it never outlives the test."""

    def __init__(self, argv, log, cwd=None):
        self.proc = swarm.Proc(argv, log, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.proc.proc.stdout:
            self.lines.put(line.decode('utf-8', 'replace').split())
        self.lines.put(None)

    def alive(self):
        return self.proc.alive()

    def command(self, *words):
        self.proc.proc.stdin.write((' '.join(str(w) for w in words) + '\n').encode())
        self.proc.proc.stdin.flush()

    def expect(self, pred, timeout, what):
        """The first line (list of words) for which pred(words) is true, read within timeout
        seconds; lines read meanwhile are kept in self.seen."""
        for words in self.seen:
            if pred(words):
                self.seen.remove(words)
                return words
        end = time.monotonic() + timeout
        while True:
            try:
                words = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise TimeoutError('%s: no %s within %s s; log: %s' % (
                    self.proc.argv[1:3], what, timeout, self.proc.read_log()))
            if words is None:
                self.lines.put(None)
                raise RuntimeError('%s exited waiting for %s: %s' % (
                    self.proc.argv[1:3], what, self.proc.read_log()))
            if words and words[0] == 'error':
                raise RuntimeError('%s: %s' % (self.proc.argv[1:3], ' '.join(words)))
            if pred(words):
                return words
            self.seen.append(words)

    def stop(self):
        try:
            if self.proc.proc.stdin:
                self.proc.proc.stdin.close()
            self.proc.proc.wait(3)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.proc.stop()


# --- libtorrent DHT nodes ---------------------------------------------------------------------

class LtDht(LineChild):
    """N libtorrent sessions in one process, on ips[0], ips[1], ... (one each), every one a DHT
    node bootstrapped from its neighbours and from `bootstrap` ('IP:PORT' list, e.g. another
    LtDht's nodes or our node). `nodes` are their 'IP:PORT' DHT addresses (the UDP socket of
    each session's listen port). Ready once every session saw its dht_bootstrap_alert."""

    def __init__(self, ips, workdir, bootstrap=(), timeout=60, name='lt-dht'):
        self.ips = list(ips)
        argv = [swarm.PYTHON, os.path.abspath(__file__), 'lt-dht', ','.join(self.ips),
                ','.join(bootstrap) or '-']
        super().__init__(argv, os.path.join(workdir, '%s-%s.log' % (name, self.ips[0])),
                         cwd=workdir)
        try:
            self.nodes = [None] * len(self.ips)
            for _ in self.ips:
                w = self.expect(lambda w: w[0] == 'node', timeout, 'node lines')
                self.nodes[int(w[1])] = w[2]
            self.expect(lambda w: w[0] == 'ready', timeout, 'ready')
        except BaseException:
            self.stop()
            raise

    def seed(self, idx, meta, save_path, timeout=20):
        """Session idx seeds meta (every piece had and verified) and announces it into the
        DHT. Returns its 'IP:PORT' (the BitTorrent listen address)."""
        self.command('seed', idx, meta.path, save_path)
        w = self.expect(lambda w: w[0] == 'seeding' and w[1] == meta.info_hash_hex, timeout,
                        'seeding %s' % meta.name)
        return w[2]

    def get_peers(self, idx, info_hash_hex, timeout=3):
        """A DHT get_peers search from session idx; returns the peers found ('IP:PORT'), or []
        if none came within `timeout` s (libtorrent posts its reply alert only for replies that
        carry peers)."""
        self.command('getpeers', idx, info_hash_hex)
        try:
            w = self.expect(lambda w: w[0] == 'peers' and w[1] == info_hash_hex, timeout,
                            'get_peers reply for %s' % info_hash_hex)
        except TimeoutError:
            return []
        return w[2:]

    def wait_findable(self, idx, info_hash_hex, peer, timeout=30):
        """Searches from session idx until `peer` ('IP:PORT', or an IP) is among the DHT's
        peers for the hash (an announce has landed). Returns the peers."""
        end = time.monotonic() + timeout
        found = []
        while time.monotonic() < end:
            found = self.get_peers(idx, info_hash_hex)
            if any(p == peer or p.rpartition(':')[0] == peer for p in found):
                return found
            time.sleep(0.5)
        raise TimeoutError('%s not found in the DHT for %s within %s s (found %r)' % (
            peer, info_hash_hex, timeout, found))

    def get(self, idx, uri, save_path):
        """Session idx opens a magnet (no tracker unless the magnet names one)."""
        self.command('get', idx, uri, save_path)

    def wait_event(self, event, info_hash_hex, timeout):
        """'metadata' or 'done' for a magnet opened with get(); returns the seconds it took."""
        w = self.expect(lambda w: w[0] == event and w[1] == info_hash_hex, timeout,
                        '%s for %s' % (event, info_hash_hex))
        return float(w[2])

    def add_node(self, idx, node):
        self.command('addnode', idx, node)


class LtDhtClient(LineChild):
    """A fresh libtorrent session on ip that knows only `bootstrap` (DHT nodes) and opens
    `uri`. Its lines: 'first_peer S', 'metadata S', 'done S' (seconds since its start)."""

    def __init__(self, ip, uri, save_path, bootstrap, workdir, metadata_only=False):
        argv = [swarm.PYTHON, os.path.abspath(__file__), 'lt-get', ip, ','.join(bootstrap),
                uri, save_path, '1' if metadata_only else '0']
        super().__init__(argv, os.path.join(workdir, 'lt-get-%s.log' % ip), cwd=workdir)

    def wait_event(self, event, timeout):
        return float(self.expect(lambda w: w[0] == event, timeout, event)[1])


# --- bittorrent-dht (npm) ---------------------------------------------------------------------

class NodeDht(LineChild):
    """A bittorrent-dht node on ip (port chosen by the kernel) bootstrapped from `bootstrap`.
    announce() and lookup() drive it; `node` is its 'IP:PORT'."""

    def __init__(self, ip, workdir, bootstrap=(), timeout=20):
        if not have_node_dht():
            raise RuntimeError('bittorrent-dht is not installed (run scripts/install-deps)')
        argv = [NODE, NODE_SCRIPT, ip, ','.join(bootstrap) or '-']
        super().__init__(argv, os.path.join(workdir, 'node-dht-%s.log' % ip), cwd=workdir)
        try:
            self.node = self.expect(lambda w: w[0] == 'listening', timeout, 'listening')[1]
            self.expect(lambda w: w[0] == 'ready', timeout, 'ready')
        except BaseException:
            self.stop()
            raise

    def announce(self, info_hash_hex, port, timeout=20):
        self.command('announce', info_hash_hex, port)
        w = self.expect(lambda w: w[0] == 'announced' and w[1] == info_hash_hex, timeout,
                        'announced %s' % info_hash_hex)
        if w[2] != 'ok':
            raise RuntimeError('bittorrent-dht announce failed: %s' % ' '.join(w[2:]))

    def lookup(self, info_hash_hex, timeout=20):
        """A lookup; returns the set of peers ('IP:PORT') bittorrent-dht found."""
        self.command('lookup', info_hash_hex)
        w = self.expect(lambda w: w[0] == 'found' and w[1] == info_hash_hex, timeout,
                        'lookup of %s' % info_hash_hex)
        return set(w[2:])

    def table(self, timeout=5):
        """The 'IP:PORT' of every node in its routing table."""
        self.command('nodes')
        return set(self.expect(lambda w: w[0] == 'nodes', timeout, 'nodes')[1:])


# --- aria2c -----------------------------------------------------------------------------------

class Aria2DhtMagnet:
    """aria2c on ip opening a magnet through its DHT only (entry point `entry`, 'IP:PORT'):
    metadata_only saves outdir/<hash>.torrent and exits; else the whole torrent."""

    def __init__(self, ip, uri, outdir, entry, workdir, metadata_only=True, self_stop=300):
        self.ip = ip
        self.port = swarm.free_port(ip, udp_too=True)
        self.dht_port = swarm.free_port(ip, udp_too=True)
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)
        host, port = addr(entry)
        self.log_path = outdir + '.aria2-debug.log'
        argv = [swarm.ARIA2C, '--no-conf', '--seed-time=0', '--enable-dht=true',
                '--enable-dht6=false', '--dht-listen-addr=%s' % ip,
                '--dht-listen-port=%d' % self.dht_port, '--dht-entry-point=%s:%d' % (host, port),
                '--dht-file-path=%s' % os.path.join(outdir + '.dht.dat'),
                '--bt-external-ip=%s' % ip, '--bt-enable-lpd=false',
                '--enable-peer-exchange=false', '--disable-ipv6=true', '--interface=%s' % ip,
                '--listen-port=%d' % self.port, '--dir=%s' % outdir, '--file-allocation=none',
                '--bt-min-crypto-level=plain', '--bt-require-crypto=false',
                '--summary-interval=0', '--console-log-level=warn', '--auto-save-interval=0',
                '--allow-overwrite=true', '--show-console-readout=false',
                '--bt-save-metadata=true', '--log=%s' % self.log_path, '--log-level=info',
                '--stop=%d' % self_stop]
        if metadata_only:
            argv.append('--bt-metadata-only=true')
        argv.append(uri)
        self.started = time.monotonic()
        self.proc = swarm.Proc(argv, outdir + '.aria2.log', cwd=workdir)

    @property
    def dht_node(self):
        return '%s:%d' % (self.ip, self.dht_port)

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
        return time.monotonic() - self.started

    def stop(self):
        self.proc.stop()


# --- the child processes ----------------------------------------------------------------------

def _lt_settings(ip, bootstrap):
    import libtorrent as lt
    cat = lt.alert.category_t
    return {
        'listen_interfaces': '%s:0' % ip, 'outgoing_interfaces': ip,
        'enable_dht': True, 'dht_bootstrap_nodes': bootstrap,
        'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
        # all of 127.0.0.0/8 is one network to libtorrent's DHT: without these it keeps one
        # node per /24 and searches through one node per /24
        'dht_restrict_routing_ips': False, 'dht_restrict_search_ips': False,
        'dht_prefer_verified_node_ids': False, 'dht_ignore_dark_internet': False,
        'dht_block_ratelimit': 10000, 'dht_upload_rate_limit': 1 << 20,
        'allow_multiple_connections_per_ip': True,
        'enable_incoming_utp': False, 'enable_outgoing_utp': False,
        'enable_incoming_tcp': True, 'enable_outgoing_tcp': True,
        'active_seeds': -1, 'active_limit': -1, 'active_downloads': -1,
        'alert_mask': (cat.status_notification | cat.error_notification | cat.dht_notification |
                       cat.dht_operation_notification | cat.connect_notification |
                       cat.storage_notification),
    }


def _wait_listen(lt, s, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s.wait_for_alert(100)
        for a in s.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                raise RuntimeError('listen failed: %s' % a.message())
            if isinstance(a, lt.listen_succeeded_alert):
                return s.listen_port()
    raise RuntimeError('no listen_succeeded_alert')


def _stdin_commands():
    cmds = queue.Queue()

    def reader():
        for line in sys.stdin:
            cmds.put(line.split())
        cmds.put(None)
    threading.Thread(target=reader, daemon=True).start()
    return cmds


def _add_magnet(lt, s, uri, save_path):
    atp = lt.parse_magnet_uri(uri)
    atp.save_path = save_path
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return s.add_torrent(atp)


def _lt_dht_main(argv):
    """dhtnodes.py lt-dht IP,IP,... BOOTSTRAP|-   (see LtDht)"""
    import libtorrent as lt
    ips = argv[0].split(',')
    extra = [] if argv[1] == '-' else argv[1].split(',')
    t0 = time.monotonic()
    sessions = []
    for ip in ips:
        st = _lt_settings(ip, '')
        st['enable_dht'] = False  # on once every port is known, to name them as routers
        sessions.append(lt.session(st))
    nodes = ['%s:%d' % (ip, _wait_listen(lt, s)) for ip, s in zip(ips, sessions)]
    for i, n in enumerate(nodes):
        print('node %d %s' % (i, n), flush=True)
    # One node after the other, each bootstrapped from nodes already running: a query sent to a
    # session whose DHT is not running yet is dropped, and libtorrent then waits out its 15 s
    # timeout before it calls the bootstrap done. Each starts from a few earlier nodes (a chain
    # and a hub, plus `extra`), so the tables fill by lookups and incoming queries, the way
    # they do on the real DHT, not by being told every node.
    booted = set()
    for i, s in enumerate(sessions):
        routers = sorted({nodes[0], nodes[max(0, i - 1)], nodes[max(0, i - 2)]} - {nodes[i]})
        s.apply_settings({'dht_bootstrap_nodes': ','.join(routers + extra)})
        s.apply_settings({'enable_dht': True})
        end = time.monotonic() + 20
        while i not in booted and time.monotonic() < end:
            s.wait_for_alert(50)
            if any(isinstance(a, lt.dht_bootstrap_alert) for a in s.pop_alerts()):
                booted.add(i)
    print('ready %d %.2f' % (len(booted), time.monotonic() - t0), flush=True)

    cmds = _stdin_commands()
    handles = {}  # info hash hex -> (session index, handle, start, events printed)
    while True:
        for i, s in enumerate(sessions):
            for a in s.pop_alerts():
                if isinstance(a, lt.dht_get_peers_reply_alert):
                    peers = ['%s:%d' % p for p in a.peers()]
                    print('peers %s %s' % (a.info_hash, ' '.join(peers)), flush=True)
                elif isinstance(a, lt.metadata_received_alert):
                    ih = str(a.handle.info_hash())
                    if ih in handles:
                        print('metadata %s %.3f' % (ih, time.monotonic() - handles[ih][2]),
                              flush=True)
                elif isinstance(a, lt.torrent_finished_alert):
                    ih = str(a.handle.info_hash())
                    if ih in handles and 'done' not in handles[ih][3]:
                        handles[ih][3].add('done')
                        a.handle.flush_cache()
                        print('done %s %.3f' % (ih, time.monotonic() - handles[ih][2]),
                              flush=True)
        try:
            c = cmds.get(timeout=0.02)
        except queue.Empty:
            continue
        if c is None:
            return 0
        if not c:
            continue
        if c[0] == 'seed':
            idx, path, save = int(c[1]), c[2], c[3]
            ti = lt.torrent_info(path)
            atp = lt.add_torrent_params()
            atp.ti = ti
            atp.save_path = save
            atp.have_pieces = [True] * ti.num_pieces()
            atp.verified_pieces = [True] * ti.num_pieces()
            atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
            h = sessions[idx].add_torrent(atp)
            h.force_dht_announce()
            ih = str(ti.info_hashes().v1)
            handles[ih] = (idx, h, time.monotonic(), {'done'})
            print('seeding %s %s:%d' % (ih, ips[idx], sessions[idx].listen_port()), flush=True)
        elif c[0] == 'get':
            idx, uri, save = int(c[1]), c[2], c[3]
            h = _add_magnet(lt, sessions[idx], uri, save)
            ih = str(h.info_hash())
            handles[ih] = (idx, h, time.monotonic(), set())
        elif c[0] == 'getpeers':
            sessions[int(c[1])].dht_get_peers(lt.sha1_hash(bytes.fromhex(c[2])))
        elif c[0] == 'addnode':
            host, _, port = c[2].rpartition(':')
            sessions[int(c[1])].add_dht_node((host, int(port)))
        elif c[0] == 'reannounce':
            for _, h, _, _ in handles.values():
                h.force_dht_announce()


def _lt_get_main(argv):
    """dhtnodes.py lt-get IP BOOTSTRAP MAGNET SAVE_PATH METADATA_ONLY   (see LtDhtClient)"""
    import libtorrent as lt
    t0 = time.monotonic()
    ip, bootstrap, uri, save, metadata_only = argv[0], argv[1], argv[2], argv[3], argv[4] == '1'
    s = lt.session(_lt_settings(ip, bootstrap))
    cmds = _stdin_commands()
    h = None
    first_peer = False
    end = t0 + 600
    # The magnet is added once the DHT has bootstrapped: added earlier, libtorrent 2.0.8's
    # first search sometimes never starts (REAL-PEERS.md); the wait counts in its times.
    while time.monotonic() < end:
        s.wait_for_alert(10)
        for a in s.pop_alerts():
            if isinstance(a, lt.dht_bootstrap_alert) and h is None:
                h = _add_magnet(lt, s, uri, save)
                print('added %.3f' % (time.monotonic() - t0), flush=True)
            elif isinstance(a, (lt.peer_connect_alert, lt.dht_reply_alert)) and not first_peer:
                if isinstance(a, lt.dht_reply_alert) and a.num_peers == 0:
                    continue
                first_peer = True
                print('first_peer %.3f' % (time.monotonic() - t0), flush=True)
            elif isinstance(a, lt.metadata_received_alert):
                print('metadata %.3f' % (time.monotonic() - t0), flush=True)
                if metadata_only:
                    return 0
            elif isinstance(a, lt.torrent_finished_alert):
                a.handle.flush_cache()
                print('done %.3f' % (time.monotonic() - t0), flush=True)
        try:
            if cmds.get_nowait() is None:
                return 0
        except queue.Empty:
            pass
    return 1


if __name__ == '__main__':
    modes = {'lt-dht': _lt_dht_main, 'lt-get': _lt_get_main}
    if len(sys.argv) >= 2 and sys.argv[1] in modes:
        try:
            sys.exit(modes[sys.argv[1]](sys.argv[2:]))
        except BrokenPipeError:
            sys.exit(0)
        except Exception as e:  # noqa: BLE001
            print('error %s' % str(e).replace('\n', ' '), flush=True)
            raise
    sys.exit('usage: dhtnodes.py lt-dht IPS BOOTSTRAP | lt-get IP BOOTSTRAP MAGNET SAVE 0|1')
