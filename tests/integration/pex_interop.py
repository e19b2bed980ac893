"""Peer exchange (BEP 11, ut_pex) with real and scripted peers, all on 127.0.0.0/8.

- Learning peers: a libtorrent downloader (the hub) is connected to three libtorrent seeders;
  our client is given only the hub (--peer). The hub's PEX names the seeders, and our client
  must download from every one of them (per-peer bytes of the --progress=json summary).
- Teaching peers: our client downloads (slowly, --max-down) from one libtorrent seeder while a
  libtorrent downloader that knows only our client connects to it: the downloader must get the
  seeder's address from our PEX (libtorrent's peer_info source flag `pex`).
- Scripted peers (fakepeer.py) with the ut_pex extension: on a public torrent our extended
  handshake offers ut_pex, we send one a PEX naming the other, and an address one of them sends
  us is dialled; on a private torrent (BEP 27) we offer none, send none, and dial nothing from
  theirs; a peer sending PEX twice within a minute is disconnected.

Run as: /usr/bin/python3 pex_interop.py <path to torrent binary>
"""

import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import fakepeer as fp  # noqa: E402
import swarm  # noqa: E402
import upload_common as uc  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402

UT_PEX_FAKE = 7  # the fake peers' id for ut_pex: what our client must use when it sends them one


def compact(host, port):
    return socket.inet_aton(host) + port.to_bytes(2, 'big')


def uncompact(b):
    return ['%s:%d' % (socket.inet_ntoa(b[i:i + 4]), int.from_bytes(b[i + 4:i + 6], 'big'))
            for i in range(0, len(b), 6)]


class Bait:
    """A listening socket at an address only a PEX message names: records who connects."""

    def __init__(self, host):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.hits = 0
        self.stopping = False
        self.th = threading.Thread(target=self._loop, daemon=True)
        self.th.start()

    def _loop(self):
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.hits += 1
            s.close()

    def stop(self):
        self.stopping = True
        self.th.join(5)
        self.sock.close()


class PexConn(fp.Conn):
    """An honest seeder that speaks BEP 10 with ut_pex: records our extended handshake and every
    PEX message we send; sends one PEX naming peer.opts['bait'] once our handshake came (twice,
    a second apart, with spam=True)."""

    def __init__(self, *a):
        super().__init__(*a)
        self.client_ext = None
        self.pex_in = []
        self.pex_sent = 0
        self.t_ext = None

    def handshake_reserved(self):
        return fp.EXT_RESERVED

    def after_handshake(self):
        super().after_handshake()
        self.send(fp.ext_msg(0, fp.bencode({'m': {'ut_pex': UT_PEX_FAKE}, 'p': self.peer.port})))

    def on_extended(self, ext_id, payload):
        if ext_id == 0:
            self.client_ext = btcommon.bdecode(payload)
            self.t_ext = time.monotonic()
        elif ext_id == UT_PEX_FAKE:
            self.pex_in.append(btcommon.bdecode(payload))

    def on_tick(self):
        if self.t_ext is None:
            return
        want = 2 if self.peer.opts.get('spam') else 1
        if self.pex_sent < want and time.monotonic() - self.t_ext > 0.5 + self.pex_sent:
            bait = self.peer.opts['bait']
            # Our id for ut_pex as the client offered it; on a private torrent it offers none,
            # and the id it would use (2) must be ignored.
            ext_id = self.client_ext[b'm'].get(b'ut_pex', 2)
            self.send(fp.ext_msg(ext_id, fp.bencode({'added': compact(bait.host, bait.port),
                                                'added.f': b'\x10', 'dropped': b''})))
            self.pex_sent += 1


def private_copy(fx, directory):
    """The fake torrent made private (BEP 27): new info dict, info hash and .torrent file."""
    fx.info = dict(fx.info, private=1)
    fx.info_bytes = fp.bencode(fx.info)
    import hashlib
    fx.info_hash = hashlib.sha1(fx.info_bytes).digest()
    fx.path = os.path.join(directory, 'private.torrent')
    with open(fx.path, 'wb') as f:
        f.write(fp.bencode({'announce': 'http://127.0.0.1:9/announce', 'info': fx.info}))
    return fx


class Scripted(btcommon.CliTestCase):

    def setUp(self):
        self.w = tempfile.mkdtemp(prefix='pex-scripted-')
        self.addCleanup(shutil.rmtree, self.w, True)

    def swarm_of_two(self, fx, host_base, spam=False):
        bait = Bait(host_base + '9')
        self.addCleanup(bait.stop)
        peers = []
        for i, h in enumerate(('1', '2')):
            p = fp.FakePeer(fx, host_base + h, conn_class=PexConn, rate=256 * KiB, bait=bait,
                            spam=spam and i == 0).start()
            self.addCleanup(p.stop)
            peers.append(p)
        return bait, peers

    def download(self, fx, peers):
        out = os.path.join(self.w, 'out.bin')
        args = ['download', '--no-tracker', '-v', '-o', out, '--progress=json']
        for p in peers:
            args += ['--peer', p.address]
        r = run_client(*args, fx.path, timeout=60)
        for p in peers:
            p.settle()
        return r, out

    def test_public_torrent_exchanges_peers(self):
        fx = fp.Torrent(self.w, 3 * MiB, seed=21)
        bait, (a, b) = self.swarm_of_two(fx, '127.0.41.')
        r, out = self.download(fx, [a, b])
        self.assertEqual(r.returncode, 0, r)
        with open(out, 'rb') as f:
            self.assertEqual(f.read(), fx.data)
        conns = a.handshaken() + b.handshaken()
        self.assertTrue(conns)
        for c in conns:
            self.assertIsNotNone(c.client_ext, 'no extended handshake from us')
            self.assertEqual(c.client_ext[b'm'].get(b'ut_pex'), 2, c.client_ext)
        # The newer connection was told about the older one, at its listen port, as reachable;
        # the older one hears of the newer only once it is a minute old (this run is shorter),
        # so that the two do not dial each other at the same moment.
        told = {c.peer.address: sum((uncompact(m.get(b'added', b'')) for m in c.pex_in), [])
                for c in conns}
        self.assertEqual(sorted([b.address in told[a.address], a.address in told[b.address]]),
                         [False, True], told)
        for c in conns:
            self.assertNotIn(c.peer.address, told[c.peer.address], 'told about itself')
            self.assertLessEqual(len(c.pex_in), 1, 'more than one PEX within a minute')
            for m in c.pex_in:
                self.assertEqual(m[b'added.f'], b'\x12' * (len(m[b'added']) // 6), m)
        # The address that only their PEX named was dialled.
        self.assertGreater(bait.hits, 0, 'the address from PEX was never dialled')

    def test_private_torrent_no_pex(self):
        fx = private_copy(fp.Torrent(self.w, 3 * MiB, seed=22), self.w)
        bait, (a, b) = self.swarm_of_two(fx, '127.0.42.')
        r, out = self.download(fx, [a, b])
        self.assertEqual(r.returncode, 0, r)
        with open(out, 'rb') as f:
            self.assertEqual(f.read(), fx.data)
        conns = a.handshaken() + b.handshaken()
        self.assertTrue(conns)
        for c in conns:
            self.assertIsNotNone(c.client_ext, 'no extended handshake from us')
            self.assertNotIn(b'ut_pex', c.client_ext[b'm'], c.client_ext)
            self.assertEqual(c.pex_in, [])
            self.assertEqual([m for m in c.messages if m[1] == fp.EXTENDED and m[2][:1] != b'\0'],
                             [], 'an extended message other than the handshake')
            self.assertGreater(c.pex_sent, 0, 'the fake never sent its PEX')
        self.assertEqual(bait.hits, 0, 'an address from PEX was dialled on a private torrent')

    def test_pex_twice_a_minute_disconnects(self):
        fx = fp.Torrent(self.w, 3 * MiB, seed=23)
        bait, (a, b) = self.swarm_of_two(fx, '127.0.43.', spam=True)
        r, out = self.download(fx, [a, b])
        self.assertEqual(r.returncode, 0, r)
        spammers = [c for c in a.handshaken() if c.pex_sent >= 2]
        self.assertTrue(spammers, 'the spamming fake never sent two')
        self.assertTrue(spammers[0].client_closed, 'a peer sending PEX twice in a second stayed')
        self.assertLess(spammers[0].t_closed - spammers[0].t_ext, 5.0)
        self.assertIn('more than once a minute', r.err)


def lt_peers(handle):
    """libtorrent's peer list: {'ip:port': peer_info}."""
    return {'%s:%d' % tuple(p.ip): p for p in handle.get_peer_info()}


class Libtorrent(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='pex-lt-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        cls.src = os.path.join(cls.w, 'src')
        cls.meta = swarm.make_torrent(swarm.make_single(cls.src, 'pex.bin', 8 * MiB + 123, 31),
                                      os.path.join(cls.w, 'pex.torrent'), 256 * KiB)
        ips = swarm.IpPool('127.0.44.')
        # Each seeder sends at most 1 MiB/s, so that a download takes seconds and every seeder
        # our client learns of has time to send its share.
        factories = [lambda ip=ips.take(): swarm.LibtorrentSeeder(ip, [cls.meta], cls.src, cls.w,
                                                                  upload_limit=MiB)
                     for _ in range(3)]
        cls.seeders = swarm.start_all(factories)
        for s in cls.seeders:
            cls.addClassCleanup(s.stop)

    def lt_downloader(self, ip, limit=0):
        sess, port = uc.lt_session(ip, encryption=False)
        dl = os.path.join(self.w, 'dl-' + ip)
        os.makedirs(dl, exist_ok=True)
        h = uc.lt_add(sess, self.meta, dl)
        if limit:
            h.set_download_limit(limit)
        return sess, port, h

    def test_learns_seeders_from_hub(self):
        # The hub downloads slowly from the three seeders, so it stays connected to them.
        hub, hub_port, h = self.lt_downloader('127.0.44.100', limit=20 * KiB)
        self.addCleanup(lambda: hub.remove_torrent(h))
        for s in self.seeders:
            h.connect_peer((s.ip, s.port))
        swarm.wait_until(lambda: sum(p.seed for p in lt_peers(h).values()) >= 3 or
                         (hub.pop_alerts() and False), 20, what='the hub to reach the seeders')
        out = os.path.join(self.w, 'out-learn.bin')
        r = run_client('download', '--no-tracker', '--listen', '127.0.44.50', '-v',
                       '--peer', '127.0.44.100:%d' % hub_port, '-o', out, '--progress=json',
                       self.meta.path, timeout=120)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(os.path.join(self.src, 'pex.bin')))
        # By address: libtorrent's PEX gives a seeder's listen port from its extended
        # handshake, which need not be the port its 'listening' line named.
        by_ip = {}
        for p in r.summary()['peers']:
            ip = p['address'].rsplit(':', 1)[0]
            by_ip[ip] = by_ip.get(ip, 0) + p['bytes']
        sys.stderr.write('\n  per-peer bytes: %s\n' % by_ip)
        for s in self.seeders:
            self.assertGreater(by_ip.get(s.ip, 0), 0,
                               'seeder %s (known only through PEX) sent nothing: %s'
                               % (s.ip, by_ip))
        self.assertIn('PEX: ', r.err)

    def test_teaches_libtorrent(self):
        seeder = self.seeders[0]
        port = swarm.free_port('127.0.44.60')
        self.client = client = uc.Background('download', '--no-tracker', '--listen', '127.0.44.60', '-p', port,
                               '-v', '--max-down', '400K', '--peer', seeder.address,
                               '-o', os.path.join(self.w, 'out-teach.bin'), '--progress=json',
                               self.meta.path, ip='127.0.44.60', port=port)
        self.addCleanup(client.close)
        sess, _, h = self.lt_downloader('127.0.44.101')
        self.addCleanup(lambda: sess.remove_torrent(h))
        h.connect_peer(('127.0.44.60', port))

        # libtorrent knows only us (no tracker, no DHT), and we download at 400 KiB/s: if it
        # completes while we are still downloading, most of its data came from the seeder,
        # whose address only our PEX gave it. (It drops the seeder once it is a seed itself,
        # so a look at its peer list can miss the connection.)
        def learned():
            sess.pop_alerts()
            return h.status().is_seeding
        try:
            swarm.wait_until(learned, 20, step=0.2,
                             what="libtorrent to learn the seeder from our PEX")
        except TimeoutError as e:
            raise AssertionError('%s; libtorrent peers %s; our log: %s' % (
                e, sorted(lt_peers(h)), client.stderr()[-2500:]))
        self.assertTrue(client.alive(), 'our client finished first: the test shows nothing')
        r = client.stop()
        self.assertIn('127.0.44.101', r.err)


if __name__ == '__main__':
    btcommon.main()
