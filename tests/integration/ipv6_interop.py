#!/usr/bin/python3
"""IPv6 peers (BEP 7) with real clients over the IPv6 loopback [::1].

- download from a libtorrent seeder on [::1]: given as --peer [::1]:PORT, listed in `peers6` by
  a scripted HTTP tracker (Debian's opentracker is IPv4-only), and as a magnet's x.pe;
- seed to a libtorrent leecher that dials our wildcard (dual-stack) listener at [::1];
- aria2c downloading from us (it finds us in the scripted tracker's `peers6`) and seeding to us.

The tracker also checks BEP 7's ipv6= parameter: this machine has loopback, link-local and
unique-local IPv6 only, so none is sent. The libtorrent sessions run in this process; aria2c
and the binary are child processes stopped by PID. Skipped when ::1 is not usable.

Usage: ipv6_interop.py <path to torrent binary>
"""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import trackers as T  # noqa: E402

ARIA2C = '/usr/bin/aria2c'
SIZE = 3 * 1024 * 1024 + 12345


def ipv6_loopback_works():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


try:
    import libtorrent as lt
except ImportError:
    lt = None


def free_port6():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(('::1', 0))
        return s.getsockname()[1]


def free_port_any():
    """Free for TCP on every address (our wildcard listener binds [::] with IPv4 too)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(('::', 0))
        return s.getsockname()[1]


def sha1(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def read_log(path):
    with open(path, errors='replace') as f:
        return f.read()[-3000:]


def wait_until(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError('timed out after %s s waiting for %s' % (timeout, what))


class LtSession:
    """A quiet libtorrent session listening on [::1] only (no DHT, LSD, UPnP, uTP)."""

    def __init__(self):
        self.s = lt.session({
            'listen_interfaces': '[::1]:0', 'outgoing_interfaces': '::1',
            'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
            'enable_natpmp': False, 'enable_incoming_utp': False, 'enable_outgoing_utp': False,
            'allow_multiple_connections_per_ip': True, 'anonymous_mode': False,
            'alert_mask': lt.alert.category_t.status_notification |
            lt.alert.category_t.error_notification})
        end = time.monotonic() + 10
        self.port = 0
        while not self.port and time.monotonic() < end:
            self.s.wait_for_alert(200)
            for a in self.s.pop_alerts():
                if isinstance(a, lt.listen_failed_alert):
                    raise RuntimeError('libtorrent: %s' % a.message())
            self.port = self.s.listen_port()
        if not self.port:
            raise RuntimeError('libtorrent did not listen on [::1]')

    def add(self, torrent, save_path, seeding):
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
        atp.save_path = save_path
        if seeding:
            n = atp.ti.num_pieces()
            atp.have_pieces = [True] * n
            atp.verified_pieces = [True] * n
        atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        return self.s.add_torrent(atp)

    def close(self):
        self.s.pause()
        del self.s


@unittest.skipUnless(ipv6_loopback_works(), '::1 is not available here')
@unittest.skipUnless(lt is not None, 'python3-libtorrent is not installed')
class Ipv6Interop(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='ipv6-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.src = os.path.join(self.tmp, 'src')
        self.out = os.path.join(self.tmp, 'out')
        os.mkdir(self.src)
        os.mkdir(self.out)
        self.procs = []
        self.addCleanup(self.stop_procs)

    def stop_procs(self):
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)

    def torrent(self, announce=None):
        path, ih = T.make_torrent(self.src, announce=announce, size=SIZE, seed=self.id(),
                                  torrent_name='t.torrent')
        self.payload = [f for f in os.listdir(self.src) if f.endswith('.bin')][0]
        return path, ih

    def lt_seeder(self, torrent):
        lts = LtSession()
        self.addCleanup(lts.close)
        h = lts.add(torrent, self.src, seeding=True)
        wait_until(lambda: h.status().is_seeding, 10, 'the libtorrent seeder')
        return lts

    def check_output(self, directory=None):
        got = os.path.join(directory or self.out, self.payload)
        self.assertTrue(os.path.exists(got), os.listdir(directory or self.out))
        self.assertEqual(sha1(got), sha1(os.path.join(self.src, self.payload)))

    def download(self, *args, timeout=60):
        r = T.run_torrent('download', '-q', '--stall-timeout', 20, '-d', self.out, *args,
                          timeout=timeout)
        self.assertEqual(r.returncode, 0, r)
        return r

    # --- downloading over IPv6 -----------------------------------------------------------------

    def test_download_from_libtorrent_by_peer_option(self):
        path, _ = self.torrent()
        lts = self.lt_seeder(path)
        self.download('--no-tracker', '--peer', '[::1]:%d' % lts.port, path)
        self.check_output()

    def test_download_from_libtorrent_listed_in_peers6(self):
        lts = self.lt_seeder(self.torrent()[0])
        tr = T.FakeHTTPTracker(lambda req: T.Reply(T.ok_body(peers6=[('::1', lts.port)])))
        tr.start()
        self.addCleanup(tr.stop)
        path, _ = self.torrent(announce=tr.url())
        self.download(path)
        self.check_output()
        started = tr.announces('started')
        self.assertTrue(started)
        # BEP 7: no global IPv6 address on this machine, so no ipv6= (never ::1 or fd00::).
        for q in tr.announces():
            self.assertNotIn('ipv6', q['params'], q)

    def test_magnet_with_ipv6_x_pe(self):
        path, ih = self.torrent()
        lts = self.lt_seeder(path)
        magnet = 'magnet:?xt=urn:btih:%s&x.pe=[::1]:%d' % (ih.hex(), lts.port)
        self.download(magnet)
        self.check_output()

    # --- seeding over IPv6 ---------------------------------------------------------------------

    def start_seed(self, path, port, *extra):
        log = open(os.path.join(self.tmp, 'seed.log'), 'wb')
        self.addCleanup(log.close)
        p = subprocess.Popen([btcommon.TORRENT, 'seed', '-q', '-d', self.src, '-p', str(port),
                              '--no-tracker', '--seed-time', '60', *extra, path],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        # Ready when the port takes connections on ::1 (the wildcard listener's IPv6 side).
        def up():
            try:
                socket.create_connection(('::1', port), timeout=0.5).close()
                return True
            except OSError:
                return p.poll() is not None
        wait_until(up, 20, 'our seeder on [::1]:%d' % port)
        self.assertIsNone(p.poll(), read_log(os.path.join(self.tmp, 'seed.log')))
        return p

    def stop_seed(self, p):
        os.kill(p.pid, signal.SIGINT)
        p.wait(15)

    def test_seed_to_libtorrent_dialling_us(self):
        path, _ = self.torrent()
        port = free_port_any()
        seed = self.start_seed(path, port)
        lts = LtSession()
        self.addCleanup(lts.close)
        dest = os.path.join(self.tmp, 'lt')
        os.mkdir(dest)
        h = lts.add(path, dest, seeding=False)
        h.connect_peer(('::1', port))
        wait_until(lambda: h.status().is_seeding, 60, 'libtorrent to download from us')
        self.stop_seed(seed)
        self.check_output(dest)

    def test_seed_to_libtorrent_by_peer_option(self):
        path, _ = self.torrent()
        lts = LtSession()
        self.addCleanup(lts.close)
        dest = os.path.join(self.tmp, 'lt')
        os.mkdir(dest)
        h = lts.add(path, dest, seeding=False)
        seed = self.start_seed(path, free_port_any(), '--peer', '[::1]:%d' % lts.port)
        wait_until(lambda: h.status().is_seeding, 60, 'libtorrent to download from us')
        self.stop_seed(seed)
        self.check_output(dest)

    # --- aria2c ---------------------------------------------------------------------------------

    def aria2_args(self, directory, port):
        return [ARIA2C, '--no-conf', '--enable-dht=false', '--enable-dht6=false',
                '--bt-enable-lpd=false', '--enable-peer-exchange=false',
                '--disable-ipv6=false', '--listen-port=%d' % port, '--dir=%s' % directory,
                '--file-allocation=none', '--bt-min-crypto-level=plain',
                '--bt-require-crypto=false', '--summary-interval=0',
                '--console-log-level=warn', '--auto-save-interval=0']

    @unittest.skipUnless(os.access(ARIA2C, os.X_OK), 'aria2c is not installed')
    def test_aria2_downloads_from_us_through_peers6(self):
        port = free_port_any()
        tr = T.FakeHTTPTracker(lambda req: T.Reply(T.ok_body(peers6=[('::1', port)])))
        tr.start()
        self.addCleanup(tr.stop)
        path, _ = self.torrent(announce=tr.url())
        seed = self.start_seed(path, port)
        dest = os.path.join(self.tmp, 'aria2')
        os.mkdir(dest)
        log = open(os.path.join(self.tmp, 'aria2.log'), 'wb')
        self.addCleanup(log.close)
        a = subprocess.Popen(self.aria2_args(dest, free_port6()) + ['--seed-time=0', path],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             cwd=self.tmp)
        self.procs.append(a)
        try:
            rc = a.wait(90)
        except subprocess.TimeoutExpired:
            rc = None
        self.stop_seed(seed)
        self.assertEqual(rc, 0, read_log(os.path.join(self.tmp, 'aria2.log')))
        self.check_output(dest)

    @unittest.skipUnless(os.access(ARIA2C, os.X_OK), 'aria2c is not installed')
    def test_download_from_aria2(self):
        path, _ = self.torrent()
        port = free_port6()
        log = open(os.path.join(self.tmp, 'aria2.log'), 'wb')
        self.addCleanup(log.close)
        a = subprocess.Popen(self.aria2_args(self.src, port) +
                             ['--seed-ratio=0.0', '--check-integrity=true',
                              '--bt-hash-check-seed=true', path],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             cwd=self.tmp)
        self.procs.append(a)

        def listening():
            try:
                socket.create_connection(('::1', port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_until(listening, 20, 'aria2c on [::1]:%d' % port)
        self.download('--no-tracker', '--peer', '[::1]:%d' % port, path)
        self.check_output()


if __name__ == '__main__':
    btcommon.main()
