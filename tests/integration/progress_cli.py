"""Progress output of `torrent download` and `seed`: a line redrawn on a terminal and cut to
its width (a pty of 50 columns, and one resized while the line is drawn), plain lines at most
every 5 s otherwise, JSON objects once a second, nothing with --quiet; the phase before the first
byte (a tracker that never answers, a peer that never handshakes, the recheck); a multi-file
torrent's per-file summary (complete, and interrupted half-way); the upload summary of `seed`
after libtorrent downloaded from it. Downloads are slowed with --max-down so that there is
progress to show."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unicodedata
import unittest

import ownseed
import swarm

TORRENT = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else None
SIZE = 5 << 20


ESCAPE = re.compile(r'\x1b\[([0-9;]*)([A-Za-z])')


class Screen:
    """A small terminal: autowrap with the deferred wrap of xterm and VT100, carriage return,
    line feed, ESC[K (erase to the end of the line) and ESC[nA (cursor up): what our progress
    output uses. A line that wraps leaves its first part behind at the next redraw: lines()
    gives the lines as written (rows joined where one wrapped into the next), wrapped() those
    that wrapped."""

    def __init__(self, cols):
        self.cols = cols
        self.rows = [[]]
        self.row = self.col = 0
        self.pending = False
        self.continued = set()  # rows that a wrap started

    def resize(self, cols):
        self.cols = cols
        self.rows = [r[:cols] for r in self.rows]
        self.col = min(self.col, cols - 1)
        self.pending = False

    def _down(self):
        self.row += 1
        if self.row == len(self.rows):
            self.rows.append([])

    def _put(self, ch):
        width = 2 if unicodedata.east_asian_width(ch) in 'WF' else 1
        if self.pending or self.col + width > self.cols:
            self._down()
            self.continued.add(self.row)
            self.col = 0
            self.pending = False
        line = self.rows[self.row]
        while len(line) < self.col:
            line.append(' ')
        line[self.col:self.col + width] = [ch] + [''] * (width - 1)
        if self.col + width >= self.cols:
            self.col = self.cols - 1
            self.pending = True
        else:
            self.col += width

    def feed(self, text):
        i = 0
        while i < len(text):
            m = ESCAPE.match(text, i)
            if m:
                n = int(m.group(1) or 1)
                if m.group(2) == 'K':
                    del self.rows[self.row][self.col:]
                elif m.group(2) == 'A':
                    self.row = max(0, self.row - n)
                self.pending = False
                i = m.end()
                continue
            ch = text[i]
            i += 1
            if ch == '\r':
                self.col, self.pending = 0, False
            elif ch == '\n':
                self._down()
                self.pending = False
            elif ch >= ' ':
                self._put(ch)

    def _logical(self):
        out = []
        for i, r in enumerate(self.rows):
            text = ''.join(r).rstrip()
            if i in self.continued and out:
                out[-1] = (out[-1][0] + text, True)
            else:
                out.append((text, False))
        return out

    def lines(self):
        return [t for t, _ in self._logical()]

    def wrapped(self):
        return [t for t, w in self._logical() if w]


def clean(text):
    """Fails on a sanitizer report in a run's output (UBSan reports and goes on)."""
    swarm.check_sanitizers(text.encode('utf-8', 'replace'))
    return text


def set_size(fd, cols, rows=24):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))


def run_in_pty(argv, cols, timeout=30, on_output=None):
    """Runs argv with stderr on a pty of `cols` columns; returns (exit status, [(time, text)]).
    on_output(master fd, chunks so far) is called after each read (to resize the pty)."""
    master, slave = pty.openpty()
    set_size(slave, cols)
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append((time.monotonic(), chunk.decode('utf-8', 'replace')))
                if on_output:
                    on_output(master, chunks)
            elif p.poll() is not None:
                break
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        os.close(master)
    clean(''.join(t for _, t in chunks))
    return p.returncode, chunks


def redraws(text):
    """The pieces of output between carriage returns and line feeds, escapes removed: each is
    what one draw put on one line."""
    return [ESCAPE.sub('', t) for t in re.split(r'[\r\n]', text) if ESCAPE.sub('', t)]


def wait_listening(ip, port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError('nothing listens on %s:%d' % (ip, port))


class ProgressTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data, cls.meta = ownseed.make_payload(TORRENT, cls.tmp.name, SIZE)
        cls.seed, cls.peer = ownseed.start_seed(TORRENT, cls.meta, cls.data, '127.0.9.21')

    @classmethod
    def tearDownClass(cls):
        ownseed.stop(cls.seed)
        cls.tmp.cleanup()

    def argv(self, *extra):
        out = os.path.join(self.tmp.name, 'out-%d' % time.monotonic_ns())
        return [TORRENT, 'download', '--no-tracker', '--peer', self.peer, '-o', out,
                '--max-down', '2M', *extra, self.meta]

    def test_terminal_line_redrawn(self):
        master, slave = pty.openpty()
        p = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        text = b''
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                r, _, _ = select.select([master], [], [], 0.5)
                if r:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    text += chunk
                elif p.poll() is not None:
                    break
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
            os.close(master)
        self.assertEqual(p.returncode, 0, text)
        redraws = text.count(b'\r')
        self.assertGreaterEqual(redraws, 6, text)  # four times a second over ~2.5 s
        self.assertIn(b'\x1b[K', text)
        for part in (b'%', b'MiB', b'/s', b'ETA', b'peers 1 (1 unchoking)'):
            self.assertIn(part, text)
        self.assertIn(b'100.0%', text)
        self.assertIn(b'torrent: received 5.0 MiB', text)

    def test_plain_lines_not_on_a_terminal(self):
        r = subprocess.run(self.argv(), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stderr.splitlines()
        self.assertNotIn('\r', r.stderr)
        self.assertTrue(all(l.startswith('torrent: ') for l in lines), lines)
        progress = [l for l in lines if '%' in l]
        # ~2.5 s: the first line, maybe none in between (5 s apart at most), the final one.
        self.assertGreaterEqual(len(progress), 1)
        self.assertLessEqual(len(progress), 3)
        self.assertIn('100.0%', progress[-1])
        self.assertTrue(lines[-1].startswith('torrent: received 5.0 MiB'), lines)

    def test_json_every_second(self):
        r = subprocess.run(self.argv('--progress=json'), capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        objs = [json.loads(l) for l in r.stderr.splitlines()]
        ticks = [o for o in objs if 'percent' in o]
        self.assertGreaterEqual(len(ticks), 2)
        for a, b in zip(ticks, ticks[1:]):
            self.assertGreaterEqual(b['done'], a['done'])
            self.assertGreater(b['elapsed'], a['elapsed'])
            self.assertLess(b['elapsed'] - a['elapsed'], 1.6)
        self.assertEqual(objs[-1]['event'], 'summary')
        self.assertEqual(objs[-1]['received'], SIZE)
        self.assertEqual(objs[-1]['peers'][0]['address'], self.peer)

    def test_quiet(self):
        r = subprocess.run(self.argv('--quiet'), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, '')
        self.assertTrue(r.stdout.startswith('Downloaded '))

    def test_fits_a_narrow_terminal(self):
        rc, chunks = run_in_pty(self.argv(), 50)
        text = ''.join(t for _, t in chunks)
        self.assertEqual(rc, 0, text)
        screen = Screen(50)
        screen.feed(text)
        # Only the summary (written once, never redrawn) may be longer than the terminal.
        self.assertEqual([l for l in screen.wrapped() if not l.startswith('torrent: ')], [],
                         text)
        draws = redraws(text)
        self.assertGreaterEqual(len(draws), 6, text)
        progress = [d for d in draws if '%' in d]
        self.assertTrue(progress, text)
        # Cut to 49 columns (one left free), not merely short: the full line is ~67 long.
        self.assertTrue(all(len(d) <= 49 for d in progress), progress)
        self.assertTrue(any(len(d) == 49 for d in progress), progress)
        # After the run: the last progress line, then the summary; nothing left behind.
        shown = [l for l in screen.lines() if l]
        self.assertEqual(len([l for l in shown if '%' in l]), 1, shown)
        self.assertTrue(shown[0].startswith('100.0%'), shown)
        self.assertTrue(shown[-1].startswith('torrent: received 5.0 MiB'), shown)

    def test_follows_a_resize(self):
        resized = []

        def shrink(master, chunks):
            text = ''.join(t for _, t in chunks)
            if not resized and 'ETA' in text:
                set_size(master, 50)
                resized.append(time.monotonic())

        argv = self.argv()
        argv[argv.index('2M')] = '1M'  # ~5 s: several redraws after the resize
        rc, chunks = run_in_pty(argv, 120, on_output=shrink)
        text = ''.join(t for _, t in chunks)
        self.assertEqual(rc, 0, text)
        self.assertTrue(resized, text)
        before = redraws(''.join(t for when, t in chunks if when <= resized[0]))
        # A redraw written before the resize may still be in flight: look from 0.5 s on.
        after = redraws(''.join(t for when, t in chunks if when > resized[0] + 0.5))
        self.assertTrue(any(len(d) > 50 for d in before if '%' in d), before)
        progress_after = [d for d in after if '%' in d]
        self.assertGreaterEqual(len(progress_after), 3, after)
        self.assertTrue(all(len(d) <= 49 for d in progress_after), progress_after)

    def test_phase_waiting_for_trackers(self):
        # A "tracker" that accepts and never answers: the line says what it waits for.
        with socket.socket() as silent:
            silent.bind(('127.0.9.22', 0))
            silent.listen()
            url = 'http://127.0.9.22:%d/announce' % silent.getsockname()[1]
            meta = os.path.join(self.tmp.name, 'tracked.torrent')
            subprocess.run([TORRENT, 'create', '-q', '-l', '256K', '-a', url, '-o', meta,
                            self.data], check=True, capture_output=True, timeout=30)
            out = os.path.join(self.tmp.name, 'tracked-out')
            r = subprocess.run([TORRENT, 'download', '--progress=json', '--stall-timeout', '3',
                                '-o', out, meta], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, clean(r.stderr))
        ticks = [json.loads(l) for l in r.stderr.splitlines() if l.startswith('{"done"')]
        self.assertTrue(ticks, r.stderr)
        self.assertEqual({t.get('phase') for t in ticks}, {'waiting for trackers'}, r.stderr)

    def test_phase_connecting(self):
        # A "peer" that accepts and never sends its handshake: connecting, in the terminal line.
        with socket.socket() as silent:
            silent.bind(('127.0.9.23', 0))
            silent.listen()
            peer = '127.0.9.23:%d' % silent.getsockname()[1]
            out = os.path.join(self.tmp.name, 'connecting-out')
            rc, chunks = run_in_pty([TORRENT, 'download', '--no-tracker', '--peer', peer,
                                     '--stall-timeout', '2', '-o', out, self.meta], 80)
        text = ''.join(t for _, t in chunks)
        self.assertNotEqual(rc, 0, text)
        draws = redraws(text)
        self.assertIn('connecting to 1 peer  0.0%  0 B of 5.0 MiB', draws, text)
        self.assertNotIn('ETA', text)

    def test_checking_reaches_100(self):
        # seed rechecks its data before serving: the checking line ends at 100% on its own line.
        rc, chunks = run_in_pty([TORRENT, 'seed', '--no-tracker', '--listen', '127.0.9.24',
                                 '-p', str(ownseed.free_port('127.0.9.24')), '--seed-time', '1',
                                 self.meta, self.data], 80)
        text = ''.join(t for _, t in chunks)
        self.assertEqual(rc, 0, text)
        screen = Screen(80)
        screen.feed(text)
        shown = [l for l in screen.lines() if l]
        self.assertIn('checking 100% (20 of 20 pieces)', shown, text)
        self.assertTrue(shown[-1].startswith('torrent: uploaded 0 B to 0 peers in '), shown)
        self.assertNotIn('received', text)


MULTI = {'a.bin': 3 << 20, 'sub/b.bin': 1 << 20, 'c.txt': 10}


class MultiFileTest(unittest.TestCase):
    """A multi-file torrent from our own seed: the summary lists each file's state."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.src = os.path.join(cls.tmp.name, 'multi')
        for name, size in MULTI.items():
            os.makedirs(os.path.dirname(os.path.join(cls.src, name)), exist_ok=True)
            with open(os.path.join(cls.src, name), 'wb') as f:
                f.write(os.urandom(size))
        cls.meta = os.path.join(cls.tmp.name, 'multi.torrent')
        subprocess.run([TORRENT, 'create', '-q', '-l', '256K', '-o', cls.meta, cls.src],
                       check=True, capture_output=True, timeout=30)
        cls.seed, cls.peer = ownseed.start_seed(TORRENT, cls.meta, cls.src, '127.0.9.25')

    @classmethod
    def tearDownClass(cls):
        ownseed.stop(cls.seed)
        cls.tmp.cleanup()

    def argv(self, *extra):
        out = os.path.join(self.tmp.name, 'out-%d' % time.monotonic_ns())
        return [TORRENT, 'download', '--no-tracker', '--peer', self.peer, '-o', out, *extra,
                self.meta]

    def interrupted(self, *extra):
        """Runs a slow download, interrupts it once 1 MiB is verified; returns its stderr."""
        p = subprocess.Popen(self.argv('--max-down', '1M', *extra), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            time.sleep(2)  # ~2 MiB of 4 MiB at 1 MiB/s
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=15)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertNotEqual(p.returncode, 0, err)
        return clean(err)

    def test_complete_summary_lists_each_file(self):
        r = subprocess.run(self.argv(), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, clean(r.stderr))
        lines = r.stderr.splitlines()
        i = next(k for k, l in enumerate(lines) if l.startswith('torrent: received 4.0 MiB'))
        self.assertEqual(lines[i + 1], 'torrent: 3 of 3 files complete', lines)
        files = lines[i + 2:]
        self.assertEqual(len(files), 3, lines)
        for name, line in zip(sorted(MULTI), files):
            self.assertRegex(line, r'^torrent:   complete +[0-9.]+ (B|KiB|MiB)  %s$' % name)

    def test_interrupted_summary_shows_incomplete_files(self):
        err = self.interrupted()
        lines = err.splitlines()
        i = next(k for k, l in enumerate(lines) if 'files complete' in l)
        m = re.match(r'torrent: (\d) of 3 files complete$', lines[i])
        self.assertTrue(m and int(m.group(1)) < 3, lines)
        files = lines[i + 1:i + 4]
        self.assertTrue(any(re.search(r'incomplete +\d+\.\d%', l) for l in files), lines)
        self.assertEqual(sorted(l.split()[-1] for l in files), sorted(MULTI), lines)
        self.assertIn('interrupted', lines[-1])

    def test_interrupted_json_files_add_up(self):
        err = self.interrupted('--progress=json')
        summary = json.loads([l for l in err.splitlines() if '"summary"' in l][-1])
        files = summary['files']
        self.assertEqual(sorted(f['path'] for f in files), sorted(MULTI))
        for f in files:
            self.assertEqual(f['length'], MULTI[f['path']])
            self.assertLessEqual(f['done'], f['length'])
        # Each file's share of the verified pieces adds up to what was verified.
        self.assertEqual(sum(f['done'] for f in files), summary['verified'], summary)
        self.assertLess(summary['verified'], summary['total'], summary)
        self.assertGreater(summary['verified'], 0, summary)

    def test_verbose_shows_bytes_per_file(self):
        # On a pipe with -v: under a progress line, the files in progress with their bytes; in
        # the summary every file with its bytes.
        err = self.interrupted('-v')
        lines = err.splitlines()
        i = next(k for k, l in enumerate(lines) if 'files complete' in l)
        during = [l for l in lines[:i] if re.match(r'torrent:   incomplete', l)]
        self.assertTrue(during, err)
        files = lines[i + 1:i + 4]
        self.assertEqual(sorted(l.split()[-1] for l in files), sorted(MULTI), err)
        for line in during + files:
            self.assertRegex(line, r'^torrent:   (complete|incomplete +[0-9.]+%) +[0-9.]+ '
                             r'(B|KiB|MiB) of +[0-9.]+ (B|KiB|MiB)  [a-z/.]+$')


class SeedSummaryTest(unittest.TestCase):
    """`seed` ends with what it uploaded, after libtorrent downloaded from it."""

    def test_uploaded_to_libtorrent(self):
        import upload_common
        with tempfile.TemporaryDirectory() as tmp:
            data, meta = ownseed.make_payload(TORRENT, tmp, SIZE)
            ip = '127.0.9.26'
            port = ownseed.free_port(ip)
            seed = subprocess.Popen([TORRENT, 'seed', '--no-tracker', '--listen', ip, '-p',
                                     str(port), meta, data], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            try:
                wait_listening(ip, port)
                session, _ = upload_common.lt_session('127.0.9.27', encryption=False)
                out = os.path.join(tmp, 'lt')
                os.makedirs(out)
                h = upload_common.lt_add(session, swarm.Meta(meta), out)
                h.connect_peer((ip, port))
                upload_common.lt_wait_seeding(session, h, 30)
                del h, session
            finally:
                seed.send_signal(signal.SIGINT)
                try:
                    _, err = seed.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    seed.kill()
                    _, err = seed.communicate()
        self.assertEqual(seed.returncode, 0, clean(err))
        self.assertNotIn('received', err)
        last = err.splitlines()[-1]
        self.assertRegex(last, r'^torrent: uploaded 5\.0 MiB to 1 peer in \d+ s, ratio 1\.00$')


if __name__ == '__main__':
    unittest.main()
