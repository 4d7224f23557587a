# test_corpus.py - mxjail's filter corpora: (log line, expected result) files under
# tests/corpus/*.txt, including the injection corpus.
#
# Format of a corpus file:
#     # filter: postfix[mode=aggressive]        starts a section; its lines share the
#                                               filter's multi-line state
#     MATCH 192.0.2.1 | <log line>              must produce exactly this failure id
#     NOMATCH | <log line>                      must produce no failure
#     # anything else                           comment
# Every line is checked through fail2ban's Python engine (proves the files are correct
# fail2ban filters; needs MXJAIL_F2B_ROOT) and through `mxjail test --json` (skipped, with
# the reason, while the binary or its test command does not exist).  A third test feeds
# every filter lines built to make a backtracking regex engine explode (the Debian dovecot
# line from FACTS.md, long repetitive junk) and requires each to finish quickly.

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_own_filters_samples as S  # noqa: E402

CORPUS = os.path.join(S.SRCDIR, 'tests', 'corpus')

SPEC_RE = re.compile(r'^([\w.-]+)(?:\[(.*)\])?$')


def parse_spec(spec):
    m = SPEC_RE.match(spec.strip())
    if not m:
        raise ValueError('bad filter spec %r' % spec)
    opts = {}
    if m.group(2):
        for item in m.group(2).split(','):
            k, _, v = item.partition('=')
            opts[k.strip()] = v.strip()
    return m.group(1), opts


def load(path):
    """Return a list of sections: (name, opts, [(lineno, expected host or None, line)])."""
    sections = []
    cur = None
    with open(path, encoding='utf-8') as f:
        for n, raw in enumerate(f, 1):
            raw = raw.rstrip('\n')
            if raw.startswith('# filter:'):
                name, opts = parse_spec(raw[len('# filter:'):])
                cur = (name, opts, [])
                sections.append(cur)
                continue
            if not raw.strip() or raw.startswith('#'):
                continue
            head, sep, line = raw.partition(' | ')
            if not sep or cur is None:
                raise ValueError('%s:%d: expected "MATCH host | line" or "NOMATCH | line" '
                                 'after a "# filter:" line' % (path, n))
            words = head.split()
            if words == ['NOMATCH']:
                cur[2].append((n, None, line))
            elif len(words) == 2 and words[0] == 'MATCH':
                cur[2].append((n, words[1], line))
            else:
                raise ValueError('%s:%d: bad expectation %r' % (path, n, head))
    return sections


def corpus_files():
    return sorted(f for f in os.listdir(CORPUS) if f.endswith('.txt'))


def run_file(fname, engine):
    passed = failed = 0
    msgs = []
    path = os.path.join(CORPUS, fname)
    for i, (name, opts, items) in enumerate(load(path)):
        key = '%s#%d' % (fname, i)
        res = engine.run(key, name, opts, [it[2] for it in items])
        for (n, want, line), hits in zip(items, res):
            found = sorted({str(S._norm_addr(h['fid'])) for h in hits
                            if not h['nofail'] and h['fid'] is not None})
            want = S._norm_addr(want) if want else want
            ok = (found == []) if want is None else (found == [want])
            if ok:
                passed += 1
            else:
                failed += 1
                msgs.append('%s:%d [%s%s] expected %s, got %s\n    %s' % (
                    fname, n, name, opts or '', want or 'no match', found or 'no match', line))
    return passed, failed, msgs


# Lines that make careless expressions backtrack exponentially or quadratically.
def _evil_lines():
    dov = 'Jan 29 05:13:40 mail dovecot: imap-login: Disconnected: ' + 'a: ' * 28 + 'test no match'
    return [
        dov,
        'Jan 29 05:13:40 mail dovecot: imap-login: Disconnected: ' + 'a: (b) ' * 3000 + 'x',
        'Jan 29 05:13:40 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts): user=<'
        + 'x>, rip=1.2.3.4, ' * 3000 + 'y',
        'Jan 29 05:13:40 mail dovecot: auth: pam(' + 'a,' * 5000 + '): unknown user',
        'Jan 29 05:13:40 host sshd[1]: Failed password for invalid user ' + 'x from 1.2.3.4 port 1 ' * 3000 + 'z',
        'Jan 29 05:13:40 host sshd[1]: Connection closed by authenticating user ' + 'a 1.2.3.4 ' * 3000 + 'z',
        'Jan 29 05:13:40 host sshd[1]: pam_unix(sshd:auth): authentication failure;' + ' uid=0' * 3000,
        'Jan 29 05:13:40 mx postfix/smtpd[1]: disconnect from unknown[1.2.3.4]' + ' ehlo=1' * 5000 + ' x',
        'Jan 29 05:13:40 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[1.2.3.4]: 554 5.7.1 <'
        + '<' * 5000 + ': x',
        '2013-06-02 09:05:48 SMTP protocol error in "' + 'a" H=(x) [1.2.3.4] ' * 3000 + 'x',
        'May 26 07:12:40 hamster roundcube: IMAP Error: Login failed for ' + 'x from 1.2.3.4. ' * 3000 + 'y',
        'Apr 23 21:59:01 dns2 imapd: LOGIN FAILED, user=' + 'x, ip=[1.2.3.4], ' * 3000 + 'z',
        'Feb 25 04:02:28 relay1 sendmail[1]: 06I02CNi016765: AUTH failure (LOGIN): authentication '
        'failure, user=' + 'x, relay=[1.2.3.4], ' * 3000 + 'z',
        'x' * 200000,
    ]


EVIL_FILTERS = [('postfix', {'mode': 'aggressive'}), ('dovecot', {'mode': 'aggressive'}),
                ('sshd', {'mode': 'aggressive'}), ('named-refused', {}), ('pure-ftpd', {}),
                ('courier-auth', {}), ('courier-smtp', {}), ('exim', {'mode': 'aggressive'}),
                ('exim-spam', {}), ('sendmail-auth', {}), ('sendmail-reject', {'mode': 'aggressive'}),
                ('roundcube-auth', {}), ('recidive', {})]
EVIL_LIMIT = 2.0  # seconds per line in fail2ban's (slow, interpreted) engine


def run_evil(engine):
    slow = []
    for name, opts in EVIL_FILTERS:
        for i, line in enumerate(_evil_lines()):
            t0 = time.time()
            engine.run('evil-%s-%d' % (name, i), name, opts, [line])
            dt = time.time() - t0
            if dt > EVIL_LIMIT:
                slow.append('%s line %d: %.2f s' % (name, i, dt))
    return slow


try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

if pytest:
    def _engine(kind):
        if kind == 'fail2ban':
            return S.f2b_available(), S.F2bEngine(S.ETCDIR)
        return S.mxjail_unavailable(), S.MxjailEngine()

    @pytest.mark.parametrize('engine', ['fail2ban', 'mxjail'])
    @pytest.mark.parametrize('fname', corpus_files())
    def test_corpus(fname, engine, capsys):
        why, eng = _engine(engine)
        if why:
            pytest.skip(why)
        passed, failed, msgs = run_file(fname, eng)
        with capsys.disabled():
            print('\n%-8s %-20s %d passed, %d failed' % (engine, fname, passed, failed))
        assert failed == 0, '%s (%s): %d passed, %d failed\n%s' % (
            fname, engine, passed, failed, '\n'.join(msgs[:40]))

    @pytest.mark.parametrize('engine', ['fail2ban', 'mxjail'])
    def test_no_backtracking_blowup(engine):
        why, eng = _engine(engine)
        if why:
            pytest.skip(why)
        slow = run_evil(eng)
        assert not slow, 'slow lines:\n' + '\n'.join(slow)


def main(argv):
    engines = []
    for kind in ('fail2ban', 'mxjail'):
        why = S.f2b_available() if kind == 'fail2ban' else S.mxjail_unavailable()
        if why:
            print('%s engine: skipped: %s' % (kind, why))
        else:
            engines.append(S.F2bEngine(S.ETCDIR) if kind == 'fail2ban' else S.MxjailEngine())
    bad = 0
    for eng in engines:
        for fname in argv or corpus_files():
            passed, failed, msgs = run_file(fname, eng)
            bad += failed
            print('%-8s %-20s %d passed, %d failed' % (eng.name, fname, passed, failed))
            for m in msgs[:30]:
                print('    ' + m)
        if not argv:
            slow = run_evil(eng)
            bad += len(slow)
            print('%-8s %-20s %s' % (eng.name, 'backtracking', 'ok' if not slow else slow))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
