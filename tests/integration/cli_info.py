#!/usr/bin/python3
"""Integration tests for `torrent info`: the exact first block, --json, option order, raw-bytes
info hash, BEP 12/19/47/52 handling, every rejection, truncation at every byte.

Expected values are computed here, independently (a small bencode decoder and hashlib).

Usage: cli_info.py <path to torrent binary>
"""

import concurrent.futures
import hashlib
import json
import os
import random
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
from btcommon import bdecode, bencode, info_hash, run  # noqa: E402

ERR = 'torrent: info: '
EXAMPLE = os.path.join(btcommon.DATA_DIR, 'example.torrent')
MULTI = os.path.join(btcommon.DATA_DIR, 'multi.torrent')

RND = random.Random(2024)


def rand_bytes(n):
    return bytes(RND.getrandbits(8) for _ in range(n))


def s(b):
    """bytes from the torrent -> the str the binary's JSON gives (surrogateescape)."""
    return b.decode('utf-8', 'surrogateescape')


def expected(data):
    """Everything `info` should report, computed from the raw bytes."""
    root = bdecode(data)
    info = root[b'info']
    plen = info[b'piece length']
    pieces = info[b'pieces']
    if b'files' in info:
        files = [(b'/'.join(f[b'path']), f[b'length'], b'p' in f.get(b'attr', b''))
                 for f in info[b'files']]
        multi = True
    else:
        files = [(info[b'name'], info[b'length'], False)]
        multi = False
    tiers = [[s(u) for u in t] for t in root.get(b'announce-list', [])]
    tracker = s(root[b'announce']) if b'announce' in root else (tiers[0][0] if tiers else None)
    if not tiers and b'announce' in root:
        tiers = [[tracker]]
    ws = root.get(b'url-list', [])
    if isinstance(ws, bytes):
        ws = [ws]
    return {
        'tracker': tracker,
        'length': sum(f[1] for f in files),
        'info_hash': info_hash(data),
        'piece_length': plen,
        'piece_hashes': [pieces[i:i + 20].hex() for i in range(0, len(pieces), 20)],
        'name': s(info[b'name']),
        'piece_count': len(pieces) // 20,
        'private': info.get(b'private', 0) == 1,
        'creation_date': root.get(b'creation date'),
        'created_by': s(root[b'created by']) if b'created by' in root else None,
        'comment': s(root[b'comment']) if b'comment' in root else None,
        'trackers': tiers,
        'web_seeds': [s(u) for u in ws],
        'multi_file': multi,
        'files': [{'path': s(p), 'length': n, 'pad': pad} for p, n, pad in files],
    }


# --- torrents built here ----------------------------------------------------------------------

PLEN = 16384


def single_info(length=40000, **over):
    info = {'name': 'a.bin', 'piece length': PLEN, 'length': length}
    info.update(over)
    if 'pieces' not in info:
        info['pieces'] = rand_bytes(20 * -(-length // PLEN))
    return info


def multi_info(files=None, **over):
    if files is None:
        files = [{'length': 20000, 'path': ['d', 'x.bin']}, {'length': 20001, 'path': ['y.bin']}]
    info = {'name': 'dir', 'piece length': PLEN, 'files': files}
    info.update(over)
    if 'pieces' not in info:
        total = sum(f.get('length', 0) for f in files)
        info['pieces'] = rand_bytes(20 * -(-total // PLEN))
    return info


def torrent(info, **root):
    d = {'announce': 'http://127.0.0.1:6969/announce', 'info': info}
    d.update({k.replace('_', ' '): v for k, v in root.items()})
    return bencode(d)


class InfoTestCase(btcommon.CliTestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def write(self, data, name='t.torrent'):
        path = os.path.join(self.tmp, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def info_text(self, path):
        p = run('info', path)
        self.assertOk(p, path)
        return p.stdout.decode('utf-8').split('\n')[:-1]

    def info_json(self, path):
        p = run('info', '--json', path)
        self.assertOk(p, path)
        self.assertEqual(p.stdout.count(b'\n'), 1, 'JSON is not one line')
        return json.loads(p.stdout.decode('utf-8'))

    def check_all(self, data, path):
        """Compares text and JSON output of `info` with what we compute ourselves."""
        exp = expected(data)
        lines = self.info_text(path)
        n = exp['piece_count']
        self.assertEqual(lines[0], 'Tracker URL: %s' % (exp['tracker'] or '(none)'))
        self.assertEqual(lines[1], 'Length: %d' % exp['length'])
        self.assertEqual(lines[2], 'Info Hash: %s' % exp['info_hash'])
        self.assertEqual(lines[3], 'Piece Length: %d' % exp['piece_length'])
        self.assertEqual(lines[4], 'Piece Hashes:')
        self.assertEqual(lines[5:5 + n], exp['piece_hashes'])
        for line in lines[5:5 + n]:
            self.assertRegex(line, '^[0-9a-f]{40}$')
        rest = '\n'.join(lines[5 + n:])
        if n < 1000:  # the rest must not be more hashes
            self.assertFalse(rest.startswith(exp['piece_hashes'][0]) if n else False)
        # further lines show what a user needs: name, count, trackers, web seeds, files
        self.assertIn(exp['name'], rest)
        self.assertIn(str(n), rest)
        for tier in exp['trackers']:
            for url in tier:
                self.assertIn(url, rest)
        for url in exp['web_seeds']:
            self.assertIn(url, rest)
        if exp['comment']:
            self.assertIn(exp['comment'], rest)
        if exp['created_by']:
            self.assertIn(exp['created_by'], rest)
        if exp['multi_file']:
            for f in exp['files']:
                if not f['pad']:
                    self.assertIn(f['path'], rest)
                    self.assertRegex(rest, r'\b%d\b' % f['length'])

        js = self.info_json(path)
        for key, want in exp.items():
            if key == 'files':
                continue
            self.assertIn(key, js)
            self.assertEqual(js[key], want, key)
        self.assertIn('files', js)
        self.assertEqual([{k: f[k] for k in ('path', 'length', 'pad')} for f in js['files']],
                         exp['files'])
        off = 0
        for f in js['files']:
            if 'offset' in f:
                self.assertEqual(f['offset'], off)
            off += f['length']
        # JSON agrees with the text block
        self.assertEqual(lines[0], 'Tracker URL: %s' % (js['tracker'] or '(none)'))
        self.assertEqual(lines[1], 'Length: %d' % js['length'])
        self.assertEqual(lines[2], 'Info Hash: %s' % js['info_hash'])
        self.assertEqual(lines[3], 'Piece Length: %d' % js['piece_length'])
        self.assertEqual(lines[5:5 + n], js['piece_hashes'])
        return lines, js


class RepoFixtures(InfoTestCase):
    def test_example_torrent(self):
        with open(EXAMPLE, 'rb') as f:
            data = f.read()
        lines, js = self.check_all(data, EXAMPLE)
        exp = expected(data)
        print('\n  example.torrent: %s, %d bytes, %d pieces' % (exp['info_hash'], exp['length'],
                                                              exp['piece_count']), file=sys.stderr)
        self.assertFalse(js['multi_file'])

    def test_multi_torrent(self):
        with open(MULTI, 'rb') as f:
            data = f.read()
        lines, js = self.check_all(data, MULTI)
        self.assertTrue(js['multi_file'])
        self.assertTrue(js['private'])
        self.assertEqual(len(js['trackers']), 2)
        self.assertEqual(len(js['files']), 3)

    def test_option_order(self):
        for path in (EXAMPLE, MULTI):
            with self.subTest(path=path):
                a = run('info', '--json', path)
                b = run('info', path, '--json')
                self.assertOk(a)
                self.assertEqual(a.stdout, b.stdout)
                self.assertEqual(a.returncode, b.returncode)

    def test_relative_path_and_double_dash(self):
        cwd = os.path.dirname(EXAMPLE)
        import subprocess
        p = subprocess.run([btcommon.TORRENT, 'info', 'example.torrent'], cwd=cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertOk(p)
        self.assertEqual(p.stdout, run('info', EXAMPLE).stdout)
        self.assertEqual(run('info', '--', EXAMPLE).stdout, p.stdout)


class Usage(InfoTestCase):
    def test_help(self):
        for args in (('info', '--help'), ('info', '-h'), ('info', EXAMPLE, '--help')):
            with self.subTest(args=args):
                p = run(*args)
                self.assertEqual(p.returncode, 0)
                self.assertIn(b'--json', p.stdout)

    def test_bad_usage(self):
        for args in ((), ('--bogus', EXAMPLE), (EXAMPLE, '--bogus'), (EXAMPLE, MULTI), ('--json',)):
            with self.subTest(args=args):
                self.assertFails(run('info', *args), ERR)

    def test_missing_file(self):
        path = os.path.join(self.tmp, 'nope.torrent')
        line = self.assertFails(run('info', path), ERR)
        self.assertIn(path, line)
        line = self.assertFails(run('info', '--json', path), ERR)
        self.assertIn(path, line)

    def test_directory(self):
        line = self.assertFails(run('info', self.tmp), ERR)
        self.assertIn(self.tmp, line)

    def test_empty_file(self):
        path = self.write(b'')
        self.assertFails(run('info', path), ERR + path + ': ')


class Accepted(InfoTestCase):
    def test_unsorted_info_keys(self):
        pieces = rand_bytes(60)
        raw_info = (b'd' + b'6:pieces60:' + pieces + b'4:name5:a.bin' + b'6:lengthi40000e'
                    + b'12:piece lengthi16384e' + b'e')
        sorted_info = bencode(bdecode(raw_info))
        self.assertNotEqual(raw_info, sorted_info)
        data = (b'd4:info' + raw_info + b'8:announce30:http://127.0.0.1:6969/announcee')
        path = self.write(data)
        lines, js = self.check_all(data, path)
        self.assertEqual(js['info_hash'], hashlib.sha1(raw_info).hexdigest())
        self.assertNotEqual(js['info_hash'], hashlib.sha1(sorted_info).hexdigest())

    def test_unsorted_multi_file_keys(self):
        pieces = rand_bytes(60)
        raw_info = (b'd5:filesld4:pathl1:a5:b.bine6:lengthi30000eed6:lengthi10000e4:pathl1:ceee'
                    b'4:name3:dir6:pieces60:' + pieces + b'12:piece lengthi16384ee')
        data = b'd4:info' + raw_info + b'e'
        path = self.write(data)
        js = self.info_json(path)
        self.assertEqual(js['info_hash'], hashlib.sha1(raw_info).hexdigest())
        self.assertEqual(js['length'], 40000)
        self.assertEqual([f['path'] for f in js['files']], ['a/b.bin', 'c'])

    def test_unknown_keys_and_non_canonical_spacing_kept(self):
        # Extra keys (even odd ones like 'source') are part of the hashed bytes.
        info = single_info(source='x' * 10, zzz=[1, {'q': 'r'}])
        data = torrent(info, comment='hello', created_by='me', creation_date=1700000000)
        path = self.write(data)
        lines, js = self.check_all(data, path)
        self.assertEqual(js['creation_date'], 1700000000)

    def test_announce_list_without_announce(self):
        tiers = [['http://127.0.0.1:1/a', 'udp://127.0.0.1:2/a'], ['http://127.0.0.3:3/a']]
        data = bencode({'announce-list': tiers, 'info': single_info()})
        path = self.write(data)
        lines, js = self.check_all(data, path)
        self.assertEqual(lines[0], 'Tracker URL: http://127.0.0.1:1/a')
        self.assertEqual(js['trackers'], tiers)

    def test_no_trackers(self):
        data = bencode({'info': single_info()})
        path = self.write(data)
        lines = self.info_text(path)
        self.assertTrue(lines[0].startswith('Tracker URL:'), lines[0])
        self.assertEqual(lines[1], 'Length: 40000')

    def test_private_and_web_seeds(self):
        for ws in ('http://127.0.0.1:8000/x', ['http://127.0.0.1:8000/', 'http://127.0.0.2/']):
            with self.subTest(ws=ws):
                data = torrent(single_info(private=1), url_list=ws)
                path = self.write(data)
                lines, js = self.check_all(data, path)
                self.assertTrue(js['private'])

    def test_single_piece_and_exact_multiple(self):
        for length in (1, PLEN - 1, PLEN, PLEN + 1, 3 * PLEN):
            with self.subTest(length=length):
                data = torrent(single_info(length))
                path = self.write(data)
                lines, js = self.check_all(data, path)
                self.assertEqual(js['piece_count'], -(-length // PLEN))

    def test_multi_file_with_empty_files(self):
        files = [{'length': 0, 'path': ['empty0']}, {'length': 100, 'path': ['a', 'b', 'c.txt']},
                 {'length': 0, 'path': ['a', 'empty1']}, {'length': 40000, 'path': ['big']}]
        data = torrent(multi_info(files))
        path = self.write(data)
        self.check_all(data, path)

    def test_pad_files(self):
        files = [{'length': 1000, 'path': ['a.bin']},
                 {'length': PLEN - 1000, 'path': ['.pad', str(PLEN - 1000)], 'attr': 'p'},
                 {'length': 5000, 'path': ['b.bin'], 'attr': 'x'},
                 {'length': PLEN - 5000, 'path': ['.pad', str(PLEN - 5000)], 'attr': 'px'},
                 {'length': 7, 'path': ['c.bin']}]
        data = torrent(multi_info(files))
        path = self.write(data)
        lines, js = self.check_all(data, path)
        self.assertEqual([f['pad'] for f in js['files']], [False, True, False, True, False])
        self.assertEqual(js['length'], 2 * PLEN + 7)
        self.assertEqual(js['piece_count'], 3)

    def test_non_utf8_name_in_json(self):
        name = b'caf\xe9-\xff.bin'
        data = torrent(single_info(name=name))
        path = self.write(data)
        js = self.info_json(path)
        self.assertEqual(js['name'].encode('utf-8', 'surrogateescape'), name)

    def test_control_characters_do_not_break_lines(self):
        # A hostile comment/URL/name cannot add lines or terminal escapes to the text output.
        data = torrent(single_info(name='a\x1b[2J\nFake: 1.bin'), comment='one\ntwo\rthree\x1b[31m',
                       announce='http://127.0.0.1:1/\nInfo Hash: 00')
        path = self.write(data)
        p = run('info', path)
        self.assertOk(p)
        self.assertNotIn(b'\x1b', p.stdout)
        self.assertNotIn(b'\r', p.stdout)
        lines = p.stdout.decode().split('\n')
        self.assertTrue(lines[0].startswith('Tracker URL: http://127.0.0.1:1/'), lines[0])
        self.assertEqual(lines[1], 'Length: 40000')
        self.assertEqual(lines[2], 'Info Hash: %s' % info_hash(data))
        self.assertEqual(len([l for l in lines if l.startswith('Info Hash: ')]), 1)
        self.assertFalse(any(l.startswith('Fake: ') for l in lines))
        js = self.info_json(path)
        self.assertEqual(js['comment'], 'one\ntwo\rthree\x1b[31m')
        self.assertEqual(js['name'], 'a\x1b[2J\nFake: 1.bin')

    def test_hybrid(self):
        length = 40000
        content_root = rand_bytes(32)
        info = single_info(length)
        info['meta version'] = 2
        info['file tree'] = {'a.bin': {'': {'length': length, 'pieces root': content_root}}}
        data = torrent(info, piece_layers={content_root: rand_bytes(32 * 3)})
        path = self.write(data)
        lines, js = self.check_all(data, path)
        self.assertTrue(any('hybrid' in l.lower() for l in lines), 'no note mentioning hybrid')
        self.assertIs(js.get('hybrid'), True)
        start, end = bdecode(data).spans[b'info']
        raw_info = data[start:end]
        self.assertTrue(raw_info.startswith(b'd') and b'10:piece layers' not in raw_info)
        self.assertEqual(js['info_hash'], hashlib.sha1(raw_info).hexdigest())
        if js.get('info_hash_v2') is not None:
            self.assertEqual(js['info_hash_v2'], hashlib.sha256(raw_info).hexdigest())

    def test_not_hybrid_flag_for_v1(self):
        js = self.info_json(EXAMPLE)
        self.assertFalse(js.get('hybrid', False))


# (name, torrent bytes, regex the message must match, case-insensitive)
def invalid_cases():
    cases = []

    def add(name, data, pattern):
        cases.append((name, data, pattern))

    v1 = single_info
    add('root is a list', bencode([single_info()]), r'dict')
    add('root is an integer', b'i1e', r'dict')
    add('root is a string', b'4:spam', r'dict')
    add('not bencode', b'hello world', r'offset')
    add('trailing bytes', torrent(v1()) + b'x', r'offset|trailing')
    add('bad bencode inside', torrent(v1()).replace(b'i40000e', b'i040000e'), r'offset')
    add('no info', bencode({'announce': 'http://x/'}), r'info')
    add('info is a string', torrent('abc'), r'info')
    add('info is a list', torrent([]), r'info')
    add('info is an integer', torrent(1), r'info')
    add('piece length 0', torrent(v1(**{'piece length': 0})), r'piece length')
    add('piece length negative', torrent(v1(**{'piece length': -16384})), r'piece length')
    add('piece length huge', torrent(v1(**{'piece length': 1 << 40})), r'piece length')
    add('piece length absurd', torrent(v1(**{'piece length': 10 ** 30})), r'piece length')
    add('piece length is a string', torrent(v1(**{'piece length': '16384'})), r'piece length')
    info = v1()
    del info['piece length']
    add('piece length missing', torrent(info), r'piece length')
    add('pieces not multiple of 20', torrent(v1(pieces=rand_bytes(59))), r'pieces|20')
    add('pieces one hash short', torrent(v1(pieces=rand_bytes(40))), r'pieces|hash')
    add('pieces one hash too many', torrent(v1(pieces=rand_bytes(80))), r'pieces|hash')
    add('pieces empty', torrent(v1(pieces=b'')), r'pieces|hash')
    info = v1()
    del info['pieces']
    add('pieces missing', torrent(info), r'pieces')
    add('pieces not a string', torrent(v1(pieces=[rand_bytes(20)] * 3)), r'pieces')
    add('negative length', torrent(v1(length=-1)), r'length')
    add('huge length', torrent(v1(length=10 ** 30, pieces=rand_bytes(60))), r'length')
    add('length 2^63', torrent(v1(length=1 << 63, pieces=rand_bytes(60))), r'length')
    add('length is a string', torrent(v1(length='40000', pieces=rand_bytes(60))), r'length')
    add('file length negative', torrent(multi_info([{'length': -5, 'path': ['a']},
                                                    {'length': 40005, 'path': ['b']}])),
        r'length')
    big = (1 << 62)
    add('total length overflows', torrent(multi_info(
        [{'length': big, 'path': ['a']}, {'length': big, 'path': ['b']}], pieces=rand_bytes(20))),
        r'length|overflow')
    add('total length overflows 2', torrent(multi_info(
        [{'length': (1 << 63) - 1, 'path': ['a']}, {'length': 1, 'path': ['b']}],
        pieces=rand_bytes(20))), r'length|overflow')
    add('both length and files', torrent(multi_info(length=40001)), r'length.*files|files.*length')
    info = v1()
    del info['length']
    add('neither length nor files', torrent(info), r'length.*files|files.*length')
    add('files empty', torrent(multi_info(pieces=b'', files=[])), r'files')
    add('files not a list', torrent(multi_info(pieces=b'', files={'a': 1})), r'files')
    add('file entry not a dict', torrent(multi_info(files=[{'length': 1, 'path': ['a']}])).replace(
        b'd6:lengthi1e4:pathl1:aee', b'i1e'), r'files|dict')
    add('file path missing', torrent(multi_info([{'length': 40000}])), r'path')
    add('file path empty list', torrent(multi_info([{'length': 40000, 'path': []}])), r'path')
    add('file path not a list', torrent(multi_info([{'length': 40000, 'path': 'a'}])), r'path')
    add('file length missing', torrent(multi_info([{'path': ['a']}], pieces=rand_bytes(20))),
        r'length')
    for comp, pat in [('..', r'\.\.'), ('.', r"'\.'"), ('', r'empty'),
                      ('/etc', r'/|absolute'), ('a/b', r'/'), ('a\x00b', r'nul|\\0|zero')]:
        add('path component %r' % comp, torrent(multi_info(
            [{'length': 20000, 'path': ['ok', comp]}, {'length': 20001, 'path': ['y']}])), pat)
        add('first path component %r' % comp, torrent(multi_info(
            [{'length': 20000, 'path': [comp, 'x']}, {'length': 20001, 'path': ['y']}])), pat)
    add('path component not a string', torrent(multi_info(
        [{'length': 40000, 'path': ['a', 5]}])), r'path')
    add('path ../../etc/passwd', torrent(multi_info(
        [{'length': 40000, 'path': ['..', '..', 'etc', 'passwd']}])), r'\.\.')
    for name, pat in [('..', r'\.\.'), ('.', r"name|'\.'"), ('', r'empty|name'),
                      ('/etc', r'/|absolute'), ('a/b', r'/'), ('x\x00y', r'nul|\\0|zero')]:
        add('single-file name %r' % name, torrent(v1(name=name)), pat)
        add('multi-file name %r' % name, torrent(multi_info(name=name)), pat)
    info = v1()
    del info['name']
    add('name missing', torrent(info), r'name')
    add('name not a string', torrent(v1(name=5)), r'name')
    v2 = {'name': 'a.bin', 'piece length': PLEN, 'meta version': 2,
          'file tree': {'a.bin': {'': {'length': 40000, 'pieces root': rand_bytes(32)}}}}
    add('v2-only', torrent(v2, piece_layers={}), r'not supported')
    add('meta version 3', torrent(v1(**{'meta version': 3})), r'meta version|not supported')
    return cases


class Rejected(InfoTestCase):
    def test_invalid_torrents(self):
        for n, (name, data, pattern) in enumerate(invalid_cases()):
            with self.subTest(case=name):
                path = self.write(data, 'bad%d.torrent' % n)
                for args in (('info', path), ('info', '--json', path)):
                    line = self.assertFails(run(*args), ERR + path + ': ', msg=name)
                    self.assertRegex(line[len(ERR + path + ': '):], re.compile(pattern, re.I),
                                     name)

    def test_truncation_at_every_offset(self):
        for src in (EXAMPLE, MULTI):
            with open(src, 'rb') as f:
                data = f.read()
            paths = [self.write(data[:i], 'trunc-%s-%d' % (os.path.basename(src), i))
                     for i in range(len(data))]
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
                results = list(ex.map(lambda p: (p, run('info', p)), paths))
            for path, p in results:
                with self.subTest(path=os.path.basename(path)):
                    self.assertFails(p, ERR + path + ': ')
            # and the whole file is fine
            self.assertOk(run('info', self.write(data, 'whole')))

    def test_single_byte_corruptions_do_not_crash(self):
        # Every byte of example.torrent replaced by a few other values: any result is allowed
        # except a crash, and failures look like failures.
        with open(EXAMPLE, 'rb') as f:
            data = f.read()
        variants = []
        for i in range(len(data)):
            for b in (b'0', b'e', b'\xff'):
                if data[i:i + 1] != b:
                    variants.append(data[:i] + b + data[i + 1:])
        paths = [self.write(v, 'c%d' % i) for i, v in enumerate(variants)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
            results = list(ex.map(lambda p: (p, run('info', '--json', p)), paths))
        for path, p in results:
            with self.subTest(path=os.path.basename(path)):
                self.assertIn(p.returncode, (0, 2), p.stderr)
                if p.returncode == 0:
                    json.loads(p.stdout.decode('utf-8'))
                else:
                    self.assertFails(p, ERR + path + ': ')


class HumanUnits(InfoTestCase):
    """Sizes in binary units beside the exact counts, only after the exact-format block."""

    def test_size_line_after_the_exact_block(self):
        mib = 1 << 20
        info = single_info(1 << 30, **{'piece length': mib, 'pieces': rand_bytes(20 * 1024)})
        data = torrent(info)
        path = self.write(data)
        lines, js = self.check_all(data, path)
        # The first five lines and the hashes keep their exact form (check_all); nothing in
        # them has a unit.
        for line in lines[:5 + 1024]:
            self.assertNotRegex(line, r'[KMG]iB')
        rest = lines[5 + 1024:]
        self.assertIn('Size: 1.00 GiB (1073741824 bytes) in 1024 pieces of 1.00 MiB', rest)

    def test_small_sizes(self):
        for length, text in ((1, '1 B'), (1023, '1023 B'), (1024, '1.00 KiB'),
                             (40000, '39.1 KiB'), (12 * (1 << 20), '12.0 MiB'),
                             (500 << 20, '500 MiB')):
            with self.subTest(length=length):
                plen = 1 << 20 if length > 1 << 20 else PLEN
                info = single_info(length, **{'piece length': plen,
                                              'pieces': rand_bytes(20 * -(-length // plen))})
                lines = self.info_text(self.write(torrent(info)))
                want = 'Size: %s (%d bytes) in ' % (text, length)
                self.assertTrue(any(l.startswith(want) for l in lines), (want, lines[-8:]))

    def test_numbered_files_with_sizes(self):
        files = [{'length': 12 * (1 << 20), 'path': ['a', 'big.bin']},
                 {'length': PLEN - (12 * (1 << 20)) % PLEN or PLEN, 'path': ['.pad', 'x'],
                  'attr': 'p'},
                 {'length': 1500, 'path': ['small.txt']},
                 {'length': 0, 'path': ['empty']}]
        data = torrent(multi_info(files))
        path = self.write(data)
        lines, js = self.check_all(data, path)
        listed = [l for l in lines if re.match(r'^ +\d+ +\S+ \S+ +\d+  ', l)]
        self.assertEqual(len(listed), 3, lines)
        want = [(1, '12.0 MiB', 12 * (1 << 20), 'a/big.bin'), (2, '1.46 KiB', 1500, 'small.txt'),
                (3, '0 B', 0, 'empty')]
        for line, (num, human, exact, name) in zip(listed, want):
            m = re.match(r'^ +(\d+) +(\S+ \S+) +(\d+)  (.*)$', line)
            self.assertIsNotNone(m, line)
            self.assertEqual((int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)),
                             (num, human, exact, name))


if __name__ == '__main__':
    btcommon.main()
