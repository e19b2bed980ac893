#!/usr/bin/python3
"""A wide-area path on loopback for bench/wan.sh: relays in front of seeders, and a tracker.

Usage: python3 bench/relay.py TRACKER_IP:PORT SPEC...
  SPEC is LISTEN_IP:PORT=SEEDER_IP:PORT,RTT_MS,KIB_S (a relay) or SEEDER_IP:PORT (no relay)

For each LISTEN=SEEDER it accepts connections on LISTEN and opens one to SEEDER for each. Every
chunk read from either side is written to the other half a round trip (RTT_MS / 2) later, so a
request and its answer take RTT_MS more than on loopback. The seeder's direction (its upload) is
metered by a token bucket of KIB_S KiB/s (shared by all the seeder's connections; a burst of
1/50 s) behind a bounded queue: while the bucket is empty the relay does not read, the bytes
wait in its receive buffer (BUFFER bytes) and then in the seeder's socket, and TCP slows the
seeder, as a real narrow uplink does. KIB_S 0: no cap, only the delay. The downloader's direction
is only delayed. A SPEC of only SEEDER_IP:PORT is handed out by the tracker as it is: a seeder
reached directly, on plain loopback, beside relayed ones or alone.

TRACKER is a minimal HTTP tracker: every /announce gets the compact list of the LISTEN
addresses (never a relayed seeder's own) and of the direct ones, interval 1800 s, so
downloaders reach relayed seeders only through their relays. Prints "ready" once everything listens; runs until SIGTERM or SIGINT.
Only 127.0.0.0/8 addresses are accepted.
"""
import asyncio
import signal
import socket
import struct
import sys
import time

BUFFER = 256 * 1024  # bytes a relay queues in the seeder's direction before it stops reading
CHUNK = 16 * 1024


def parse_addr(s):
    host, _, port = s.rpartition(':')
    if not host.startswith('127.'):
        sys.exit('relay.py: %s: only 127.0.0.0/8 addresses are allowed' % s)
    if not port.isdigit() or not 0 < int(port) < 65536:
        sys.exit('relay.py: %s: expected IP:PORT with a port from 1 to 65535' % s)
    return host, int(port)


class Bucket:
    """Tokens in bytes, refilled at rate bytes/s, at most one burst."""

    def __init__(self, rate):
        self.rate = rate
        self.burst = max(CHUNK, rate / 50)
        self.tokens = self.burst
        self.t = time.monotonic()

    async def take(self, n):
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep((n - self.tokens) / self.rate)


async def pipe(reader, writer, delay, bucket):
    """Reads from reader and delivers each chunk `delay` seconds after it passed the bucket."""
    line = asyncio.Queue()  # the delay line: (due, data), due in order

    async def deliver():
        while True:
            item = await line.get()
            if item is None:
                break
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            # While the bucket holds us, nothing is read: the bytes wait in our small receive
            # buffer and then in the seeder's socket, and TCP slows it, as a narrow uplink does.
            if bucket:
                await bucket.take(len(data))
            await line.put((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    await line.put(None)
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def relay(listen, target, rtt, rate):
    half = rtt / 2
    # One bucket for all connections: the seeder has one uplink, whoever it serves.
    bucket = Bucket(rate) if rate > 0 else None

    async def handle(cr, cw):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        s.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(s, target)
            sr, sw = await asyncio.open_connection(sock=s)
        except OSError:
            s.close()
            cw.close()
            return
        for w in (cw, sw):
            w.get_extra_info('socket').setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pipe(cr, sw, half, None), pipe(sr, cw, half, bucket))

    return await asyncio.start_server(handle, listen[0], listen[1], reuse_address=True)


def bencode_peers(relays):
    peers = b''.join(socket.inet_aton(h) + struct.pack('>H', p) for h, p in relays)
    return (b'd8:intervali1800e12:min intervali1800e8:completei%de10:incompletei0e5:peers%d:'
            % (len(relays), len(peers)) + peers + b'e')


async def tracker(addr, relays):
    body = bencode_peers(relays)

    async def handle(r, w):
        try:
            await r.readuntil(b'\r\n\r\n')
            w.write(b'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n'
                    % len(body) + body)
            await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        w.close()

    return await asyncio.start_server(handle, addr[0], addr[1], reuse_address=True)


async def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    taddr = parse_addr(sys.argv[1])
    specs = []
    direct = []
    for arg in sys.argv[2:]:
        if '=' not in arg and ',' not in arg:
            direct.append(parse_addr(arg))
            continue
        try:
            listen, rest = arg.split('=')
            target, rtt, kib = rest.split(',')
            specs.append((parse_addr(listen), parse_addr(target), float(rtt) / 1000,
                          float(kib) * 1024))
        except ValueError:
            sys.exit('relay.py: %s: expected LISTEN_IP:PORT=SEEDER_IP:PORT,RTT_MS,KIB_S or '
                     'SEEDER_IP:PORT' % arg)
        if specs[-1][2] < 0 or specs[-1][3] < 0:
            sys.exit('relay.py: %s: RTT_MS and KIB_S must not be negative' % arg)
    servers = [await tracker(taddr, [s[0] for s in specs] + direct)]
    for listen, target, rtt, rate in specs:
        servers.append(await relay(listen, target, rtt, rate))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print('ready', flush=True)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == '__main__':
    asyncio.run(main())
