"""The DHT (BEP 5, issue 12) against three real implementations on loopback.

The network: ten python3-libtorrent sessions (dhtnodes.LtDht, one process, each on its own
127.0.61.x, bootstrapped from each other). Our binary is told one of them with --dht-bootstrap;
btcommon sets TORRENT_DHT_BOOTSTRAP=none, so no run here can reach a public router.
1. `download` of a trackerless magnet (no tr=, no x.pe=, no --peer) that a libtorrent session
   of the network seeds and announced: found through the DHT alone, byte-identical; its
   --progress=json lines count DHT nodes and peers.
2. a libtorrent client that knows only a node of the network finds our `seed` through our DHT
   announce (no tracker anywhere) and downloads the whole torrent from it.
3. our node answering other implementations: aria2c whose only DHT entry point is our seed
   opens a trackerless magnet seeded by libtorrent; bittorrent-dht (npm) announcing to and
   looking up through a network that is our node alone; a KRPC probe written here (ping,
   find_node, get_peers, announce_peer with a good and a bad token).

Every case has a control beside it: the same setup with a libtorrent node in place of ours, so
a failure of ours can be told from a broken harness (the controls pass whatever the binary
does). Every payload has its own info hash. Every process is stopped by PID.

Run as: /usr/bin/python3 dht_interop.py <path to torrent binary>
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import dhtnodes  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402
from upload_common import Seed, magnet_uri, stop_on_sigterm  # noqa: E402

IPS = swarm.IpPool('127.0.61.', first=50)
NET_IPS = ['127.0.61.%d' % i for i in range(11, 21)]
TIMEOUT = 120  # per download through the DHT (a few seconds when it works; a loaded
# machine running the sanitizer build needs more)
W = None
SRC = None
NET = None
P = {}  # label -> Meta
ROOTS = {}  # label -> the payload's path
LT_SEEDS = {}  # label -> 'IP:PORT' of the libtorrent session seeding it


def setUpModule():
    global W, SRC, NET
    stop_on_sigterm()
    W = tempfile.mkdtemp(prefix='dht-interop-')
    SRC = os.path.join(W, 'src')
    os.makedirs(SRC)
    try:
        for n, (label, size) in enumerate([('lt', 2 * MiB + 11), ('lt-ctl', 1 * MiB + 3),
                                           ('ours', 3 * MiB + 1), ('a2', 300 * KiB + 9),
                                           ('nd', 200 * KiB + 1)]):
            ROOTS[label] = swarm.make_single(SRC, 'dht-%s.bin' % label, size, 400 + n)
            P[label] = swarm.make_torrent(ROOTS[label], os.path.join(W, 'dht-%s.torrent' % label),
                                          64 * KiB)
        NET = dhtnodes.LtDht(NET_IPS, W)
        for i, label in enumerate(('lt', 'lt-ctl', 'a2', 'nd')):
            LT_SEEDS[label] = NET.seed(i, P[label], SRC)
        for i, label in enumerate(('lt', 'lt-ctl', 'a2', 'nd')):
            NET.wait_findable(9 - i, P[label].info_hash_hex, LT_SEEDS[label])
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if NET is not None:
        NET.stop()
    swarm.kill_all_children()
    if W and not os.environ.get('KEEP_TMP'):
        shutil.rmtree(W, ignore_errors=True)


def same_file(test, label, path):
    test.assertTrue(os.path.isfile(path), '%s: no %s' % (label, path))
    test.assertEqual(os.path.getsize(path), os.path.getsize(ROOTS[label]), label)
    test.assertEqual(swarm.sha1_file(path), swarm.sha1_file(ROOTS[label]), label)


def lt_client_download(test, label, bootstrap):
    """A fresh libtorrent session knowing only `bootstrap` opens label's trackerless magnet
    and downloads it; the file is compared with the source."""
    out = tempfile.mkdtemp(prefix='lt-%s-' % label, dir=W)
    c = dhtnodes.LtDhtClient(IPS.take(), magnet_uri(P[label]), out, bootstrap, W)
    try:
        c.wait_event('metadata', TIMEOUT)
        c.wait_event('done', TIMEOUT)
    finally:
        c.stop()
    same_file(test, label, os.path.join(out, P[label].name))


def our_seed(label, bootstrap):
    """Our `seed` of label on its own address, no tracker, DHT bootstrapped from `bootstrap`
    (nothing given: no router at all). Ready once its node answers a KRPC ping on the listen
    port (the default --dht-port)."""
    ip = IPS.take()
    extra = []
    for b in bootstrap:
        extra += ['--dht-bootstrap', b]
    s = Seed(P[label], ROOTS[label], ip, extra=extra)
    try:
        dhtnodes.wait_krpc(s.address, 20, s.alive)
    except BaseException:
        s.stop()
        raise
    return s


class OurDownload(unittest.TestCase):
    """Case 1: our download of a trackerless magnet found through the DHT."""

    def test_control_libtorrent_client(self):
        lt_client_download(self, 'lt-ctl', [NET.nodes[3]])

    def test_trackerless_magnet_from_libtorrent(self):
        ip = IPS.take()
        out = os.path.join(W, 'ours-lt.bin')
        r = swarm.run_client('download', magnet_uri(P['lt']), '-o', out, '--listen', ip,
                             '-p', swarm.free_port(ip, udp_too=True),
                             '--dht-bootstrap', NET.nodes[3], '--stall-timeout', 30,
                             '--progress=json', timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        same_file(self, 'lt', out)
        lines = r.json_lines()
        self.assertTrue(any(o.get('dht_nodes', 0) >= 1 for o in lines),
                        'no progress line counts a DHT node: %r' % lines[-3:])
        self.assertTrue(any(o.get('dht_peers', 0) >= 1 for o in lines),
                        'no progress line counts a DHT peer: %r' % lines[-3:])


class LtFindsOurSeed(unittest.TestCase):
    """Case 2: a libtorrent downloader finds our seed through our DHT announce."""

    def test_libtorrent_downloads_from_our_seed(self):
        s = our_seed('ours', [NET.nodes[2]])
        try:
            # our announce landed: a search from another node of the network finds our seed
            NET.wait_findable(6, P['ours'].info_hash_hex, s.address, timeout=90)
            lt_client_download(self, 'ours', [NET.nodes[7]])
            self.assertTrue(s.alive(), s.stderr())
        finally:
            r = s.stop()
        self.assertEqual(r.returncode, 0, r)


class Aria2ThroughOurNode(unittest.TestCase):
    """Case 3, aria2c: its only DHT entry point is our node (a seed of another torrent in
    the network); it opens a magnet that a libtorrent session seeds."""

    def aria2_metadata(self, entry):
        out = tempfile.mkdtemp(prefix='a2-', dir=W)
        a = dhtnodes.Aria2DhtMagnet(IPS.take(), magnet_uri(P['a2']), out, entry, W)
        try:
            a.wait(TIMEOUT)
        finally:
            a.stop()
        saved = a.saved_torrent(P['a2'].info_hash_hex)
        self.assertTrue(os.path.isfile(saved), 'aria2c saved no %s' % saved)
        self.assertEqual(swarm.Meta(saved).info_hash_hex, P['a2'].info_hash_hex)

    def test_control_entry_libtorrent(self):
        self.aria2_metadata(NET.nodes[5])

    def test_entry_our_node(self):
        s = our_seed('ours', [NET.nodes[1]])
        try:
            self.aria2_metadata(s.address)
            self.assertTrue(s.alive(), s.stderr())
        finally:
            s.stop()


class NodeDhtThroughOurNode(unittest.TestCase):
    """Case 3, bittorrent-dht: a network of one node (ours, or libtorrent's as the control),
    one bittorrent-dht node announcing a hash to it and another looking the hash up: the peer
    can only come from the one node's store (bittorrent-dht keeps no announce of its own)."""

    def setUp(self):
        if not dhtnodes.have_node_dht():
            self.fail('bittorrent-dht is not installed: run scripts/install-deps')

    def announce_and_lookup(self, node):
        ih = os.urandom(20).hex()
        a = dhtnodes.NodeDht(IPS.take(), W, [node])
        try:
            a.announce(ih, 4321)
            b = dhtnodes.NodeDht(IPS.take(), W, [node])
            try:
                self.assertIn('%s:4321' % a.node.rpartition(':')[0], b.lookup(ih))
                self.assertIn(node, b.table())
            finally:
                b.stop()
        finally:
            a.stop()

    def test_control_libtorrent_node(self):
        one = dhtnodes.LtDht([IPS.take()], W, name='lt-one')
        try:
            self.announce_and_lookup(one.nodes[0])
        finally:
            one.stop()

    def test_our_node(self):
        s = our_seed('nd', [])
        try:
            self.announce_and_lookup(s.address)
            self.assertTrue(s.alive(), s.stderr())
        finally:
            s.stop()

    def test_lookup_through_our_node_finds_libtorrent_seed(self):
        s = our_seed('ours', [NET.nodes[4]])
        try:
            c = dhtnodes.NodeDht(IPS.take(), W, [s.address])
            try:
                found = set()
                for _ in range(5):  # our node may still be filling its table
                    found = c.lookup(P['nd'].info_hash_hex)
                    if LT_SEEDS['nd'] in found:
                        break
                self.assertIn(LT_SEEDS['nd'], found)
            finally:
                c.stop()
        finally:
            s.stop()


class KrpcProbe(unittest.TestCase):
    """Case 3, the shape of our replies, checked by a KRPC client written here; the same
    probe against a libtorrent node is the control."""

    def probe(self, node):
        q = dhtnodes.krpc_query
        r = q(node, b'ping', {})
        self.assertIsNotNone(r, 'no reply to ping')
        self.assertEqual(r.get(b'y'), b'r', r)
        self.assertEqual(len(r[b'r'][b'id']), 20, r)
        r = q(node, b'find_node', {b'target': os.urandom(20)})
        self.assertEqual(r and r.get(b'y'), b'r', r)
        self.assertEqual(len(r[b'r'].get(b'nodes', b'')) % 26, 0, r)
        ih = os.urandom(20)
        r = q(node, b'get_peers', {b'info_hash': ih})
        self.assertEqual(r and r.get(b'y'), b'r', r)
        token = r[b'r'][b'token']
        self.assertIsInstance(token, bytes)
        r = q(node, b'announce_peer', {b'info_hash': ih, b'port': 5555,
                                       b'token': token + b'x'})
        self.assertEqual(r and r.get(b'y'), b'e', 'a bad token was accepted: %r' % r)
        self.assertEqual(r[b'e'][0], 203, r)
        r = q(node, b'announce_peer', {b'info_hash': ih, b'port': 5555, b'token': token})
        self.assertEqual(r and r.get(b'y'), b'r', r)
        r = q(node, b'get_peers', {b'info_hash': ih})
        values = [dhtnodes.compact_peer(v) for v in r[b'r'].get(b'values', [])]
        self.assertIn('%s:5555' % swarm.PROBE_IP, values, r)
        # an unknown method carrying a target is answered like find_node (BEP 5)
        r = q(node, b'vote_for_me', {b'target': os.urandom(20)})
        self.assertIsNotNone(r, 'no reply to an unknown method with a target')

    def test_control_libtorrent_node(self):
        self.probe(NET.nodes[8])

    def test_our_node(self):
        s = our_seed('ours', [NET.nodes[0]])
        try:
            self.probe(s.address)
        finally:
            s.stop()


if __name__ == '__main__':
    btcommon.main()
