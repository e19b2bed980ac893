"""Shared helpers for the integration tests (stdlib only).

Each test script is run by meson as
    /usr/bin/python3 tests/integration/<script>.py <path to the torrent binary>
and imports this module from its own directory.
"""

import atexit
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

TORRENT = None  # path of the binary under test, set by main()
TIMEOUT = 20  # seconds for any single run of the binary
DATA_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data'))

# Every run of the binary from any test is hermetic: the DHT is on by default, and without this
# it would contact the public bootstrap routers and read and write the user's DHT state file.
# `none` means no router at all; a test that wants its own loopback nodes passes --dht-bootstrap
# (or sets the variable in the environment of that one run). Every helper that builds an
# environment for the binary starts from os.environ, so these reach them all.
os.environ['TORRENT_DHT_BOOTSTRAP'] = 'none'
STATE_HOME = tempfile.mkdtemp(prefix='bt-test-state-')
os.environ['XDG_STATE_HOME'] = STATE_HOME
atexit.register(shutil.rmtree, STATE_HOME, True)


# --- bencode, written independently of the C code ----------------------------------------------

def bencode(obj, sort_keys=True):
    """Encode bytes/str/int/list/dict. Dict keys may be str or bytes; with sort_keys=False the
    dict's own order is kept (to craft torrents with unsorted keys)."""
    if isinstance(obj, bool):
        raise TypeError('bool is not bencodable')
    if isinstance(obj, int):
        return b'i%de' % obj
    if isinstance(obj, str):
        obj = obj.encode('utf-8')
    if isinstance(obj, (bytes, bytearray)):
        return b'%d:' % len(obj) + bytes(obj)
    if isinstance(obj, (list, tuple)):
        return b'l' + b''.join(bencode(x, sort_keys) for x in obj) + b'e'
    if isinstance(obj, dict):
        items = [(k.encode('utf-8') if isinstance(k, str) else bytes(k), v) for k, v in obj.items()]
        if sort_keys:
            items.sort(key=lambda kv: kv[0])
        return b'd' + b''.join(bencode(k) + bencode(v, sort_keys) for k, v in items) + b'e'
    if isinstance(obj, Raw):
        return obj.data
    raise TypeError('cannot bencode %r' % type(obj))


class Raw:
    """Pre-encoded bytes inserted verbatim by bencode()."""

    def __init__(self, data):
        self.data = data


class BDecodeError(ValueError):
    pass


def _decode(data, i):
    """Returns (value, end). Dicts become dicts with bytes keys; for every dict, the raw byte span
    of each value is kept in a parallel attribute via SpanDict."""
    if i >= len(data):
        raise BDecodeError('end of input at %d' % i)
    c = data[i:i + 1]
    if c == b'i':
        j = data.index(b'e', i)
        return int(data[i + 1:j]), j + 1
    if c == b'l':
        i += 1
        out = []
        while data[i:i + 1] != b'e':
            v, i = _decode(data, i)
            out.append(v)
        return out, i + 1
    if c == b'd':
        i += 1
        out = SpanDict()
        while data[i:i + 1] != b'e':
            k, i = _decode(data, i)
            start = i
            v, i = _decode(data, i)
            out[k] = v
            out.spans[k] = (start, i)
        return out, i + 1
    if c.isdigit():
        j = data.index(b':', i)
        n = int(data[i:j])
        if j + 1 + n > len(data):
            raise BDecodeError('string past end')
        return data[j + 1:j + 1 + n], j + 1 + n
    raise BDecodeError('unexpected %r at %d' % (c, i))


class SpanDict(dict):
    def __init__(self):
        super().__init__()
        self.spans = {}


def bdecode(data):
    v, end = _decode(data, 0)
    if end != len(data):
        raise BDecodeError('trailing data')
    return v


def bdecode_prefix(data):
    """Decodes the one value at the start of `data` and returns (value, end): for messages
    where a bencoded dict is followed by raw bytes (a BEP 9 metadata block)."""
    return _decode(data, 0)


def info_hash(data):
    """SHA-1 over the raw bytes of the root dictionary's 'info' value, as stored."""
    root = bdecode(data)
    start, end = root.spans[b'info']
    return hashlib.sha1(data[start:end]).hexdigest()


# --- running the binary -----------------------------------------------------------------------

def run(*args, input=None, timeout=TIMEOUT):
    """Runs the binary; returns CompletedProcess with bytes stdout/stderr."""
    return subprocess.run([TORRENT, *args], input=input if input is not None else b'',
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def run_hermetic(test, args, tmp, timeout, about=lambda: ''):
    """Runs the binary with no DHT router and its state in tmp; past timeout it is killed by
    its PID and test fails with its stderr and about(). Returns (returncode, stdout, stderr)."""
    env = dict(os.environ, TORRENT_DHT_BOOTSTRAP='none', XDG_STATE_HOME=tmp)
    proc = subprocess.Popen([TORRENT, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    try:
        so, se = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        so, se = proc.communicate(timeout=10)
        test.fail('torrent did not exit within %.0f s: %s %r' % (timeout, about(), se[-2000:]))
    return proc.returncode, so, se


class CliTestCase(unittest.TestCase):
    maxDiff = None

    def assertOk(self, p, msg=None):
        """Exit 0, valid UTF-8 on stdout ending in a newline, nothing on stderr."""
        ctx = '%s; stderr=%r' % (msg or '', p.stderr[:500])
        self.assertEqual(p.returncode, 0, ctx)
        self.assertEqual(p.stderr, b'', ctx)
        self.assertTrue(p.stdout.endswith(b'\n'), ctx)
        p.stdout.decode('utf-8')  # must be valid UTF-8

    def assertFails(self, p, prefix, code=2, msg=None):
        """Exit `code`, nothing on stdout, exactly one stderr line starting with `prefix`.
        Returns that line (str, without the newline)."""
        ctx = '%s; rc=%s stdout=%r stderr=%r' % (msg or '', p.returncode, p.stdout[:200],
                                                  p.stderr[:500])
        self.assertEqual(p.returncode, code, ctx)
        self.assertEqual(p.stdout, b'', ctx)
        self.assertTrue(p.stderr.endswith(b'\n'), ctx)
        self.assertEqual(p.stderr.count(b'\n'), 1, ctx)
        line = p.stderr[:-1].decode('utf-8', 'surrogateescape')
        self.assertTrue(line.startswith(prefix), ctx)
        return line


def main():
    """Entry point: takes the binary from argv[1] and runs unittest on the rest."""
    global TORRENT
    if len(sys.argv) < 2:
        sys.exit('usage: %s <path to torrent binary> [unittest args]' % sys.argv[0])
    TORRENT = os.path.abspath(sys.argv[1])
    if not os.access(TORRENT, os.X_OK):
        sys.exit('not an executable: %s' % TORRENT)
    prog = unittest.main(module='__main__', argv=[sys.argv[0]] + sys.argv[2:], verbosity=2,
                         exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
