"""`torrent seed` out of file descriptors: started under RLIMIT_NOFILE 64 (soft and hard, so a
client raising its soft limit to the hard one still runs out), with 100 peers connecting from
this process (plain sockets, each sending a valid handshake for the seeded torrent, all held
open). The listener must pause instead of spinning on EMFILE: the seed's stderr stays a few
lines (< 4 KiB), its CPU over 3 s stays near idle (utime + stime from /proc/PID/stat grow by less
than 0.3 s), and once the 100 are closed a real `torrent download --peer` from it completes and
verifies.

Run as: /usr/bin/python3 fd_limits.py <path to torrent binary>
"""

import os
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
import swarm  # noqa: E402
from swarm import KiB, MiB  # noqa: E402
from upload_common import SELF_STOP_S, stop_on_sigterm, wait_listening  # noqa: E402

IPS = swarm.IpPool('127.0.9.')
NOFILE = 64
PEERS = 100
STDERR_LIMIT = 4 * KiB
CPU_WINDOW_S = 3.0
CPU_LIMIT_S = 0.3


def limit_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def connect_many(ip, port, meta, n, source_ip, timeout=5.0):
    """n non-blocking connections to ip:port; every other one sends a handshake for meta once
    connected (and becomes a peer, up to the seed's 50), the rest stay silent (held in the
    seed's pending-handshake list for its 10 s timeout): together they need more descriptors
    than the seed has, for longer than the test looks. Returns (sockets, handshakes sent).
    Connections the seed never accepts stay in its backlog; that is part of the load."""
    hs = b'\x13BitTorrent protocol' + bytes(8) + meta.info_hash + b'-FD0001-' + os.urandom(12)
    socks, waiting = [], {}
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((source_ip, 0))
        s.connect_ex((ip, port))
        socks.append(s)
        if i % 2 == 0:
            waiting[s.fileno()] = s
    sent = 0
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        _, writable, _ = select.select([], list(waiting.values()), [], 0.2)
        for s in writable:
            del waiting[s.fileno()]
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                try:
                    s.send(hs)
                    sent += 1
                except OSError:
                    pass
    return socks, sent


class FdLimits(unittest.TestCase):
    def setUp(self):
        self.w = tempfile.mkdtemp(prefix='fd-limits-')
        self.addCleanup(shutil.rmtree, self.w, ignore_errors=True)
        self.src = swarm.make_single(os.path.join(self.w, 'src'), 'fd.bin', 2 * MiB + 123, 9)
        self.meta = swarm.make_torrent(self.src, os.path.join(self.w, 'fd.torrent'), 64 * KiB)

    def test_seed_out_of_descriptors(self):
        ip = IPS.take()
        port = swarm.free_port(ip)
        log = os.path.join(self.w, 'seed.log')
        seed = swarm.Proc([btcommon.TORRENT, 'seed', '--listen', ip, '-p', str(port),
                           '--no-tracker', '-q', '--seed-time', str(SELF_STOP_S),
                           self.meta.path, self.src], log, stdout=subprocess.DEVNULL,
                          preexec_fn=limit_descriptors)
        self.addCleanup(seed.stop)
        wait_listening(ip, port, 30, seed.alive, seed.read_log)

        socks, sent = connect_many(ip, port, self.meta, PEERS, IPS.take())
        try:
            self.assertGreater(sent, 0, 'no connection reached the seed')
            time.sleep(1.0)  # let it hit the limit
            before = cpu_seconds(seed.pid)
            time.sleep(CPU_WINDOW_S)
            cpu = cpu_seconds(seed.pid) - before
            size = os.path.getsize(log)
            text = seed.read_log(STDERR_LIMIT)
            print('seed under NOFILE %d with %d connections (%d handshakes sent): '
                  'CPU %.2f s in %.0f s, stderr %d bytes:\n%s'
                  % (NOFILE, PEERS, sent, cpu, CPU_WINDOW_S, size, text), file=sys.stderr)
            self.assertTrue(seed.alive(), 'the seed exited: %s' % text)
            self.assertLess(size, STDERR_LIMIT, 'stderr grew to %d bytes: %s' % (size, text))
            self.assertLess(cpu, CPU_LIMIT_S, 'the seed used %.2f CPU-s in %.0f s'
                            % (cpu, CPU_WINDOW_S))
        finally:
            for s in socks:
                s.close()

        # It still serves: a real download, verified, once the 100 are gone.
        out = os.path.join(self.w, 'out.bin')
        r = swarm.run_client('download', '--peer', '%s:%d' % (ip, port), '--no-tracker',
                             '--listen', IPS.take(), '-q', '-o', out, self.meta.path,
                             timeout=60)
        self.assertEqual(r.returncode, 0, r.err)
        self.assertEqual(swarm.sha1_file(out), swarm.sha1_file(self.src))
        self.assertTrue(seed.alive(), seed.read_log())
        size = os.path.getsize(log)
        self.assertLess(size, STDERR_LIMIT, seed.read_log(STDERR_LIMIT))


if __name__ == '__main__':
    stop_on_sigterm()
    btcommon.main()
