"""A scripted BitTorrent peer for the integration tests (Python stdlib only).

FakePeer listens on a loopback address (127.0.0.x, an ephemeral port), accepts any number of
connections from the client under test and runs one Conn per connection in its own thread.
The default Conn is an honest seeder: it checks the client's 68-byte handshake (protocol string
and info hash), answers with its own, sends a full bitfield, unchokes when the client says it is
interested, and answers each request from the real data (optionally throttled to `rate` bytes/s
so a download lasts long enough for a misbehaving peer to matter). Cancels remove queued
requests.

Misbehaviour comes from subclassing Conn and overriding its hooks:
    after_handshake()                 what to send first (default: the bitfield)
    bitfield_payload()                the bitfield's bytes (default: every piece)
    on_interested()                   default: unchoke
    on_request(index, begin, length)  default: queue the block for sending
    block_payload(index, begin, length) -> bytes   default: the real data
    after_block(index, begin, length) default: nothing (close, choke, send junk, ...)
    on_tick()                         called every loop turn (about 20 times a second)
and using send(), send_msg(), close_self().

MagnetConn is a seeder for a magnet link (BEP 9 over BEP 10) shaped like the CodeCrafters
course's peer: the extension bit in its reserved bytes, a BITFIELD then its extended handshake
right after the handshake, metadata blocks on request (or rejects), pieces as Conn serves them.

Every Conn keeps counters that the tests assert on, so a scenario can fail: bytes pushed, the
blocks sent, the requests and cancels received (with times), whether and when the client
closed the connection (EOF or reset) as opposed to the fake closing it itself, and any error.
All waits are bounded; FakePeer.stop() closes every socket and joins every thread with a
timeout.
"""

import collections
import hashlib
import os
import random
import select
import socket
import struct
import threading
import time

import btcommon

PSTR = b'BitTorrent protocol'
HANDSHAKE_LEN = 68
BLOCK = 16 * 1024

CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE, BITFIELD, REQUEST, PIECE, CANCEL = range(9)
PORT, EXTENDED = 9, 20
EXT_HANDSHAKE = 0                           # BEP 10: extended message id 0 is the handshake
EXT_RESERVED = bytes([0, 0, 0, 0, 0, 0x10, 0, 0])  # the BEP 10 bit, nothing else
METADATA_BLOCK = 16 * 1024                  # BEP 9: the info dict travels in 16 KiB blocks
META_REQUEST, META_DATA, META_REJECT = 0, 1, 2

HANDSHAKE_TIMEOUT = 10.0  # the client must send its handshake within this
SEND_TIMEOUT = 10.0       # a blocked sendall gives up after this
MAX_INCOMING = 1 << 20    # nothing the client sends us is this long


# --- bencode and torrents ------------------------------------------------------------------------

def bencode(obj):
    if isinstance(obj, int) and not isinstance(obj, bool):
        return b'i%de' % obj
    if isinstance(obj, str):
        obj = obj.encode('utf-8')
    if isinstance(obj, (bytes, bytearray)):
        return b'%d:' % len(obj) + bytes(obj)
    if isinstance(obj, (list, tuple)):
        return b'l' + b''.join(bencode(x) for x in obj) + b'e'
    if isinstance(obj, dict):
        items = sorted((k.encode('utf-8') if isinstance(k, str) else k, v)
                       for k, v in obj.items())
        return b'd' + b''.join(bencode(k) + bencode(v) for k, v in items) + b'e'
    raise TypeError('cannot bencode %r' % type(obj))


class Torrent:
    """A single-file torrent made here from random data: .path (the .torrent), .data,
    .info (the info dict), .info_bytes (bencoded, what the info hash covers), .info_hash
    (20 bytes), .piece_length, .piece_count, .size."""

    def __init__(self, directory, size, piece_length=256 * 1024, seed=0, name='payload.bin'):
        rnd = random.Random(seed)
        self.data = rnd.randbytes(size)
        self.size = size
        self.piece_length = piece_length
        self.piece_count = (size + piece_length - 1) // piece_length
        self.hashes = [hashlib.sha1(self.piece(i)).digest() for i in range(self.piece_count)]
        info = {'name': name, 'length': size, 'piece length': piece_length,
                'pieces': b''.join(self.hashes)}
        self.info = info
        self.info_bytes = bencode(info)
        self.info_hash = hashlib.sha1(self.info_bytes).digest()
        # An announce URL nobody listens on: the tests pass --no-tracker anyway.
        meta = {'announce': 'http://127.0.0.1:9/announce', 'info': info}
        self.path = os.path.join(directory, 'fake-%d.torrent' % seed)
        with open(self.path, 'wb') as f:
            f.write(bencode(meta))

    def piece_size(self, i):
        return min(self.piece_length, self.size - i * self.piece_length)

    def piece(self, i):
        return self.data[i * self.piece_length:i * self.piece_length + self.piece_size(i)]

    def blocks(self, i):
        """The (begin, length) of every block of piece i, as a client asks for them."""
        n = self.piece_size(i)
        return [(b, min(BLOCK, n - b)) for b in range(0, n, BLOCK)]

    @property
    def bitfield_bytes(self):
        return (self.piece_count + 7) // 8

    def full_bitfield(self):
        bits = bytearray(self.bitfield_bytes)
        for i in range(self.piece_count):
            bits[i // 8] |= 0x80 >> (i % 8)
        return bytes(bits)


# --- wire ----------------------------------------------------------------------------------------

def handshake(info_hash, peer_id, reserved=bytes(8)):
    return bytes([len(PSTR)]) + PSTR + reserved + info_hash + peer_id


def msg(msg_id, payload=b''):
    return struct.pack('>IB', 1 + len(payload), msg_id) + payload


def ext_msg(ext_id, payload):
    """A BEP 10 extended message: id 20, the extended id, then the payload."""
    return msg(EXTENDED, bytes([ext_id]) + payload)


class Closed(Exception):
    """The connection is over (either side); unwinds the Conn's loop."""


class Conn:
    """One connection, honest by default. Runs in its own thread; see the module docstring."""

    def __init__(self, peer, sock, remote):
        self.peer = peer
        self.fx = peer.fx
        self.sock = sock
        self.remote = remote
        self.t_open = time.monotonic()
        self.t_closed = None
        # Who ended it: 'eof' or 'reset' (the client), 'self' (this fake), 'stopped' (the test
        # tore the fake down), 'error' (see .error).
        self.closed_by = None
        self.error = None
        self.handshake_ok = False
        self.client_reserved = None
        self.client_peer_id = None
        # Every message the client sent after its handshake, in order: (t, id, payload), id
        # None for a keep-alive. The order is what some tests judge (what came first).
        self.messages = []
        self.interested = False
        self.am_choking = True
        self.t_choked = None           # when we choked after unchoking
        self.bytes_sent = 0            # everything written to the socket
        self.blocks_sent = []          # (t, index, begin, length)
        self.requests = []             # (t, index, begin, length), as received
        self.cancels = []              # (t, index, begin, length)
        self.haves = []                # (t, index)
        self.protocol_errors = []      # what the client sent that is not BitTorrent
        self.queue = collections.deque()
        self.inbuf = bytearray()
        self.next_send = 0.0
        self.hold = False              # True: queued requests are kept but not answered
        self.done = False

    # --- state the tests read ------------------------------------------------------------------

    @property
    def client_closed(self):
        return self.closed_by in ('eof', 'reset')

    @property
    def block_bytes_sent(self):
        return sum(b[3] for b in self.blocks_sent)

    def outstanding(self):
        """Requests received and neither answered, cancelled nor still queued to send."""
        sent = {b[1:] for b in self.blocks_sent}
        cancelled = {c[1:] for c in self.cancels}
        return [r for r in self.requests if r[1:] not in sent and r[1:] not in cancelled]

    # --- sending -------------------------------------------------------------------------------

    def send(self, data):
        if self.done:
            raise Closed()
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self._ended('reset')
            raise Closed()
        except socket.timeout:
            self._ended('error', 'send blocked for %.0f s' % SEND_TIMEOUT)
            raise Closed()
        except OSError as e:
            if self.peer.stopping:
                self._ended('stopped')
                raise Closed()
            raise
        self.bytes_sent += len(data)

    def send_msg(self, msg_id, payload=b''):
        self.send(msg(msg_id, payload))

    def choke(self):
        self.am_choking = True
        self.t_choked = time.monotonic()
        self.send_msg(CHOKE)

    def unchoke(self):
        self.am_choking = False
        self.send_msg(UNCHOKE)

    def close_self(self):
        """This fake ends the connection (a misbehaving peer walking away)."""
        self._ended('self')
        raise Closed()

    def _ended(self, who, error=None):
        if self.t_closed is None:
            self.t_closed = time.monotonic()
            self.closed_by = who
            if error:
                self.error = error
        self.done = True

    # --- hooks (override to misbehave) ---------------------------------------------------------

    def handshake_reserved(self):
        return bytes(8)

    def after_handshake(self):
        self.send_msg(BITFIELD, self.bitfield_payload())

    def bitfield_payload(self):
        return self.fx.full_bitfield()

    def on_interested(self):
        if self.am_choking and self.t_choked is None:
            self.unchoke()

    def on_request(self, index, begin, length):
        self.queue.append((index, begin, length))

    def on_cancel(self, index, begin, length):
        try:
            self.queue.remove((index, begin, length))
        except ValueError:
            pass

    def block_payload(self, index, begin, length):
        start = index * self.fx.piece_length + begin
        return self.fx.data[start:start + length]

    def after_block(self, index, begin, length):
        pass

    def on_extended(self, ext_id, payload):
        pass

    def on_tick(self):
        pass

    # --- the loop ------------------------------------------------------------------------------

    def run(self):
        try:
            self.sock.settimeout(SEND_TIMEOUT)
            self._handshake()
            self.after_handshake()
            while not self.done:
                if self.peer.stopping:
                    self._ended('stopped')
                    break
                self._serve()
                wait = 0.05
                if self.queue and not self.am_choking and not self.hold:
                    wait = min(wait, max(0.0, self.next_send - time.monotonic()))
                r, _, _ = select.select([self.sock], [], [], wait)
                if r:
                    self._read()
                self.on_tick()
        except Closed:
            pass
        except Exception as e:  # recorded for the test to report, never silently lost
            if self.peer.stopping:
                self._ended('stopped')
            else:
                self._ended('error', '%s: %s' % (type(e).__name__, e))
        finally:
            self.done = True
            if self.t_closed is None:
                self._ended('stopped')
            try:
                self.sock.close()
            except OSError:
                pass

    def _recv(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            self._ended('reset')
            raise Closed()
        except socket.timeout:
            return None
        except OSError:
            if self.peer.stopping:
                self._ended('stopped')
                raise Closed()
            raise
        if not data:
            self._ended('eof')
            raise Closed()
        return data

    def _handshake(self):
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        while len(self.inbuf) < HANDSHAKE_LEN:
            left = deadline - time.monotonic()
            if left <= 0 or self.peer.stopping:
                self._ended('error', 'no handshake from the client')
                raise Closed()
            r, _, _ = select.select([self.sock], [], [], min(left, 0.1))
            if r:
                data = self._recv()
                if data:
                    self.inbuf += data
        hs = bytes(self.inbuf[:HANDSHAKE_LEN])
        del self.inbuf[:HANDSHAKE_LEN]
        if hs[0] != len(PSTR) or hs[1:20] != PSTR:
            self._ended('error', 'bad handshake %r' % hs[:20])
            raise Closed()
        if hs[28:48] != self.fx.info_hash:
            self._ended('error', 'handshake for another info hash')
            raise Closed()
        self.client_reserved = hs[20:28]
        self.client_peer_id = hs[48:68]
        self.send(handshake(self.fx.info_hash, self.peer.peer_id, self.handshake_reserved()))
        self.handshake_ok = True
        self._parse()  # whatever came with the handshake

    def _read(self):
        data = self._recv()
        if data:
            self.inbuf += data
            self._parse()

    def _parse(self):
        while len(self.inbuf) >= 4:
            (n,) = struct.unpack('>I', self.inbuf[:4])
            if n > MAX_INCOMING:
                self.protocol_errors.append('message of %d bytes' % n)
                self._ended('error', 'client sent a %d-byte message' % n)
                raise Closed()
            if len(self.inbuf) < 4 + n:
                return
            body = bytes(self.inbuf[4:4 + n])
            del self.inbuf[:4 + n]
            self.messages.append((time.monotonic(), body[0] if n else None, body[1:]))
            if n:
                self._dispatch(body[0], body[1:])

    def _dispatch(self, mid, payload):
        now = time.monotonic()
        if mid == INTERESTED:
            self.interested = True
            self.on_interested()
        elif mid == NOT_INTERESTED:
            self.interested = False
        elif mid == HAVE and len(payload) == 4:
            self.haves.append((now, struct.unpack('>I', payload)[0]))
        elif mid in (REQUEST, CANCEL) and len(payload) == 12:
            index, begin, length = struct.unpack('>III', payload)
            if mid == REQUEST:
                self.requests.append((now, index, begin, length))
                if (index >= self.fx.piece_count or length == 0 or length > BLOCK or
                        begin + length > self.fx.piece_size(index)):
                    self.protocol_errors.append('bad request %d/%d/%d' % (index, begin, length))
                    return
                self.on_request(index, begin, length)
            else:
                self.cancels.append((now, index, begin, length))
                self.on_cancel(index, begin, length)
        elif mid == EXTENDED and payload:
            self.on_extended(payload[0], payload[1:])
        elif mid in (CHOKE, UNCHOKE, BITFIELD, PORT, EXTENDED):
            pass  # nothing to do for a seeder that does not download
        else:
            self.protocol_errors.append('message id %d, %d bytes' % (mid, len(payload)))

    def _serve(self):
        """Sends queued blocks while unchoked, at most `rate` bytes/s, a few per turn."""
        rate = self.peer.rate
        for _ in range(8):
            if not self.queue or self.am_choking or self.hold or self.done:
                return
            now = time.monotonic()
            if rate and now < self.next_send:
                return
            index, begin, length = self.queue.popleft()
            data = self.block_payload(index, begin, length)
            self.send(msg(PIECE, struct.pack('>II', index, begin) + data))
            self.blocks_sent.append((time.monotonic(), index, begin, len(data)))
            if rate:
                self.next_send = max(now, self.next_send) + length / rate
            self.after_block(index, begin, length)


class MagnetConn(Conn):
    """A seeder for a magnet link, as the CodeCrafters course's peer behaves. Options (FakePeer
    keyword arguments): ut_metadata (its BEP 9 extended id, default 3), metadata (the bytes it
    serves as the info dict, default the torrent's own), metadata_reply ('data' or 'reject'),
    metadata_size (what its extended handshake announces, default len(metadata)).

    Recorded for the tests: client_ext (the client's extended handshake, decoded),
    client_ut_metadata (the id the client gave ut_metadata, which this peer must use for the
    blocks it sends), metadata_requests [(t, piece)], metadata_sent [(t, piece, msg_type)]."""

    def __init__(self, peer, sock, remote):
        super().__init__(peer, sock, remote)
        opts = peer.opts
        self.my_ut_metadata = opts.get('ut_metadata', 3)
        self.metadata = opts.get('metadata', self.fx.info_bytes)
        self.metadata_reply = opts.get('metadata_reply', 'data')
        self.metadata_size = opts.get('metadata_size', len(self.metadata))
        self.client_ext = None
        self.client_ut_metadata = None
        self.metadata_requests = []
        self.metadata_sent = []

    def handshake_reserved(self):
        return EXT_RESERVED

    def after_handshake(self):
        # The course's peer: BITFIELD first (it may come before the client can know the piece
        # count), then the extended handshake, without waiting for anything from the client.
        self.send_msg(BITFIELD, self.bitfield_payload())
        self.send(ext_msg(EXT_HANDSHAKE, bencode({'m': {'ut_metadata': self.my_ut_metadata},
                                                  'metadata_size': self.metadata_size})))

    def on_extended(self, ext_id, payload):
        if ext_id == EXT_HANDSHAKE:
            self._on_ext_handshake(payload)
        elif ext_id == self.my_ut_metadata:
            self._on_metadata_msg(payload)
        else:
            self.protocol_errors.append('extended message with unknown id %d' % ext_id)

    def _on_ext_handshake(self, payload):
        try:
            d = btcommon.bdecode(payload)
        except (btcommon.BDecodeError, ValueError) as e:
            self.protocol_errors.append('extended handshake not bencoded: %s' % e)
            return
        if not isinstance(d, dict) or not isinstance(d.get(b'm'), dict):
            self.protocol_errors.append('extended handshake without an m dict: %r' % payload)
            return
        self.client_ext = d
        ut = d[b'm'].get(b'ut_metadata')
        if isinstance(ut, int) and 0 < ut < 256:
            self.client_ut_metadata = ut
        else:
            self.protocol_errors.append('extended handshake: bad ut_metadata %r' % (ut,))

    def _on_metadata_msg(self, payload):
        try:
            d, end = btcommon.bdecode_prefix(payload)
        except (btcommon.BDecodeError, ValueError) as e:
            self.protocol_errors.append('ut_metadata message not bencoded: %s' % e)
            return
        if not isinstance(d, dict) or d.get(b'msg_type') != META_REQUEST or \
                not isinstance(d.get(b'piece'), int) or end != len(payload):
            self.protocol_errors.append('ut_metadata message is not a request: %r' % payload)
            return
        piece = d[b'piece']
        self.metadata_requests.append((time.monotonic(), piece))
        self.on_metadata_request(piece)

    def on_metadata_request(self, piece):
        if self.client_ut_metadata is None:
            self.protocol_errors.append('metadata request before an extended handshake with '
                                        'ut_metadata: no id to answer with')
            return
        start = piece * METADATA_BLOCK
        if self.metadata_reply == 'reject' or piece < 0 or start >= len(self.metadata):
            self.send(ext_msg(self.client_ut_metadata,
                              bencode({'msg_type': META_REJECT, 'piece': piece})))
            self.metadata_sent.append((time.monotonic(), piece, META_REJECT))
            return
        head = bencode({'msg_type': META_DATA, 'piece': piece,
                        'total_size': len(self.metadata)})
        self.send(ext_msg(self.client_ut_metadata,
                          head + self.metadata[start:start + METADATA_BLOCK]))
        self.metadata_sent.append((time.monotonic(), piece, META_DATA))


class FakePeer:
    """Listens on host (127.0.0.x) and runs conn_class for every connection it accepts.
    rate: bytes/s per connection for the blocks it sends (None: as fast as it can).
    Keyword options are kept in .opts for the Conn subclasses to read."""

    def __init__(self, fx, host, conn_class=Conn, rate=None, **opts):
        assert host.startswith('127.'), 'fake peers stay on loopback'
        self.fx = fx
        self.host = host
        self.conn_class = conn_class
        self.rate = rate
        self.opts = opts
        self.peer_id = b'-FK0001-' + os.urandom(12)
        self.conns = []
        self.stopping = False
        self._threads = []
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True,
                                          name='fakepeer-%s' % self.address)

    @property
    def address(self):
        return '%s:%d' % (self.host, self.port)

    def start(self):
        self._accepter.start()
        return self

    def _accept_loop(self):
        while not self.stopping:
            try:
                s, remote = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = self.conn_class(self, s, remote)
            th = threading.Thread(target=c.run, daemon=True, name='fakeconn-%s' % self.address)
            with self._lock:
                self.conns.append(c)
                self._threads.append(th)
            th.start()

    def stop(self, timeout=5.0):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        self._accepter.join(max(0.1, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
            conns = list(self.conns)
        for c in conns:
            if not c.done:
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for th in threads:
            th.join(max(0.1, deadline - time.monotonic()))
        alive = [th for th in threads if th.is_alive()]
        if alive:
            raise RuntimeError('%d fake peer threads did not stop' % len(alive))

    def settle(self, timeout=3.0):
        """Waits (bounded) until every connection has noticed its end; call once the client
        has exited, which closes them all. Returns True if they all did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.done for c in list(self.conns)):
                return True
            time.sleep(0.01)
        return False

    # --- totals over every connection ----------------------------------------------------------

    def handshaken(self):
        return [c for c in list(self.conns) if c.handshake_ok]

    @property
    def bytes_sent(self):
        return sum(c.bytes_sent for c in list(self.conns))

    @property
    def block_bytes_sent(self):
        return sum(c.block_bytes_sent for c in list(self.conns))

    @property
    def requests(self):
        return [r for c in list(self.conns) for r in c.requests]

    def errors(self):
        return [(c.error, c.protocol_errors) for c in list(self.conns)
                if c.error or c.protocol_errors]

    def describe(self):
        out = []
        conns = list(self.conns)
        for i, c in enumerate(conns[:6]):
            out.append('#%d hs=%s closed_by=%s after %.2fs sent=%d blocks=%d reqs=%d '
                       'cancels=%d err=%s proto=%s' % (
                           i, c.handshake_ok, c.closed_by,
                           (c.t_closed or time.monotonic()) - c.t_open, c.bytes_sent,
                           len(c.blocks_sent), len(c.requests), len(c.cancels), c.error,
                           c.protocol_errors[:3]))
        if len(conns) > 6:
            out.append('... %d connections in all' % len(conns))
        return '%s [%s]' % (self.address, '; '.join(out) or 'no connections')
