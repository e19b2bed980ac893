"""The Fast extension (BEP 6) against a real client and scripted peers.

- libtorrent (it negotiates Fast and sends HAVE_ALL, ALLOWED_FAST and REJECT) seeding to us
  while its unchoke slots are switched between 0 and 8 every 1.5 s, so that it chokes us with
  requests outstanding and unchokes us again, over and over: the download completes
  byte-identical, no block is sent twice (the seeder's upload counter is the file's size) (a choke loses no request: each comes back as a
  PIECE or a REJECT), and the seeder's own view confirms that it choked us several times. The
  seeder is a child process of this script (`fast_interop.py lt-choky ...`).
- scripted peers (raw sockets in this process) for the protocol errors: each announces Fast,
  sends a HAVE_ALL, then the bad message, and the client must close the connection: Fast
  messages without the bit, a PIECE and a REJECT for blocks never requested, HAVE_NONE
  after a BITFIELD or HAVE_ALL (a later BITFIELD or HAVE_ALL is taken: aria2 sends them).

Everything on 127.0.0.0/8; every child stopped by PID.
Run as: /usr/bin/python3 fast_interop.py <path to torrent binary>
"""

import os
import queue
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB, run_client  # noqa: E402

PSTR = b'\x13BitTorrent protocol'
FAST_RESERVED = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04])
EXT_RESERVED = bytes([0, 0, 0, 0, 0, 0x10, 0, 0])
HAVE_ALL, HAVE_NONE, REJECT, ALLOWED_FAST, SUGGEST = 14, 15, 16, 17, 13
BITFIELD, PIECE, UNCHOKE, REQUEST = 5, 7, 1, 6


def msg(mid, body=b''):
    return struct.pack('>IB', 1 + len(body), mid) + body


class ChokyLibtorrent:
    """A libtorrent seeder (child process) whose unchoke slots flip between 0 and 8."""

    def __init__(self, ip, meta, save_path, workdir, rate, timeout=20):
        self.ip = ip
        argv = [swarm.PYTHON, os.path.abspath(__file__), 'lt-choky', ip, save_path, str(rate),
                meta.path]
        self.proc = swarm.Proc(argv, os.path.join(workdir, 'lt-choky.log'),
                               stdin=swarm.subprocess.PIPE, stdout=swarm.subprocess.PIPE)
        self.lines = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()
        try:
            self.port = int(self.expect('listening', timeout)[1])
            swarm.wait_seeding(ip, self.port, [meta], timeout, self.proc)
            self.proc.proc.stdin.write(b'flip\n')
            self.proc.proc.stdin.flush()
        except BaseException:
            self.stop()
            raise

    def _reader(self):
        for line in self.proc.proc.stdout:
            self.lines.put(line.decode('utf-8', 'replace').split())
        self.lines.put(None)

    def expect(self, word, timeout):
        end = time.monotonic() + timeout
        while True:
            words = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            if words is None:
                raise RuntimeError('lt-choky exited: %s' % self.proc.read_log())
            if words and words[0] == word:
                return words

    def report(self):
        """(times it choked a peer, times it unchoked one, bytes uploaded)."""
        self.proc.proc.stdin.write(b'report\n')
        self.proc.proc.stdin.flush()
        w = self.expect('report', 10)
        return int(w[1]), int(w[2]), int(w[3])

    @property
    def address(self):
        return '%s:%d' % (self.ip, self.port)

    def stop(self):
        self.proc.stop()


class ChokingSeeder(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='fast-interop-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        cls.src = os.path.join(cls.w, 'src')
        # 48 pieces of 256 KiB, the last one short
        cls.meta = swarm.make_torrent(swarm.make_single(cls.src, 'fast.bin', 12 * MiB - 999, 3),
                                      os.path.join(cls.w, 'fast.torrent'), 256 * KiB)

    def test_download_through_chokes(self):
        # 2 MiB/s: about 6 s of transfer, four or so chokes.
        seeder = ChokyLibtorrent('127.0.3.11', self.meta, self.src, self.w, 2 * MiB)
        self.addCleanup(seeder.stop)
        out = os.path.join(self.w, 'out.bin')
        r = run_client('download', '--no-tracker', '--peer', seeder.address, '-o', out,
                       '--progress=json', self.meta.path, timeout=120)
        chokes, unchokes, uploaded = seeder.report()
        sys.stderr.write('\n  seeder: %d chokes, %d unchokes, %d bytes up; client %.1f s\n' % (
            chokes, unchokes, uploaded, r.elapsed))
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual(swarm.sha1_file(out),
                         swarm.sha1_file(os.path.join(self.src, 'fast.bin')))
        self.assertGreaterEqual(chokes, 2, 'the seeder never choked us: the test proves nothing')
        s = r.summary()
        self.assertIsNotNone(s, r)
        self.assertEqual(s['pieces_failed'], 0, s)
        # No block twice: every request outstanding at a choke ended in one PIECE or REJECT,
        # none was asked again while its PIECE was on the way (without Fast, each choke cost
        # the blocks in flight: the seeder sent them twice, we dropped the first copies).
        self.assertEqual(s['received'], self.meta.total, s)
        self.assertEqual(uploaded, self.meta.total, 'the seeder sent %d bytes for %d' % (
            uploaded, self.meta.total))


class ScriptedPeer:
    """One listening socket on loopback; accept() plays the remote side of one connection."""

    def __init__(self, info_hash, ip='127.0.3.21'):
        self.info_hash = info_hash
        self.sock = socket.socket()
        self.sock.bind((ip, 0))
        self.sock.listen(4)
        self.sock.settimeout(15)
        self.address = '%s:%d' % self.sock.getsockname()

    def accept(self, reserved):
        c, _ = self.sock.accept()
        c.settimeout(10)
        hs = b''
        while len(hs) < 68:
            chunk = c.recv(68 - len(hs))
            if not chunk:
                raise AssertionError('client closed before its handshake')
            hs += chunk
        c.sendall(PSTR + reserved + self.info_hash + b"-FP0001-fastscripted")
        return c, hs[20:28]

    def close(self):
        self.sock.close()


def closed_by_client(c, timeout=10):
    """Reads until the client closes the connection (True) or the timeout passes (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        c.settimeout(max(0.05, end - time.monotonic()))
        try:
            if not c.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False


class ProtocolErrors(btcommon.CliTestCase):

    @classmethod
    def setUpClass(cls):
        cls.w = tempfile.mkdtemp(prefix='fast-errors-')
        cls.addClassCleanup(shutil.rmtree, cls.w, True)
        src = os.path.join(cls.w, 'src')
        cls.meta = swarm.make_torrent(swarm.make_single(src, 'e.bin', 1 * MiB, 5),
                                      os.path.join(cls.w, 'e.torrent'), 64 * KiB)

    def expect_closed(self, reserved, messages, want_reserved=FAST_RESERVED):
        peer = ScriptedPeer(self.meta.info_hash)
        self.addCleanup(peer.close)
        out = os.path.join(self.w, 'out-%d' % time.monotonic_ns())
        # No DHT: its bit (0x01) would be set beside Fast's, and the bytes are checked whole.
        client = swarm.Client('download', '--no-tracker', '--no-dht', '--peer', peer.address,
                              '-o', out, self.meta.path)
        self.addCleanup(client.close)
        c, theirs = peer.accept(reserved)
        with c:
            self.assertEqual(theirs, want_reserved)
            for m in messages:
                c.sendall(m)
            self.assertTrue(closed_by_client(c), 'the client kept the connection')
        client.kill()
        client.wait(10)

    def test_fast_messages_without_the_bit(self):
        bodies = {SUGGEST: struct.pack('>I', 1), HAVE_ALL: b'', HAVE_NONE: b'',
                  REJECT: struct.pack('>III', 0, 0, 16 * KiB), ALLOWED_FAST: struct.pack('>I', 1)}
        for mid, body in bodies.items():
            with self.subTest(id=mid):
                self.expect_closed(EXT_RESERVED, [msg(mid, body)])

    def test_unrequested_piece(self):
        self.expect_closed(FAST_RESERVED, [msg(HAVE_ALL), msg(PIECE, struct.pack('>II', 3, 0) +
                                                              b'x' * 1000)])

    def test_unrequested_reject(self):
        self.expect_closed(FAST_RESERVED, [msg(HAVE_ALL),
                                           msg(REJECT, struct.pack('>III', 3, 0, 16 * KiB))])

    def test_have_none_after_bitfield(self):
        # (A later BITFIELD or HAVE_ALL is taken as the new whole: aria2 sends them.)
        self.expect_closed(FAST_RESERVED, [msg(BITFIELD, b'\xff\xff'), msg(HAVE_NONE)])

    def test_have_none_after_have_all(self):
        self.expect_closed(FAST_RESERVED, [msg(HAVE_ALL), msg(HAVE_NONE)])


def lt_choky(argv):
    """fast_interop.py lt-choky IP SAVE_PATH RATE TORRENT: seeds TORRENT; after 'flip' on stdin
    switches unchoke_slots_limit between 0 and 8 every 1.5 s; 'report' prints 'report CHOKES
    UNCHOKES UPLOADED' (transitions of the peers' choked flag seen by sampling every 0.1 s);
    exits when stdin closes."""
    import libtorrent as lt
    ip, save_path, rate, path = argv[0], argv[1], int(argv[2]), argv[3]
    s = lt.session({
        'listen_interfaces': '%s:0' % ip, 'outgoing_interfaces': ip,
        'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
        'enable_incoming_utp': False, 'enable_outgoing_utp': False,
        'unchoke_interval': 1, 'unchoke_slots_limit': 8,
        'alert_mask': lt.alert.category_t.status_notification})
    f = lt.ip_filter()
    f.add_rule('0.0.0.0', '255.255.255.255', 1 << lt.session.global_peer_class_id)
    s.set_peer_class_filter(f)
    port = None
    end = time.monotonic() + 20
    while port is None and time.monotonic() < end:
        s.wait_for_alert(200)
        for a in s.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert):
                port = s.listen_port()
    if port is None:
        print('error no listen_succeeded_alert', flush=True)
        return 1
    ti = lt.torrent_info(path)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    atp.have_pieces = [True] * ti.num_pieces()
    atp.verified_pieces = [True] * ti.num_pieces()
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = s.add_torrent(atp)
    h.set_upload_limit(rate)
    print('listening %d' % port, flush=True)
    cmds = queue.Queue()

    def reader():
        for line in sys.stdin:
            cmds.put(line.split())
        cmds.put(None)

    threading.Thread(target=reader, daemon=True).start()
    flipping, slots, next_flip = False, 8, 0.0
    choked = {}
    chokes = unchokes = 0
    while True:
        time.sleep(0.1)
        now = time.monotonic()
        if flipping and now >= next_flip:
            slots = 0 if slots else 8
            s.apply_settings({'unchoke_slots_limit': slots})
            next_flip = now + 1.5
        for p in h.get_peer_info():
            key = (p.ip, p.pid.to_bytes())
            c = bool(p.flags & lt.peer_info.choked)
            if key in choked and choked[key] != c:
                chokes += c
                unchokes += not c
            choked[key] = c
        try:
            while True:
                c = cmds.get_nowait()
                if c is None:
                    return 0
                if c == ['flip']:
                    flipping, next_flip = True, time.monotonic() + 1.5
                elif c == ['report']:
                    print('report %d %d %d' % (chokes, unchokes, h.status().total_payload_upload),
                          flush=True)
        except queue.Empty:
            pass


if __name__ == '__main__':
    if len(sys.argv) >= 2 and sys.argv[1] == 'lt-choky':
        sys.exit(lt_choky(sys.argv[2:]))
    btcommon.main()
