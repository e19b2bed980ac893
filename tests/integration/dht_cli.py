"""The DHT (issue 12) at the command line: options, environment, state file, PORT messages,
`peers --dht` and hostile datagrams.

1. Where the DHT goes: scripted "routers" (UDP sockets in this process on 127.0.62.x) see our
   first query arrive from the listen port (or --dht-port), at TORRENT_DHT_BOOTSTRAP's address,
   at --dht-bootstrap's instead when both are given, and never with --no-dht.
2. The state file, against a network of eight libtorrent DHT nodes (dhtnodes.LtDht) seeding
   trackerless torrents: after a run $XDG_STATE_HOME/torrent/dht.dat exists; a second run
   whose only --dht-bootstrap is dead rejoins from it and downloads (the control, the same run
   without the file, fails); a corrupt file and a missing state directory are no error.
3. PORT (BEP 5) and the DHT bit: our seed sets reserved bit 0x01 of byte 7 and sends PORT with
   its DHT port to a peer that set the bit, not to one that did not; a PORT from a peer makes
   our node query that peer's DHT port; `handshake` leaves the bit clear.
4. `peers --dht` lists the libtorrent seeder found through the DHT (--json: source "dht").
5. Hostile datagrams at our seed's UDP port: garbage, KRPC with fields of the wrong types,
   truncated messages, 64 KiB datagrams, floods of queries and announces from many
   addresses: it stays up, answers a ping, serves a download, and its RSS stays near flat.

Everything on 127.0.62.x, every process stopped by PID, every wait bounded.
Run as: /usr/bin/python3 dht_cli.py <path to torrent binary>
"""

import contextlib
import json
import os
import random
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import dhtnodes  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB  # noqa: E402
from upload_common import MiniPeer, Seed, magnet_uri, stop_on_sigterm, vmrss_kib  # noqa: E402

IPS = swarm.IpPool('127.0.62.', first=40)
W = None
SRC = None
NET = None
P = {}
ROOTS = {}
LT_SEEDS = {}
TIMEOUT = 60


def setUpModule():
    global W, SRC, NET
    stop_on_sigterm()
    W = tempfile.mkdtemp(prefix='dht-cli-')
    SRC = os.path.join(W, 'src')
    os.makedirs(SRC)
    try:
        for n, label in enumerate(('s1', 's2', 's3', 's4', 'peers', 'mine')):
            ROOTS[label] = swarm.make_single(SRC, 'cli-%s.bin' % label, 512 * KiB + n, 600 + n)
            P[label] = swarm.make_torrent(ROOTS[label], os.path.join(W, 'cli-%s.torrent' % label),
                                          32 * KiB)
        NET = dhtnodes.LtDht(['127.0.62.%d' % i for i in range(11, 19)], W)
        for i, label in enumerate(('s1', 's2', 's3', 's4', 'peers')):
            LT_SEEDS[label] = NET.seed(i, P[label], SRC)
        for i, label in enumerate(('s1', 's2', 's3', 's4', 'peers')):
            NET.wait_findable(7 - i, P[label].info_hash_hex, LT_SEEDS[label])
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if NET is not None:
        NET.stop()
    swarm.kill_all_children()
    if W and not os.environ.get('KEEP_TMP'):
        shutil.rmtree(W, ignore_errors=True)


@contextlib.contextmanager
def environ(**kv):
    """os.environ changed for the runs inside (every helper's child env starts from it)."""
    saved = {k: os.environ.get(k) for k in kv}
    os.environ.update({k: str(v) for k, v in kv.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class FakeNode:
    """A UDP socket on its own address that records every datagram (and its source) it gets;
    it answers nothing."""

    def __init__(self):
        self.ip = IPS.take()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.ip, 0))
        self.sock.settimeout(0.1)
        self.address = '%s:%d' % self.sock.getsockname()
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.done = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.done:
            try:
                data, src = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.got.append((data, src))

    def queries(self):
        out = []
        for data, src in list(self.got):
            try:
                m = btcommon.bdecode(data)
            except (ValueError, IndexError):
                continue
            if isinstance(m, dict) and m.get(b'y') == b'q':
                out.append((m, src))
        return out

    def close(self):
        self.done = True
        self.t.join(2)
        self.sock.close()


def magnet(label):
    return magnet_uri(P[label])  # no tr=, no x.pe=: the DHT is the only way to the seeder


def our_download(label, *extra, stall=20, timeout=TIMEOUT):
    ip = IPS.take()
    out = os.path.join(W, 'out-%s-%s.bin' % (label, ip))
    r = swarm.run_client('download', magnet(label), '-o', out, '--listen', ip,
                         '-p', swarm.free_port(ip, udp_too=True), '--stall-timeout', stall,
                         '--progress=json', *extra, timeout=timeout)
    return r, out


class Routing(unittest.TestCase):
    """Case 1: where the first DHT query goes, from which port."""

    def start(self, *extra):
        ip = IPS.take()
        port = swarm.free_port(ip, udp_too=True)
        c = swarm.Client('download', magnet('mine'), '-o', os.path.join(W, 'r-%s.bin' % ip),
                         '--listen', ip, '-p', port, '--stall-timeout', 4, *extra)
        return c, ip, port

    def test_env_default_and_listen_port(self):
        fake = FakeNode()
        try:
            with environ(TORRENT_DHT_BOOTSTRAP=fake.address):
                c, ip, port = self.start()
            try:
                swarm.wait_until(fake.queries, 10, what='a KRPC query at the env router')
            finally:
                c.close()
            self.assertEqual(fake.queries()[0][1], (ip, port))
        finally:
            fake.close()

    def test_option_replaces_env_and_dht_port(self):
        env_router, opt_router = FakeNode(), FakeNode()
        try:
            with environ(TORRENT_DHT_BOOTSTRAP=env_router.address):
                ip = IPS.take()
                dport = swarm.free_port(ip, udp_too=True)
                c = swarm.Client('download', magnet('mine'), '-o', os.path.join(W, 'o.bin'),
                                 '--listen', ip, '-p', swarm.free_port(ip, udp_too=True),
                                 '--stall-timeout', 4, '--dht-bootstrap', opt_router.address,
                                 '--dht-port', dport)
            try:
                swarm.wait_until(opt_router.queries, 10, what='a query at --dht-bootstrap')
                time.sleep(1)
            finally:
                c.close()
            self.assertEqual(opt_router.queries()[0][1], (ip, dport))
            self.assertEqual(env_router.got, [], 'the env router was used beside the option')
        finally:
            env_router.close()
            opt_router.close()

    def test_no_dht(self):
        fake = FakeNode()
        try:
            c, _, _ = self.start('--no-dht', '--dht-bootstrap', fake.address)
            r = c.wait(30)
            c.close()
            self.assertEqual(r.returncode, 1, r)  # no peer: the stall timeout
            self.assertEqual(fake.got, [], 'a datagram reached the router with --no-dht')
        finally:
            fake.close()


class StateFile(unittest.TestCase):
    """Case 2."""

    def state_dir(self):
        return tempfile.mkdtemp(prefix='state-', dir=W)

    def test_saved_and_rejoined_without_routers(self):
        state = self.state_dir()
        dead = '127.0.62.250:%d' % swarm.closed_port('127.0.62.250')
        with environ(XDG_STATE_HOME=state):
            r, out = our_download('s1', '--dht-bootstrap', NET.nodes[2])
            self.assertEqual(r.returncode, 0, r)
            dat = os.path.join(state, 'torrent', 'dht.dat')
            self.assertTrue(os.path.isfile(dat), 'no %s after a run' % dat)
            self.assertGreater(os.path.getsize(dat), 20)
            r, out = our_download('s2', '--dht-bootstrap', dead)
            self.assertEqual(r.returncode, 0, 'no rejoin from the saved nodes: %r' % r)
            self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(ROOTS['s2']))

    def test_control_dead_router_without_state(self):
        dead = '127.0.62.250:%d' % swarm.closed_port('127.0.62.250')
        with environ(XDG_STATE_HOME=self.state_dir()):
            r, _ = our_download('s2', '--dht-bootstrap', dead, stall=5)
        self.assertEqual(r.returncode, 1, r)

    def test_corrupt_file_ignored(self):
        for n, junk in enumerate([os.urandom(3000), b'd2:id20:' + b'x' * 5,
                                  b'd5:nodesi7e2:idi3ee', b'']):
            state = self.state_dir()
            os.makedirs(os.path.join(state, 'torrent'))
            dat = os.path.join(state, 'torrent', 'dht.dat')
            with open(dat, 'wb') as f:
                f.write(junk)
            with environ(XDG_STATE_HOME=state):
                r, out = our_download('s3', '--dht-bootstrap', NET.nodes[5])
            self.assertEqual(r.returncode, 0, 'junk %d: %r' % (n, r))
            self.assertNotIn('dht.dat', r.err, 'junk %d' % n)
            with open(dat, 'rb') as f:
                self.assertNotEqual(f.read(), junk, 'junk %d: the file was not rewritten' % n)

    def test_missing_state_dir(self):
        state = os.path.join(W, 'no', 'such', 'dir')
        with environ(XDG_STATE_HOME=state):
            r, out = our_download('s4', '--dht-bootstrap', NET.nodes[6])
        self.assertEqual(r.returncode, 0, r)
        self.assertNotIn('dht.dat', r.err)


class PortMessage(unittest.TestCase):
    """Case 3."""

    @classmethod
    def setUpClass(cls):
        cls.seed = Seed(P['mine'], ROOTS['mine'], IPS.take())

    @classmethod
    def tearDownClass(cls):
        cls.seed.stop()

    def connect(self, dht_bit, source_ip=None):
        p = MiniPeer(self.seed.ip, self.seed.port, P['mine'], source_ip or IPS.take())
        reserved = bytearray(8)
        reserved[5] = 0x10
        if dht_bit:
            reserved[7] = 0x01
        p.sock.sendall(b'\x13BitTorrent protocol' + bytes(reserved) + P['mine'].info_hash +
                       b'-MP0001-' + os.urandom(12))
        hs = p.recv_exact(68)
        return p, hs[20:28]

    def read_port(self, p, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                mid, payload = p.recv(max(0.05, end - time.monotonic()))
            except (socket.timeout, EOFError, OSError):
                return None
            if mid == 9:
                return payload
        return None

    def test_bit_and_port_sent(self):
        p, reserved = self.connect(True)
        try:
            self.assertTrue(reserved[7] & 0x01, 'no DHT bit in %r' % bytes(reserved))
            payload = self.read_port(p, 5)
            self.assertIsNotNone(payload, 'no PORT message')
            self.assertEqual(len(payload), 2)
            self.assertEqual(struct.unpack('>H', payload)[0], self.seed.port)
        finally:
            p.close()

    def test_no_port_without_bit(self):
        p, _ = self.connect(False)
        try:
            self.assertIsNone(self.read_port(p, 3), 'PORT sent to a peer without the bit')
        finally:
            p.close()

    def test_received_port_adds_node(self):
        fake = FakeNode()
        try:
            p, _ = self.connect(True, source_ip=fake.ip)
            try:
                p.send(9, struct.pack('>H', fake.port))
                swarm.wait_until(fake.queries, 15, what='a query at the PORT-announced node')
            finally:
                p.close()
        finally:
            fake.close()

    def test_handshake_command_has_no_dht_bit(self):
        srv = socket.socket()
        srv.bind((IPS.take(), 0))
        srv.listen(1)
        srv.settimeout(10)
        got = {}

        def serve():
            try:
                c, _ = srv.accept()
                c.settimeout(5)
                got['hs'] = swarm._recv_exact(c, 68)
                c.sendall(got['hs'][:48] + b'-XX0001-' + bytes(12))
                time.sleep(0.2)
                c.close()
            except OSError:
                pass
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        r = swarm.run_client('handshake', P['mine'].path, '%s:%d' % srv.getsockname(),
                             timeout=20)
        t.join(10)
        srv.close()
        self.assertIn('hs', got, r)
        self.assertEqual(got['hs'][27] & 0x01, 0, 'handshake sent the DHT bit')


class PeersDht(unittest.TestCase):
    """Case 4."""

    def test_peers_dht_json(self):
        r = swarm.run_client('peers', '--dht', '--dht-bootstrap', NET.nodes[1], '--json',
                             '--listen', IPS.take(), magnet('peers'), timeout=40)
        self.assertEqual(r.returncode, 0, r)
        obj = json.loads(r.out)
        # The merged list, and the DHT's own list (its source), each address once.
        self.assertIn(LT_SEEDS['peers'], obj['peers'], r.out)
        self.assertIn(LT_SEEDS['peers'], obj['dht']['peers'], r.out)
        self.assertEqual(len(obj['dht']['peers']), len(set(obj['dht']['peers'])), r.out)
        self.assertEqual(obj['trackers'], [], r.out)
        self.assertGreater(obj['dht']['nodes'], 0, r.out)

    def test_peers_dht_plain(self):
        r = swarm.run_client('peers', '--dht', '--dht-bootstrap', NET.nodes[3],
                             '--listen', IPS.take(), magnet('peers'), timeout=40)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn(LT_SEEDS['peers'], r.out.split())


def hostile_datagrams(rnd):
    """Malformed and abusive KRPC, one datagram at a time."""
    good_id = os.urandom(20)
    e = btcommon.bencode
    kinds = [
        lambda: rnd.randbytes(rnd.randint(0, 200)),
        lambda: b'd' + rnd.randbytes(rnd.randint(0, 100)),
        lambda: b'd1:ad2:id20:' + good_id + b'e1:q4:ping1:t2:aa1:y1:q',  # truncated
        lambda: e({b't': b'a', b'y': b'q', b'q': b'ping', b'a': {b'id': 5}}),
        lambda: e({b't': 7, b'y': b'q', b'q': b'find_node', b'a': {b'id': good_id,
                                                                     b'target': [1, 2]}}),
        lambda: e({b't': b'ab', b'y': b'q', b'q': b'get_peers',
                   b'a': {b'id': good_id, b'info_hash': b'short'}}),
        lambda: e({b't': b'ab', b'y': b'q', b'q': b'announce_peer',
                   b'a': {b'id': good_id, b'info_hash': os.urandom(20), b'port': -1,
                          b'token': {b'x': 1}}}),
        lambda: e({b't': b'zz', b'y': b'r', b'r': {b'id': good_id,
                                                   b'nodes': rnd.randbytes(26 * 8)}}),
        lambda: e({b't': b'zz', b'y': b'e', b'e': [201, 5]}),
        lambda: e({b'y': b'q', b'q': b'ping' * 1000, b'a': {b'id': good_id}}),
        lambda: b'd1:t2:aa1:y1:q1:q4:ping1:ad2:id20:' + good_id + b'e' + b'l' * 5000,
        lambda: b'd' + b'l' * 30000 + b'e' * 30000,
        lambda: b'd' + b'1:xi1e' * 10000 + b'e',
        lambda: e({b't': b'aa', b'y': b'q', b'q': b'ping',
                   b'a': {b'id': good_id, b'pad': b'p' * 65000}}),
    ]
    while True:
        yield rnd.choice(kinds)()


class Hostile(unittest.TestCase):
    """Case 5."""

    def test_flood(self):
        # Under AddressSanitizer freed memory waits in a quarantine (256 MiB by default), which
        # would read as growth: keep it small, so that RSS measures what the node holds.
        old = os.environ.get('ASAN_OPTIONS')
        os.environ['ASAN_OPTIONS'] = (old + ':' if old else '') + 'quarantine_size_mb=1'
        try:
            s = Seed(P['mine'], ROOTS['mine'], IPS.take())
        finally:
            if old is None:
                del os.environ['ASAN_OPTIONS']
            else:
                os.environ['ASAN_OPTIONS'] = old
        try:
            dhtnodes.wait_krpc(s.address, 20, s.alive)
            target = dhtnodes.addr(s.address)
            socks = []
            for _ in range(8):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.bind((IPS.take(), 0))
                u.setblocking(False)
                socks.append(u)
            rnd = random.Random(12)
            gen = hostile_datagrams(rnd)

            def blast(n):
                for i in range(n):
                    try:
                        socks[i % len(socks)].sendto(next(gen), target)
                    except (BlockingIOError, OSError):
                        time.sleep(0.001)
                    if i % 200 == 0:
                        time.sleep(0.005)  # let it read: a full socket buffer only drops

            def valid(n):
                # queries and announces with real tokens, many hashes, from many addresses
                for i in range(n):
                    src = IPS.take() if i % 50 == 0 and IPS.next < 240 else None
                    ih = os.urandom(20)
                    r = dhtnodes.krpc_query(s.address, b'get_peers', {b'info_hash': ih},
                                            source_ip=src or swarm.PROBE_IP, timeout=0.2)
                    if r and b'r' in r and b'token' in r[b'r']:
                        dhtnodes.krpc_query(s.address, b'announce_peer',
                                            {b'info_hash': ih, b'port': 1000 + i,
                                             b'token': r[b'r'][b'token']},
                                            source_ip=src or swarm.PROBE_IP, timeout=0.2)

            blast(2000)  # warm-up: the first allocations are not growth
            time.sleep(0.5)
            before = vmrss_kib(s.pid)
            blast(20000)
            valid(300)
            blast(20000)
            time.sleep(1)
            self.assertTrue(s.alive(), s.stderr()[-3000:])
            after = vmrss_kib(s.pid)
            for u in socks:
                u.close()
            self.assertIsNotNone(dhtnodes.wait_krpc(s.address, 10, s.alive))
            data = swarm.wait_until(lambda: _download_ok(s), 30, what='a download after')
            self.assertTrue(data)
            self.assertLess(after - before, 24 * 1024,
                            'RSS grew from %d to %d KiB under the flood' % (before, after))
        finally:
            r = s.stop()
        self.assertEqual(r.returncode, 0, r)


def _download_ok(seed):
    from upload_common import honest_download
    return honest_download(seed, P['mine'], IPS.take()) == open(ROOTS['mine'], 'rb').read()


if __name__ == '__main__':
    btcommon.main()
