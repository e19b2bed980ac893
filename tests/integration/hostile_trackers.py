"""Hostile peer lists and connection floods against the address book (issue 9, points 2 and 3).

- A scripted HTTP tracker (served from this process) answers with 200,000 compact peers, all at
  loopback addresses where nothing listens (127.1.x.y-127.4.x.y, port 9), beside a good
  `--peer` (`torrent seed`, downloaded from at 2 MB/s so that the reply lands mid-download):
  the download completes and verifies, in less than twice (+3 s) the time it takes beside a
  tracker with no peers; both times are printed. The same with 170,000 peers (just under the
  1 MiB mark), and with a UDP tracker's largest datagram (10,914 peers).
- SIGTERM sent while such a reply is being taken in (and a moment later, while its peers are
  dialled) is answered within 1.5 s with the interrupted message.
- 20,000 TCP connect + handshake + close cycles against `torrent seed` from four loopback
  source addresses: the seed's RSS grows by less than 4 MiB, and afterwards its idle CPU over
  3 s is near 0 (the per-tick work does not grow with the connections it has seen).

Every address is on 127.0.0.0/8; every process started here is stopped by PID.

Run as: /usr/bin/python3 hostile_trackers.py <path to torrent binary>
"""

import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
import trackers  # noqa: E402
from swarm import KiB, MiB  # noqa: E402
from upload_common import Seed, stop_on_sigterm, vmrss_kib  # noqa: E402

IPS = swarm.IpPool('127.0.93.')
W = None
SRC = None
SIZE = 4 * MiB + 333
PLEN = 64 * KiB
DEAD_PORT = 9  # nothing listens there on 127.1.0.0-127.4.255.255: every dial is refused
SIGNAL_LIMIT_S = 1.5
MAX_DOWN = '2M'  # the good peer's 4 MiB take ~2 s: the tracker's reply lands mid-download
CYCLES = 20000
RSS_GROWTH_LIMIT_KIB = 4 * 1024
IDLE_CPU_LIMIT_S = 0.15  # CPU seconds the seed may use over 3 idle seconds


def dead_peers(n):
    """n compact IPv4 entries, all distinct, at loopback addresses where nothing listens."""
    return b''.join(struct.pack('>BBBBH', 127, 1 + (i >> 16), (i >> 8) & 255, i & 255, DEAD_PORT)
                    for i in range(n))


def bomb_body(n):
    return btcommon.bencode({'interval': 1800, 'peers': dead_peers(n)})


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def setUpModule():
    global W, SRC
    W = tempfile.mkdtemp(prefix='hostile-trackers-')
    SRC = swarm.make_single(os.path.join(W, 'src'), 'hostile.bin', SIZE, 93)


def tearDownModule():
    if W:
        shutil.rmtree(W, ignore_errors=True)


class TrackerBomb(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='case-', dir=W)
        self.addCleanup(shutil.rmtree, self.dir, True)

    def torrent_for(self, url):
        return swarm.make_torrent(SRC, os.path.join(self.dir, 'hostile.torrent'), PLEN,
                                  trackers=(url,))

    def http_tracker(self, body, delay=0):
        tr = trackers.FakeHTTPTracker(lambda req: trackers.Reply(body, delay=delay)).start()
        self.addCleanup(tr.stop)
        return tr

    def seed(self, meta):
        s = Seed(meta, SRC, IPS.take())
        self.addCleanup(s.close)
        self.addCleanup(s.stop)
        return s

    def download(self, meta, seed, what, announced=None):
        """Downloads from seed at MAX_DOWN (so that the tracker's reply lands mid-download)
        and checks the content; announced() gives the times of the tracker's announces."""
        out = os.path.join(self.dir, 'out.bin')
        if os.path.exists(out):
            os.unlink(out)
        start = time.monotonic()
        r = swarm.run_client('download', '--listen', IPS.take(), '--peer', seed.address,
                             '--max-down', MAX_DOWN, '--progress=none', '-o', out, meta.path,
                             timeout=120)
        end = time.monotonic()
        print('%s: download beside it took %.2f s' % (what, end - start), file=sys.stderr)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(SRC))
        if announced:
            times = announced()
            self.assertTrue(times and min(times) < end - 0.5,
                            'the tracker was not asked well before the end: %r' % times)
        return end - start

    def http_times(self, tr):
        return lambda: [a['time'] for a in tr.announces()]

    def test_http_200k_peers_beside_a_good_peer(self):
        bomb = [False]
        body = bomb_body(200000)
        empty = btcommon.bencode({'interval': 1800, 'peers': b''})
        tr = self.http_tracker(None)
        tr.script = lambda req: trackers.Reply(body if bomb[0] else empty)
        meta = self.torrent_for(tr.url())
        seed = self.seed(meta)
        alone = self.download(meta, seed, 'a tracker with no peers', self.http_times(tr))
        bomb[0] = True
        n = len(tr.announces())
        took = self.download(meta, seed, '200,000 peers over HTTP',
                             lambda: [a['time'] for a in tr.announces()[n:]])
        # Relative, not absolute: the bomb may cost a little, never the download's time again.
        self.assertLess(took, 2 * alone + 3, 'with the bomb %.2f s, without %.2f s'
                        % (took, alone))

    def test_http_170k_peers_beside_a_good_peer(self):
        tr = self.http_tracker(bomb_body(170000))
        meta = self.torrent_for(tr.url())
        seed = self.seed(meta)
        self.download(meta, seed, '170,000 peers over HTTP', self.http_times(tr))

    def test_udp_largest_datagram_beside_a_good_peer(self):
        n = (65507 - 20) // 6
        dead = [('127.%d.%d.%d' % (1 + (i >> 16), (i >> 8) & 255, i & 255), DEAD_PORT)
                for i in range(n)]
        tr = trackers.FakeUDPTracker(peers=dead).start()
        self.addCleanup(tr.stop)
        meta = self.torrent_for(tr.url())
        seed = self.seed(meta)
        self.download(meta, seed, '%d peers over UDP' % n,
                      lambda: [t for k, _, t in tr.received if k == 'announce'])

    def sigterm_case(self, after_reply_s):
        """SIGTERM `after_reply_s` seconds after the tracker wrote its 200,000-peer reply (sent
        ~1 s after the request); no good peer, so the download is still running."""
        delay = 1.0
        tr = self.http_tracker(bomb_body(200000), delay=delay)
        meta = self.torrent_for(tr.url())
        out = os.path.join(self.dir, 'out.bin')
        c = swarm.Client('download', '--listen', IPS.take(), '--progress=none', '-o', out,
                         meta.path)
        try:
            swarm.wait_until(lambda: tr.announces() or c.proc.poll() is not None, 10,
                             what='the announce')
            self.assertIsNone(c.proc.poll(), 'exited before announcing')
            sent_at = tr.announces()[0]['time'] + delay
            time.sleep(max(0.0, sent_at + after_reply_s - time.monotonic()))
            self.assertIsNone(c.proc.poll(), 'exited before the signal')
            t0 = time.monotonic()
            os.kill(c.proc.pid, signal.SIGTERM)
            try:
                c.proc.wait(10)
            except Exception:  # noqa: BLE001
                pass
            latency = time.monotonic() - t0
            r = c.wait(5)
        finally:
            c.kill()
        print('SIGTERM %.2f s after the reply: exit %.3f s after the signal'
              % (after_reply_s, latency), file=sys.stderr)
        self.assertLess(latency, SIGNAL_LIMIT_S, r)
        self.assertIn('interrupted', r.err)
        self.assertNotEqual(r.returncode, 0)

    def test_sigterm_while_taking_in_the_reply(self):
        self.sigterm_case(0.0)

    def test_sigterm_while_dialling_its_peers(self):
        self.sigterm_case(1.0)


class IncomingFlood(unittest.TestCase):
    def test_connect_close_cycles_keep_memory_and_cpu_flat(self):
        d = tempfile.mkdtemp(prefix='flood-', dir=W)
        self.addCleanup(shutil.rmtree, d, True)
        meta = swarm.make_torrent(SRC, os.path.join(d, 'flood.torrent'), PLEN)
        # Under ASan, freed memory waits in a quarantine (256 MiB) before reuse, which would
        # read as growth here: the seed runs without one (no effect on other builds).
        saved = os.environ.get('ASAN_OPTIONS')
        os.environ['ASAN_OPTIONS'] = ((saved + ':') if saved else '') + \
            'quarantine_size_mb=0:thread_local_quarantine_size_kb=0'
        try:
            seed = Seed(meta, SRC, IPS.take(), extra=['--max-peers', '500'])
        finally:
            if saved is None:
                del os.environ['ASAN_OPTIONS']
            else:
                os.environ['ASAN_OPTIONS'] = saved
        self.addCleanup(seed.close)
        sources = [IPS.take() for _ in range(4)]
        hs = b'\x13BitTorrent protocol' + bytes(8) + meta.info_hash + b'-HT0001-' + bytes(12)

        def cycle(i):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.settimeout(5)
                s.bind((sources[i % len(sources)], 0))
                s.connect((seed.ip, seed.port))
                s.sendall(hs)
                got = b''
                while len(got) < 68:
                    chunk = s.recv(68 - len(got))
                    if not chunk:
                        break
                    got += chunk
                # RST on close: no TIME_WAIT left on our side for 20,000 ports.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                return len(got) == 68 and got[28:48] == meta.info_hash
            finally:
                s.close()

        for i in range(200):  # warm up: the allocator's first arenas, the book's first slots
            self.assertTrue(cycle(i))
        time.sleep(1)
        rss0 = vmrss_kib(seed.pid)
        cpu_a = cpu_seconds(seed.pid)
        time.sleep(3)
        idle0 = cpu_seconds(seed.pid) - cpu_a
        start = time.monotonic()
        ok = sum(cycle(i) for i in range(CYCLES))
        took = time.monotonic() - start
        time.sleep(2)  # the seed reaps the last ones
        rss1 = vmrss_kib(seed.pid)
        cpu_b = cpu_seconds(seed.pid)
        time.sleep(3)
        idle1 = cpu_seconds(seed.pid) - cpu_b
        print('%d cycles (%d handshaken) in %.1f s; seed RSS %d -> %d KiB (+%d); idle CPU '
              'over 3 s %.3f s before, %.3f s after'
              % (CYCLES, ok, took, rss0, rss1, rss1 - rss0, idle0, idle1), file=sys.stderr)
        self.assertGreater(ok, CYCLES * 9 // 10)
        self.assertLess(rss1 - rss0, RSS_GROWTH_LIMIT_KIB)
        self.assertLess(idle1, IDLE_CPU_LIMIT_S)
        self.assertTrue(seed.alive())
        # The seed still serves a whole download.
        out = os.path.join(d, 'out.bin')
        r = swarm.run_client('download', '--listen', IPS.take(), '--no-tracker', '--peer',
                             seed.address, '--progress=none', '-o', out, meta.path, timeout=60)
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(SRC))
        res = seed.stop()
        self.assertEqual(res.returncode, 0, res)


if __name__ == '__main__':
    stop_on_sigterm()
    btcommon.main()
