"""Helpers for tests that need only our own binary: a random payload and its torrent, and a
`torrent seed` on its own 127.0.x.y, started and stopped by PID."""
import os
import signal
import socket
import subprocess
import time


def make_payload(torrent, directory, size, piece_length='256K'):
    """Writes `size` random bytes and a torrent of them; returns (data path, torrent path)."""
    data = os.path.join(directory, 'data.bin')
    with open(data, 'wb') as f:
        f.write(os.urandom(size))
    meta = os.path.join(directory, 'data.torrent')
    subprocess.run([torrent, 'create', '-q', '-l', piece_length, '-o', meta, data],
                   check=True, capture_output=True, timeout=30)
    return data, meta


def free_port(ip):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def start_seed(torrent, meta, data, ip, *extra, timeout=10):
    """Starts `torrent seed` on ip and waits until it listens; returns (process, "ip:port")."""
    port = free_port(ip)
    p = subprocess.Popen([torrent, 'seed', '--no-tracker', '--listen', ip, '-p', str(port),
                          '-q', *extra, meta, data],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return p, '%s:%d' % (ip, port)
        except OSError:
            time.sleep(0.05)
    stop(p)
    raise RuntimeError('the seed on %s did not start listening' % ip)


def stop(p):
    """Stops a process by PID: SIGINT, then SIGKILL after 10 s."""
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
