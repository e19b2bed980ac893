#!/usr/bin/python3
"""Integration tests for `torrent decode`: output format, JSON escaping, lossless byte strings,
strict grammar with byte offsets, bounded resources, option handling.

Usage: cli_decode.py <path to torrent binary>
"""

import json
import os
import random
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402
from btcommon import bencode, run  # noqa: E402

ERR = 'torrent: decode: '


def decode_arg(arg):
    return run('decode', '--', arg) if arg.startswith(b'-') else run('decode', arg)


class Examples(btcommon.CliTestCase):
    """The examples from the issue, compared byte for byte."""

    CASES = [
        (b'5:hello', b'"hello"'),
        (b'i52e', b'52'),
        (b'i-52e', b'-52'),
        (b'i4294967300e', b'4294967300'),
        (b'l5:helloi52ee', b'["hello",52]'),
        (b'd3:foo3:bar5:helloi52ee', b'{"foo":"bar","hello":52}'),
        (b'le', b'[]'),
        (b'de', b'{}'),
        (b'i0e', b'0'),
        (b'0:', b'""'),
        (b'lllleeee', b'[[[[]]]]'),
        (b'd1:ad1:bl0:deee1:ci-1ee', b'{"a":{"b":["",{}]},"c":-1}'),
    ]

    def test_examples(self):
        for arg, want in self.CASES:
            with self.subTest(arg=arg):
                p = run('decode', arg)
                self.assertOk(p, arg)
                self.assertEqual(p.stdout, want + b'\n')
                json.loads(p.stdout)

    def test_examples_from_file_and_stdin(self):
        with tempfile.TemporaryDirectory() as d:
            for n, (arg, want) in enumerate(self.CASES):
                with self.subTest(arg=arg):
                    path = os.path.join(d, 'v%d.b' % n)
                    with open(path, 'wb') as f:
                        f.write(arg)
                    for p in (run('decode', '--file', path), run('decode', '-f', path),
                              run('decode', '--file', '-', input=arg)):
                        self.assertOk(p, arg)
                        self.assertEqual(p.stdout, want + b'\n')

    def test_option_after_nothing_else(self):
        # --file given after other option forms, and '-' meaning stdin
        p = run('decode', '--file', '-', input=b'l5:helloi52ee')
        self.assertOk(p)
        self.assertEqual(p.stdout, b'["hello",52]\n')

    def test_dict_keys_kept_in_input_order(self):
        # Not sorted by the decoder: objects list keys as they appear.
        p = run('decode', 'd1:bi1e1:ai2ee')
        self.assertOk(p)
        self.assertEqual(p.stdout, b'{"b":1,"a":2}\n')


class Integers(btcommon.CliTestCase):
    def test_huge_integers_exact(self):
        rnd = random.Random(1)
        values = ['9223372036854775807', '9223372036854775808', '-9223372036854775808',
                  '-9223372036854775809', '18446744073709551616', '1' + '0' * 300]
        values += [str(rnd.randrange(1, 10)) + ''.join(rnd.choice('0123456789')
                   for _ in range(rnd.randrange(20, 400))) for _ in range(10)]
        values += ['-' + v for v in values[-5:]]
        for v in values:
            with self.subTest(v=v[:40]):
                p = run('decode', 'i%se' % v)
                self.assertOk(p)
                self.assertEqual(p.stdout, v.encode() + b'\n')
                self.assertEqual(json.loads(p.stdout), int(v))

    def test_huge_integer_in_list(self):
        v = '123456789' * 50
        p = run('decode', 'li%sei-%see' % (v, v))
        self.assertOk(p)
        self.assertEqual(json.loads(p.stdout), [int(v), -int(v)])


class Strings(btcommon.CliTestCase):
    def decode_file(self, data):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'in.b')
            with open(path, 'wb') as f:
                f.write(data)
            return run('decode', '--file', path)

    def test_escaping(self):
        cases = [b'"', b'\\', b'a"b\\c', b'\\"', b'/', b'\x00', b'\x01\x1f', b'\n\r\t\b\f',
                 b'\x7f', bytes(range(0x20)), b'quote " and \\ backslash', b'}{][,:']
        for s in cases:
            with self.subTest(s=s):
                p = self.decode_file(bencode(s))
                self.assertOk(p)
                self.assertEqual(p.stdout.count(b'\n'), 1, 'raw newline inside the JSON')
                for c in p.stdout[:-1]:
                    self.assertGreaterEqual(c, 0x20, 'raw control character in output')
                self.assertEqual(json.loads(p.stdout), s.decode())

    def test_escaping_in_keys(self):
        data = bencode({b'"k\\\n': b'v\x00', b'\x01': b''})
        p = self.decode_file(data)
        self.assertOk(p)
        self.assertEqual(json.loads(p.stdout), {'"k\\\n': 'v\x00', '\x01': ''})

    def test_valid_utf8_kept_as_text(self):
        cases = ['é', 'naïve café', '中文字符', '😀 emoji',
                 '\u07ff\u0800\uffff\U00010000\U0010ffff',
                 'mixed ascii и кириллица']
        for s in cases:
            with self.subTest(s=s):
                b = s.encode('utf-8')
                p = run('decode', bencode(b))
                self.assertOk(p)
                self.assertEqual(json.loads(p.stdout), s)
                self.assertIn(b, p.stdout, 'valid UTF-8 should be kept as text')

    def check_roundtrip(self, b, via_file=True):
        p = self.decode_file(bencode(b)) if via_file else run('decode', bencode(b))
        self.assertOk(p, b[:50])
        got = json.loads(p.stdout.decode('utf-8'))
        self.assertEqual(got.encode('utf-8', 'surrogateescape'), b, 'not lossless')
        self.assertEqual(got, b.decode('utf-8', 'surrogateescape'), 'not the surrogateescape rule')
        return p

    def test_invalid_utf8_edge_cases(self):
        cases = [
            b'\xff', b'\x80', b'\xc0\x80', b'\xc1\xbf',  # lone continuation, overlong 2-byte
            b'\xe0\x80\x80', b'\xf0\x80\x80\x80',  # overlong 3- and 4-byte
            b'\xed\xa0\x80', b'\xed\xbf\xbf',  # UTF-8 encoded surrogates
            b'\xf4\x90\x80\x80', b'\xf5\x80\x80\x80', b'\xf8\x88\x80\x80\x80',  # > U+10FFFF
            b'\xe4\xb8', b'\xe4\xb8A', b'\xf0\x9f\x98', b'a\xc3', b'\xc3(',  # truncated
            b'\xfe\xfe\xff\xff', b'ok\xe2\x82\xactext\x9fend', b'\xc3\xa9\xc3',
        ]
        for b in cases:
            with self.subTest(b=b):
                self.check_roundtrip(b)
                self.check_roundtrip(b, via_file=False)

    def test_random_binary_roundtrip(self):
        rnd = random.Random(12345)
        strings = [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 200)))
                   for _ in range(60)]
        strings.append(bytes(range(256)))
        strings.append(bytes(rnd.getrandbits(8) for _ in range(20 * 500)))  # like 'pieces'
        # One document holding all of them, as list items and as dict keys and values.
        doc = {b'pieces': strings[-1], b'list': strings}
        for i, s in enumerate(strings[:20]):
            doc[s] = strings[i + 20]
        data = bencode(doc)
        p = self.decode_file(data)
        self.assertOk(p)
        obj = json.loads(p.stdout.decode('utf-8'))
        b = lambda s: s.encode('utf-8', 'surrogateescape')  # noqa: E731
        self.assertEqual(b(obj['pieces']), strings[-1])
        self.assertEqual([b(s) for s in obj['list']], strings)
        got = {b(k): b(v) if isinstance(v, str) else v for k, v in obj.items()}
        for i, s in enumerate(strings[:20]):
            self.assertEqual(got[s], strings[i + 20])
        # and each string alone, through stdin
        for s in strings[:30]:
            p = run('decode', '--file', '-', input=bencode(s))
            self.assertOk(p)
            self.assertEqual(json.loads(p.stdout.decode()).encode('utf-8', 'surrogateescape'), s)

    def test_torrent_file(self):
        with open(os.path.join(btcommon.DATA_DIR, 'multi.torrent'), 'rb') as f:
            data = f.read()
        p = run('decode', '--file', os.path.join(btcommon.DATA_DIR, 'multi.torrent'))
        self.assertOk(p)
        obj = json.loads(p.stdout.decode())
        self.assertEqual(obj['info']['pieces'].encode('utf-8', 'surrogateescape'),
                         btcommon.bdecode(data)[b'info'][b'pieces'])


def err_offset(line):
    m = re.search(r'offset (\d+)', line)
    return int(m.group(1)) if m else None


class Malformed(btcommon.CliTestCase):
    # (input, acceptable offsets)
    # Where conventions differ (start of the token or the offending byte) both are accepted.
    CASES = [
        # leading zeros
        (b'i03e', {0, 1}), (b'i00e', {0, 1}), (b'i-01e', {0, 2}),
        (b'li1ei03ee', {4, 5}), (b'03:abc', {0}), (b'00:', {0}),
        (b'l03:abce', {1}), (b'd01:ai1ee', {1}),
        # negative zero, no digits
        (b'i-0e', {0, 1, 2}), (b'i-00e', {0, 1, 2}), (b'ie', {0, 1}),
        (b'i-e', {0, 1, 2}),
        (b'li1eie', {4, 5}), (b'i', {1}), (b'i12', {3}), (b'i-', {2}),
        (b'i1x2e', {2}), (b'i--1e', {2}), (b'i+1e', {1}), (b'i 1e', {1}),
        (b'i1.5e', {2}), (b'i0x10e', {2}),
        # string lengths: empty, negative, past the end, overflowing
        (b':a', {0}), (b'l:ae', {1}), (b'-1:a', {0}), (b'l-1:ae', {1}),
        (b'd-1:a1:ae', {1}), (b'5:abc', {0, 2, 5}), (b'1:', {0, 2}),
        (b'l5:abce', {1, 3, 7}), (b'10', {0, 2}), (b'4294967297:a', {0, 11, 12}),
        (b'18446744073709551617:a', {0, 21, 22}),
        (b'99999999999999999999999999:a', {0, 27, 28}),
        # dictionaries: non-string keys, missing values, unterminated
        (b'di1ei2ee', {1}), (b'dlei1ee', {1}), (b'ddei1ee', {1}),
        (b'd1:ai1ei2ei3ee', {7}), (b'd1:ae', {1, 4}), (b'd1:a', {4}),
        (b'd1:ai1e', {7}), (b'd', {1}), (b'd1:', {3, 1}),
        # lists: unterminated
        (b'l', {1}), (b'li1e', {4}), (b'll', {2}), (b'lli1ee', {6}),
        # trailing data
        (b'i52ex', {4}), (b'i52ei1e', {4}), (b'0:0:', {2}), (b'lee', {2}),
        (b'dee', {2}), (b'5:hello ', {7}), (b'5:hello\n', {7}),
        # garbage and empty
        (b'x', {0}), (b'lx', {1}), (b'e', {0}), (b'', {0}),
        (b' i1e', {0}),
    ]

    def check(self, p, offsets, what):
        line = self.assertFails(p, ERR, msg=what)
        off = err_offset(line)
        self.assertIsNotNone(off, 'no "offset N" in %r' % line)
        self.assertIn(off, offsets, '%r: %r' % (what, line))
        return line

    def test_malformed_on_command_line(self):
        for data, offsets in self.CASES:
            with self.subTest(data=data):
                self.check(decode_arg(data), offsets, data)

    def test_malformed_from_file_and_stdin(self):
        with tempfile.TemporaryDirectory() as d:
            for n, (data, offsets) in enumerate(self.CASES):
                with self.subTest(data=data):
                    path = os.path.join(d, 'm%d.b' % n)
                    with open(path, 'wb') as f:
                        f.write(data)
                    self.check(run('decode', '--file', path), offsets, data)
                    self.check(run('decode', '--file', '-', input=data), offsets, data)

    def test_message_names_problem(self):
        # The message says something specific, not just "error".
        for data in (b'i03e', b'i-0e', b'5:abc', b'di1ei2ee', b'i52ex', b'd1:ae'):
            with self.subTest(data=data):
                line = self.check(decode_arg(data), set(range(0, 20)), data)
                self.assertGreater(len(line), len(ERR) + 15, line)

    def test_binary_garbage_byte_in_message(self):
        # An unprintable byte must not be dumped raw into the one-line message.
        for data in (b'\x00', b'\n', b'l\xffe', b'i1\x1be'):
            with self.subTest(data=data):
                p = run('decode', '--file', '-', input=data)
                line = self.assertFails(p, ERR, msg=data)
                self.assertIsNotNone(err_offset(line), line)
                self.assertNotIn('\x1b', line)

    def test_deep_nesting_is_bounded(self):
        for name, data in [('lists', b'l' * 100000),
                           ('lists closed', b'l' * 100000 + b'e' * 100000),
                           ('dicts', b'd1:a' * 100000), ('mixed', b'ld1:a' * 50000),
                           ('very deep', b'l' * 5000000)]:
            with self.subTest(name=name):
                t0 = time.monotonic()
                p = run('decode', '--file', '-', input=data, timeout=30)
                elapsed = time.monotonic() - t0
                line = self.assertFails(p, ERR, msg=name)
                self.assertIsNotNone(err_offset(line), line)
                self.assertLess(elapsed, 5, 'deep nesting took %.1fs' % elapsed)
        # Modest nesting still works.
        p = run('decode', 'l' * 100 + 'e' * 100)
        self.assertOk(p)
        self.assertEqual(p.stdout, b'[' * 100 + b']' * 100 + b'\n')

    def test_huge_declared_length_no_allocation(self):
        # A length far past the end must fail at once, not try to allocate or read it.
        for data in (b'9999999999:', b'l999999999999:abce', b'2147483648:x', b'4294967295:x'):
            with self.subTest(data=data):
                t0 = time.monotonic()
                p = run('decode', '--file', '-', input=data)
                line = self.assertFails(p, ERR, msg=data)
                self.assertIsNotNone(err_offset(line))
                self.assertLess(time.monotonic() - t0, 5)

    def test_many_elements_no_crash(self):
        # Element counts are bounded: a big flat list either decodes or is refused cleanly.
        data = b'l' + b'0:' * 1000000 + b'e'
        p = run('decode', '--file', '-', input=data, timeout=60)
        self.assertIn(p.returncode, (0, 2), p.stderr[:300])
        if p.returncode == 0:
            self.assertEqual(json.loads(p.stdout), [''] * 1000000)
        else:
            self.assertFails(p, ERR)


class Options(btcommon.CliTestCase):
    def test_help(self):
        for args in (('decode', '--help'), ('decode', '-h'), ('decode', 'i1e', '--help')):
            with self.subTest(args=args):
                p = run(*args)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(b'surrogateescape', p.stdout)
                self.assertIn(b'--file', p.stdout)

    def test_top_level(self):
        p = run('--help')
        self.assertEqual(p.returncode, 0)
        self.assertIn(b'decode', p.stdout)
        self.assertIn(b'info', p.stdout)
        p = run('--version')
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r'\d+\.\d+')
        for args in (('nosuchcommand',), ('--nosuchoption',)):
            with self.subTest(args=args):
                self.assertFails(run(*args), 'torrent: ')

    def test_no_command(self):
        # Bad usage: exit 2, and (per the issue) errors are one stderr line starting 'torrent: '.
        self.assertFails(run(), 'torrent: ')

    def test_unknown_option(self):
        for args in (('--bogus', 'i1e'), ('i1e', '--bogus'), ('-z', 'i1e'), ('--json', 'i1e')):
            with self.subTest(args=args):
                line = self.assertFails(run('decode', *args), ERR)
                self.assertIn(args[0] if args[0] != 'i1e' else args[1], line)

    def test_no_argument(self):
        self.assertFails(run('decode'), ERR)

    def test_too_many_arguments(self):
        self.assertFails(run('decode', 'i1e', 'i2e'), ERR)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'x.b')
            with open(path, 'wb') as f:
                f.write(b'i1e')
            self.assertFails(run('decode', '--file', path, 'i2e'), ERR)
            self.assertFails(run('decode', 'i2e', '--file', path), ERR)

    def test_file_option_without_value(self):
        self.assertFails(run('decode', '--file'), ERR)

    def test_missing_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'does-not-exist.b')
            line = self.assertFails(run('decode', '--file', path), ERR)
            self.assertIn(path, line)
            line = self.assertFails(run('decode', '--file', d), ERR)  # a directory
            self.assertIn(d, line)

    def test_double_dash(self):
        p = run('decode', '--', 'i-5e')
        self.assertOk(p)
        self.assertEqual(p.stdout, b'-5\n')


if __name__ == '__main__':
    btcommon.main()
