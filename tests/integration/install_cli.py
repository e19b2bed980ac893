#!/usr/bin/python3
"""A client that installs like one (issue 10): the man page documents every option of every
command's --help and renders without warnings; `meson install --destdir` places the binary, the
man page and the bash completion, and the installed completion completes commands, options and
.torrent files; `torrent help CMD` is `torrent CMD --help`; an unknown command suggests the
nearest; --version names the libraries in use.

Usage: install_cli.py <path to torrent binary>
The source and build trees come from BT_SOURCE_ROOT and BT_BUILD_ROOT (set by meson); without
them, the source tree is the one holding this script and the build tree the binary's directory.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import btcommon  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get('BT_SOURCE_ROOT') or os.path.normpath(os.path.join(HERE, '..', '..'))
MAN_PAGE = os.path.join(SOURCE_ROOT, 'doc', 'torrent.1')
COMPLETION = os.path.join(SOURCE_ROOT, 'completion', 'torrent')


def build_root():
    return os.environ.get('BT_BUILD_ROOT') or os.path.dirname(btcommon.TORRENT)


def text(p):
    return p.stdout.decode('utf-8')


def help_commands(general_help):
    """The command names listed under 'Commands:' in `torrent --help`."""
    names, inside = [], False
    for line in general_help.splitlines():
        if line.startswith('Commands:'):
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            m = re.match(r'  ([a-z_]+)  ', line)
            if not m:
                raise AssertionError('unparsable command line in --help: %r' % line)
            names.append(m.group(1))
    return names


OPTION_LINE = re.compile(r'^ {1,7}(-.*)$')
OPTION_NAME = re.compile(r'^(-[A-Za-z0-9]|--[a-z0-9][a-z0-9-]*)(?=$|[ =,])')


def help_options(command_help):
    """Every option named in the 'Options:' block of a command's --help: the lines that start
    with a dash after a short indent, each giving '-x, --long VALUE' before two spaces and the
    description (continuation lines are indented further and are not option lines)."""
    options, inside = [], False
    for line in command_help.splitlines():
        if line.startswith('Options:'):
            inside = True
            continue
        if inside and not line.strip():
            inside = False
            continue
        m = OPTION_LINE.match(line) if inside else None
        if not m:
            continue
        spec = re.split(r' {2,}', m.group(1))[0]
        for part in spec.split(', '):
            name = OPTION_NAME.match(part)
            if not name:
                raise AssertionError('unparsable option %r in: %r' % (part, line))
            options.append(name.group(1))
    return options


def render_man(path):
    """The page as text, wide and unhyphenated, so an option name is never split."""
    env = dict(os.environ, MANWIDTH='200', LC_ALL='C.UTF-8', MAN_KEEP_FORMATTING='')
    p = subprocess.run(['man', '-l', '--nh', '--nj', path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=30)
    if p.returncode != 0:
        raise AssertionError('man -l %s: %s' % (path, p.stderr.decode()))
    # Some man-db versions still overstrike bold and underline for a pipe: strip "x\bx", "_\bx".
    return re.sub(r'.\x08', '', p.stdout.decode('utf-8'))


def man_sections(rendered):
    """command -> the text of its subsection(s) ('   torrent CMD ...' headings under COMMANDS)."""
    sections, current = {}, None
    for line in rendered.splitlines():
        heading = re.match(r'^   torrent ([a-z_]+)\b', line)
        if heading:
            current = heading.group(1)
            sections.setdefault(current, '')
        elif re.match(r'^[A-Z]', line):
            current = None  # the next section (OUTPUT, EXIT STATUS, ...)
        if current:
            sections[current] += line + '\n'
    return sections


TAG_LINE = re.compile(r'^ {7}(-[^ ,]*(?:, -[^ ,]*)*)')


def documented_options(section):
    """The options a man page section describes: the tags of its option list (rendered at the
    first indent, '-x, --long value'), not options merely mentioned in running text."""
    found = set()
    for line in section.splitlines():
        m = TAG_LINE.match(line)
        if m:
            for part in m.group(1).split(', '):
                name = OPTION_NAME.match(part)
                if name:
                    found.add(name.group(1))
    return found


class ManPageTest(btcommon.CliTestCase):
    @classmethod
    def setUpClass(cls):
        cls.commands = help_commands(text(btcommon.run('--help')))
        cls.rendered = render_man(MAN_PAGE)
        cls.sections = man_sections(cls.rendered)

    def test_parsers_see_the_real_help(self):
        # Guards against a parser that silently finds nothing, which would make the next test pass.
        self.assertGreaterEqual(len(self.commands), 9, self.commands)
        for c in ('decode', 'info', 'peers', 'handshake', 'download_piece', 'download', 'create',
                  'seed', 'bench'):
            self.assertIn(c, self.commands)
        download = help_options(text(btcommon.run('download', '--help')))
        for o in ('-d', '--dir', '--peer', '--stall-timeout', '--progress', '-h', '--help'):
            self.assertIn(o, download)
        self.assertNotIn('--force)', help_options(text(btcommon.run('create', '--help'))))
        self.assertIn('--max-down', documented_options(self.sections['download']))

    def test_every_option_of_every_command_is_in_the_man_page(self):
        missing, total = [], 0
        for cmd in self.commands:
            p = btcommon.run(cmd, '--help')
            self.assertOk(p, cmd)
            if cmd not in self.sections:
                missing.append('%s: no section "torrent %s" in torrent(1)' % (cmd, cmd))
                continue
            # "it takes the options of download" lets a section share download's list.
            section = self.sections[cmd]
            for base in re.findall(r'takes\s+the\s+options\s+of\s+([a-z_]+)', section):
                section += self.sections.get(base, '')
            documented = documented_options(section)
            for option in help_options(text(p)):
                total += 1
                if option not in documented:
                    missing.append('%s %s' % (cmd, option))
        self.assertEqual(missing, [], 'options in --help but not in doc/torrent.1')
        self.assertGreaterEqual(total, 60)

    def test_renders_without_warnings(self):
        p = subprocess.run(['man', '-l', '--warnings', '-E', 'UTF-8', MAN_PAGE],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=dict(os.environ, LC_ALL='C.UTF-8', MANWIDTH='80'), timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stderr.decode(), '')

    def test_version_in_the_page_is_the_binary_version(self):
        version = text(btcommon.run('--version')).splitlines()[0].split()[1]
        with open(MAN_PAGE, encoding='utf-8') as f:
            th = next(line for line in f if line.startswith('.TH '))
        self.assertIn('torrent-client %s"' % version, th)


class InstallTest(btcommon.CliTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='install-cli-')
        cls.dest = os.path.join(cls.tmp, 'dest')
        p = subprocess.run(['meson', 'install', '-C', build_root(), '--no-rebuild', '--quiet',
                            '--destdir', cls.dest], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        cls.install_output = p.stdout.decode(errors='replace')
        cls.install_rc = p.returncode
        intro = subprocess.run(['meson', 'introspect', '--buildoptions', build_root()],
                               stdout=subprocess.PIPE, timeout=60)
        import json
        opts = {o['name']: o['value'] for o in json.loads(intro.stdout)}
        # destdir + prefix + dir, as meson lays it out (prefix is absolute)
        cls.root = cls.dest + opts['prefix']
        cls.bindir = os.path.join(cls.root, opts['bindir'])
        cls.mandir = os.path.join(cls.root, opts['mandir'])
        cls.datadir = os.path.join(cls.root, opts['datadir'])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.install_rc, 0, self.install_output)

    def test_places_binary_man_page_and_completion(self):
        binary = os.path.join(self.bindir, 'torrent')
        self.assertTrue(os.access(binary, os.X_OK), binary)
        p = subprocess.run([binary, '--version'], stdout=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith(b'torrent '), p.stdout)
        man = os.path.join(self.mandir, 'man1', 'torrent.1')
        with open(man, 'rb') as a, open(MAN_PAGE, 'rb') as b:
            self.assertEqual(a.read(), b.read())
        self.assertIn('torrent help', render_man(man))
        comp = os.path.join(self.datadir, 'bash-completion', 'completions', 'torrent')
        with open(comp, 'rb') as a, open(COMPLETION, 'rb') as b:
            self.assertEqual(a.read(), b.read())

    def complete(self, words, cwd=None):
        """Loads the installed completion in a fresh bash with the installed binary on PATH, asks
        it to complete the last of `words`, and returns the candidates, sorted."""
        comp = os.path.join(self.datadir, 'bash-completion', 'completions', 'torrent')
        script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
                  'COMPREPLY=(); _torrent; printf "%s\\n" "${COMPREPLY[@]}"')
        env = dict(os.environ, PATH=self.bindir + os.pathsep + os.environ.get('PATH', ''))
        p = subprocess.run(['bash', '--norc', '--noprofile', '-c', script, 'bash', comp, *words],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, b'')
        return sorted(x for x in p.stdout.decode().split('\n') if x)

    def test_completion_commands(self):
        self.assertEqual(self.complete(['torrent', 'dow']), ['download', 'download_piece'])
        self.assertEqual(self.complete(['torrent', 'help', 'se']), ['seed'])

    def test_completion_options(self):
        self.assertEqual(self.complete(['torrent', 'download', '--sta']), ['--stall-timeout'])
        # download_piece's help points at download's options; so does the completion
        self.assertIn('--max-down', self.complete(['torrent', 'download_piece', '--max']))
        self.assertEqual(self.complete(['torrent', 'create', '--no-d']), ['--no-date'])
        self.assertEqual(self.complete(['torrent', 'seed', '--prog']), ['--progress='])
        # after an option that takes a value we cannot guess, nothing is offered
        self.assertEqual(self.complete(['torrent', 'peers', '--timeout', '']), [])

    def test_completion_files(self):
        work = os.path.join(self.tmp, 'files')
        os.makedirs(os.path.join(work, 'sub'))
        for name in ('a.torrent', 'b.torrent', 'notes.txt'):
            open(os.path.join(work, name), 'w').close()
        self.assertEqual(self.complete(['torrent', 'info', ''], cwd=work),
                         ['a.torrent', 'b.torrent', 'sub'])
        self.assertEqual(self.complete(['torrent', 'download', '--dir', ''], cwd=work), ['sub'])
        self.assertEqual(self.complete(['torrent', 'download', '--progress=j']),
                         ['--progress=json'])


class FrontDoorTest(btcommon.CliTestCase):
    def test_help_command_equals_command_help(self):
        commands = help_commands(text(btcommon.run('--help')))
        for cmd in commands:
            a, b = btcommon.run('help', cmd), btcommon.run(cmd, '--help')
            self.assertOk(a, cmd)
            self.assertEqual(a.stdout, b.stdout, cmd)
        general = btcommon.run('--help')
        self.assertOk(general)
        for args in (['help'], ['help', '--help'], ['help', 'help']):
            self.assertEqual(btcommon.run(*args).stdout, general.stdout, args)
        line = self.assertFails(btcommon.run('help', 'seed', 'download'), 'torrent: ')
        self.assertEqual(line, "torrent: help takes one command (see 'torrent --help')")

    def test_unknown_command_suggests_the_nearest(self):
        for args in (['downlaod'], ['help', 'downlaod']):
            p = btcommon.run(*args)
            line = self.assertFails(p, 'torrent: ', code=2, msg=args)
            self.assertEqual(line, "torrent: unknown command 'downlaod'; did you mean 'download'?")
        line = self.assertFails(btcommon.run('sed'), 'torrent: ')
        self.assertEqual(line, "torrent: unknown command 'sed'; did you mean 'seed'?")

    def test_unknown_command_far_from_all_gets_no_guess(self):
        for word in ('xyzzy', 'dl', 'upload'):
            line = self.assertFails(btcommon.run(word), 'torrent: ', code=2, msg=word)
            self.assertEqual(line, "torrent: unknown command '%s' (see 'torrent --help')" % word)

    def test_version_names_the_libraries_in_use(self):
        p = btcommon.run('--version')
        self.assertOk(p)
        out = text(p)
        self.assertRegex(out, r'\Atorrent \d+\.\d+\.\d+\n')
        for lib, pattern, pc in (('libevent', r'^libevent (\d+\.\d+\.\d+)', 'libevent'),
                                 ('libcurl', r'^libcurl (\d+\.\d+\.\d+)', 'libcurl'),
                                 ('OpenSSL', r'^OpenSSL (\d+\.\d+\.\d+)', 'openssl')):
            m = re.search(pattern, out, re.M)
            self.assertIsNotNone(m, '%s missing from --version: %r' % (lib, out))
            # Debian ships the headers with the library: the run-time version is the packaged one.
            if shutil.which('pkg-config'):
                q = subprocess.run(['pkg-config', '--modversion', pc], stdout=subprocess.PIPE,
                                   timeout=10)
                if q.returncode == 0:
                    self.assertTrue(q.stdout.decode().startswith(m.group(1)), (lib, q.stdout))


if __name__ == '__main__':
    btcommon.main()
