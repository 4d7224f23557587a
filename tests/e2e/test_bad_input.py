# test_bad_input.py - `mxjail test` on logs nobody should write but attackers and broken
# programs do: binary garbage, NUL bytes, invalid UTF-8, 1 MB and 20 MB lines, CRLF line ends,
# a missing final newline, with genuine failure lines mixed in.
#
# Bad input is expected input: for every filter (Debian's filter.d through MXJAIL_F2B_ROOT,
# skipped when absent, and mxjail's own etc/) the run must exit 0, print exactly one JSON
# object per input line in order, finish in bounded time, and still find every genuine
# failure line with the right host.  The Debian 12 dovecot line that costs fail2ban 1.0.2
# minutes (FACTS.md) must cost mxjail milliseconds; its exponential variant must be reported
# on stderr as having hit the regex match limit.
#
# Interface: pytest (env MXJAIL_BIN, MXJAIL_SRCDIR, optional MXJAIL_F2B_ROOT), or run
# directly for the timing lines.

import json
import os
import random
import resource
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get('MXJAIL_SRCDIR') or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get('MXJAIL_BIN', 'mxjail')
OWN_ETC = os.path.join(SRCDIR, 'etc')
F2B_ROOT = os.environ.get('MXJAIL_F2B_ROOT', '')
DEBIAN_ETC = os.path.join(F2B_ROOT, 'etc', 'fail2ban') if F2B_ROOT else ''
HAVE_DEBIAN = bool(F2B_ROOT) and os.path.isdir(os.path.join(DEBIAN_ETC, 'filter.d'))
NEED_DEBIAN = pytest.mark.skipif(not HAVE_DEBIAN,
                                 reason='MXJAIL_F2B_ROOT not set or not a fail2ban tree '
                                 '(setup.sh unpacks fail2ban 1.0.2)')

# Generous: a 20 MB line through a handful of regexes takes a fraction of a second; a hang or
# a quadratic scan would not.
RUN_TIMEOUT = 120
SLOW = 30.0

CONFS = [pytest.param('debian', marks=NEED_DEBIAN), 'own']
FILTERS = ['sshd', 'dovecot', 'postfix[mode=aggressive]']

# One genuine failure line per filter (each must match in both configurations).
SSHD_OK = b'Nov 23 10:00:00 mail sshd[123]: Failed password for root from 192.0.2.7 port 22 ssh2'
DOVECOT_OK = (b'Nov 23 10:00:01 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts '
              b'in 2 secs): user=<bob>, method=PLAIN, rip=192.0.2.8, lip=198.51.100.1, '
              b'session=<abc>')
POSTFIX_OK = (b'Nov 23 10:00:02 mail postfix/smtpd[124]: warning: unknown[192.0.2.9]: '
              b'SASL LOGIN authentication failed: UGFzc3dvcmQ6')

DOVECOT_EVIL = (b'Nov 23 10:00:00 mail dovecot: imap-login: Disconnected: ' + b'a: ' * 28
                + b'test no match')


def confdir(which):
    return DEBIAN_ETC if which == 'debian' else OWN_ETC


def run_test(conf, specs, data, stdin=False):
    """Run `mxjail test --json` over data (bytes); return (records, stderr text, seconds)."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    env = dict(os.environ, TZ='UTC')
    with tempfile.NamedTemporaryFile(suffix='.log') as tf:
        if not stdin:
            tf.write(data)
            tf.flush()
        cmd = [BIN, 'test', '--json', '--now', '1795428000', '-c', conf] + specs \
            + ['-' if stdin else tf.name]
        t0 = time.monotonic()
        p = subprocess.run(cmd, input=data if stdin else None, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=RUN_TIMEOUT)
        dt = time.monotonic() - t0
    err = p.stderr.decode('utf-8', 'replace')
    assert p.returncode == 0, 'mxjail test %s exited %d (negative: signal)\n%s' % (
        specs, p.returncode, err[-2000:])
    text = p.stdout.decode('utf-8')  # strict: the JSON output must be valid UTF-8
    recs = [json.loads(l) for l in text.split('\n') if l]
    return recs, err, dt


def count_lines(data):
    """Lines as mxjail (and fail2ban) see them: LF-terminated, a final unterminated piece
    counts as a line."""
    n = data.count(b'\n')
    if data and not data.endswith(b'\n'):
        n += 1
    return n


def garbage_log(good):
    """Return (data, {line number: expected host}) with the good lines (list of
    (bytes, host)) spread between bad ones; the last good line has no final newline."""
    rnd = random.Random(20240607)

    def noise(n):
        return bytes(rnd.getrandbits(8) for _ in range(n)).replace(b'\n', b'\x00')

    bad = [
        noise(4000),                                                   # binary garbage
        b'\x00' * 512,                                                 # only NULs
        b'Nov 23 10:00:00 mail sshd[1]: \x00\x00 from 192.0.2.66 \x00',  # NULs in a log line
        b'\xff\xfe\xfd \xc0\xaf \xe0\x80\xaf \xed\xa0\x80 \xf8\x88\x80\x80\x80 \x80\xbf',
        b'Nov 23 10:00:00 mail dovecot: \xc3\x28 rip=\xa0\xa1',      # invalid UTF-8 in a line
        b'\r',                                                         # lone CR
        b'',                                                           # empty line
        b'Nov 23 10:00:00 mail sshd[1]: ' + b'A' * (1 << 20),         # 1 MB line
        noise(1 << 20),                                                # 1 MB of random bytes
        b'Nov 23 10:00:00 mail postfix/smtpd[1]: ' + b'a: [' * (20 * (1 << 20) // 4),  # 20 MB
        b'\x1b[2J\x1b]0;title\x07 terminal escapes \x08\x08',
    ]
    # each bad line is followed by a good one, every third of them with a CRLF line end
    lines, want = [], {}
    for i, b in enumerate(bad):
        lines.append(b)
        g, host = good[i % len(good)]
        if i % 3 == 1:
            g += b'\r'            # CRLF line end
        lines.append(g)
        want[len(lines)] = host
    g, host = good[0]
    lines.append(g)
    want[len(lines)] = host
    return b'\n'.join(lines), want    # no final newline: the last good line is unterminated


def good_lines(spec):
    if spec.startswith('sshd'):
        return [(SSHD_OK, '192.0.2.7'),
                (b'Nov 23 10:00:03 mail sshd[125]: Failed password for invalid user \xff\xfe\x80x'
                 b' from 192.0.2.10 port 22 ssh2', '192.0.2.10')]
    if spec.startswith('dovecot'):
        return [(DOVECOT_OK, '192.0.2.8')]
    return [(POSTFIX_OK, '192.0.2.9')]


def check_records(recs, data, want, spec):
    assert len(recs) == count_lines(data), '%s: %d records for %d lines' % (
        spec, len(recs), count_lines(data))
    assert [r['line'] for r in recs] == list(range(1, len(recs) + 1)), \
        spec + ': records out of order'
    for r in recs:
        n = r['line']
        if n in want:
            assert r.get('match') is True, '%s: line %d not matched: %r' % (spec, n, r)
            assert r.get('host') == want[n], '%s: line %d host %r, want %r' % (
                spec, n, r.get('host'), want[n])
        else:
            assert not r.get('match'), '%s: garbage line %d matched: %r' % (
                spec, n, {k: v for k, v in r.items() if k != 'lines'})


@pytest.mark.parametrize('spec', FILTERS)
@pytest.mark.parametrize('conf', CONFS)
def test_garbage_with_failures(conf, spec, capsys):
    data, want = garbage_log(good_lines(spec))
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    recs, err, dt = run_test(confdir(conf), spec, data)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with capsys.disabled():
        print('\nbad input %-6s %-26s %d lines, %d failures, %.0f ms, max RSS so far %d KiB'
              % (conf, spec, len(recs), len(want), dt * 1000, max(ru0, ru1)))
    assert dt < SLOW, '%s took %.1f s' % (spec, dt)
    check_records(recs, data, want, spec)


@pytest.mark.parametrize('conf', CONFS)
def test_garbage_all_filters_one_pass(conf):
    """Several filters in one pass over the same garbage: each line gets every filter's
    result, the genuine lines are found by their own filter only."""
    good = [(SSHD_OK, '192.0.2.7'), (DOVECOT_OK, '192.0.2.8'), (POSTFIX_OK, '192.0.2.9')]
    data, want = garbage_log(good)
    recs, err, dt = run_test(confdir(conf), FILTERS, data, stdin=True)
    assert dt < SLOW
    assert len(recs) == count_lines(data)
    for r in recs:
        res = r['results']
        assert [x['filter'] for x in res] == FILTERS
        hosts = {x['host'] for x in res if x.get('match')}
        if r['line'] in want:
            assert hosts == {want[r['line']]}, 'line %d: %r' % (r['line'], hosts)
        else:
            assert not hosts, 'garbage line %d matched %r' % (r['line'], hosts)


@pytest.mark.parametrize('conf', CONFS)
def test_crlf_and_no_final_newline(conf):
    # distinct pids: lines of one sshd session share their failure id (F-MLFID), as in
    # fail2ban, which would report the first address for all three
    data = SSHD_OK + b'\r\n' + \
        SSHD_OK.replace(b'192.0.2.7', b'192.0.2.77').replace(b'[123]', b'[124]') + b'\r\n' + \
        SSHD_OK.replace(b'192.0.2.7', b'2001:db8::1').replace(b'[123]', b'[125]')
    recs, _, _ = run_test(confdir(conf), 'sshd', data)
    assert [(r['line'], r.get('host')) for r in recs] == [
        (1, '192.0.2.7'), (2, '192.0.2.77'), (3, '2001:db8::1')]


@pytest.mark.parametrize('conf', CONFS)
def test_empty_and_nul_only_input(conf):
    for data, n in ((b'', 0), (b'\x00', 1), (b'\n\n\n', 3), (b'\x00\n' * 1000, 1000)):
        recs, _, _ = run_test(confdir(conf), 'dovecot', data)
        assert len(recs) == n
        assert not any(r.get('match') for r in recs)


@NEED_DEBIAN
def test_debian_dovecot_pathological_line(capsys):
    """FACTS.md: 102 s in fail2ban 1.0.2.  mxjail must answer 'no match' in milliseconds;
    what it costs is printed, the assertion is deliberately loose."""
    recs, err, dt = run_test(DEBIAN_ETC, 'dovecot', DOVECOT_EVIL + b'\n')
    with capsys.disabled():
        print('\ndovecot pathological line (%d bytes): %.1f ms, limit reported: %s'
              % (len(DOVECOT_EVIL), dt * 1000, 'regex match limit reached' in err))
    assert dt < 10.0
    assert len(recs) == 1 and recs[0]['match'] is False
    # The line has no "(" at all, so PCRE2's required-character check rejects the
    # failregexes before any backtracking starts: no match limit is reached here.  The
    # variant below gets past that check and runs into the exponential part.


@NEED_DEBIAN
def test_debian_dovecot_exponential_variant_hits_limit(capsys):
    """Same line with a tail that satisfies every literal the failregex needs but fails
    at the very end: the nested repetition of _bypass_reject_reason explodes and must be
    stopped by the match limit, reported on stderr for that line."""
    line = (b'Nov 23 10:00:00 mail dovecot: imap-login: Disconnected: ' + b'a: ' * 28
            + b'test (auth failed, x attempts): rip=192.0.2.1')
    data = SSHD_OK + b'\n' + line + b'\n' + DOVECOT_OK + b'\n'
    recs, err, dt = run_test(DEBIAN_ETC, 'dovecot', data)
    with capsys.disabled():
        print('\ndovecot exponential variant: %.1f ms' % (dt * 1000))
    assert dt < 10.0
    assert 'line 2: regex match limit reached' in err, err
    assert [r.get('match') for r in recs] == [False, False, True]
    assert recs[2]['host'] == '192.0.2.8'
