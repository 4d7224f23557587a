# test_own_filters_samples.py - fail2ban's annotated sample logs against mxjail's own filters.
#
# The sample logs shipped with fail2ban 1.0.2 (tests/files/logs/<name>) carry failJSON
# annotations: for every line whether it must produce a failure, for which host, at what
# time, with which captured fields.  This test runs the samples of the mail filters through
# OUR etc/filter.d and checks them under the rules of fail2ban's samplestestcase.py, with
# the one sample walker in f2bsamples.py (filterOptions / fileOptions / addFILE /
# test.condition / constraint, every annotated field compared, exactly one failing regex per
# matching line, clock 1124013600 and TZ CET-01CEST-02,M3.5.0,M10.5.0, and "Regex has no
# samples").  Where fail2ban's samples do not reach one of our regexes, our own annotated
# samples in tests/corpus/samples/<filter> are read after them.
#
# Two engines, both in the result shape of `mxjail test --json`:
#   - fail2ban's Python code (MXJAIL_F2B_ROOT): proves the files are correct fail2ban
#     filters; fail2ban's check for unanchored greedy catch-alls before <HOST> runs too;
#   - `$MXJAIL_BIN test --json --all --now 1124013600 -c etc FILTER[opts] LOG`: the same
#     checks through mxjail.  Skipped, with the reason, while the binary or its `test`
#     command does not exist yet.
#
# Run directly (python3 test_own_filters_samples.py [filter...]) for a per-filter table.
# test_corpus.py imports the engine helpers from here (F2bEngine / MxjailEngine.run give
# per-line lists of hits: regex, fid, time, fields, nofail).

import copy
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import f2bsamples  # noqa: E402

TEST_NOW = f2bsamples.TEST_NOW
TEST_TZ = f2bsamples.TEST_TZ
TEST_NOW_STR = f2bsamples.TEST_NOW_STR

SRCDIR = os.environ.get('MXJAIL_SRCDIR') or os.path.dirname(os.path.dirname(HERE))
ETCDIR = os.path.join(SRCDIR, 'etc')
OWN_SAMPLES = os.path.join(SRCDIR, 'tests', 'corpus', 'samples')


def _f2b_root():
    root = os.environ.get('MXJAIL_F2B_ROOT')
    if not root:
        for cand in (os.path.join(SRCDIR, 'build-deps', 'fail2ban', 'root'), '/tmp/f2b/root'):
            if os.path.isdir(cand):
                root = cand
                break
    return root


F2B_ROOT = _f2b_root()
F2B_PY = os.path.join(F2B_ROOT, 'usr', 'lib', 'python3', 'dist-packages') if F2B_ROOT else None
F2B_LOGS = os.path.join(F2B_PY, 'fail2ban', 'tests', 'files', 'logs') if F2B_PY else None

# Mail filters whose fail2ban samples must pass against our filter.d.
MAIL_FILTERS = [
    'postfix', 'dovecot', 'sshd', 'named-refused', 'pure-ftpd', 'courier-auth',
    'courier-smtp', 'exim', 'exim-spam', 'sendmail-auth', 'sendmail-reject',
    'roundcube-auth', 'recidive',
]

os.environ['TZ'] = TEST_TZ
time.tzset()

_f2b_loaded = None


def f2b_available():
    """Return None when fail2ban's Python engine can be used, else the reason."""
    global _f2b_loaded
    if _f2b_loaded is not None:
        return None if _f2b_loaded is True else _f2b_loaded
    if not F2B_PY or not os.path.isdir(os.path.join(F2B_PY, 'fail2ban')):
        _f2b_loaded = 'fail2ban 1.0.2 tree not found (set MXJAIL_F2B_ROOT, see setup.sh)'
        return _f2b_loaded
    if F2B_PY not in sys.path:
        sys.path.insert(0, F2B_PY)
    try:
        from fail2ban.server.mytime import MyTime
        MyTime.setTime(TEST_NOW)
        _f2b_loaded = True
    except Exception as e:  # pragma: no cover
        _f2b_loaded = 'cannot import fail2ban: %s' % e
        return _f2b_loaded
    return None


# ---------------------------------------------------------------------------------------
# Engines.  Both take (key, filter name, option dict, [lines]) for one filter combination and
# return one entry per line: a list of hits, each hit a dict with keys
#   regex (index), fid (failure id or None), time, fields (captured groups), nofail (bool).
# fail2ban's engine keeps one Filter object per key so that multi-line sessions (F-MLFID)
# carry over between calls with the same key (test_corpus.py sections).  For the sample
# walker, f2b_records() turns hits into `mxjail test --json` records.

class F2bEngine:
    name = 'fail2ban'

    def __init__(self, basedir=ETCDIR):
        self.basedir = basedir
        self.filters = {}

    def unavailable(self):
        return f2b_available()

    def _filter(self, key, name, opts):
        flt = self.filters.get(key)
        if flt is not None:
            return flt
        from fail2ban.server.filter import Filter
        from fail2ban.client.filterreader import FilterReader
        flt = Filter(None)
        flt.returnRawHost = True
        flt.checkAllRegex = True
        flt.checkFindTime = False
        flt.active = True
        reader = FilterReader(name, 'jail', dict(opts), basedir=self.basedir, share_config={})
        if not reader.read():
            raise AssertionError('filter %s not found in %s' % (name, self.basedir))
        reader.getOptions({})
        for opt in reader.convert():
            vals = opt[3] if opt[0] == 'multi-set' else [opt[3]]
            for v in vals:
                if opt[2] == 'prefregex':
                    flt.prefRegex = v
                elif opt[2] == 'addfailregex':
                    flt.addFailRegex(v)
                elif opt[2] == 'addignoreregex':
                    flt.addIgnoreRegex(v)
                elif opt[2] == 'maxlines':
                    flt.setMaxLines(v)
                elif opt[2] == 'datepattern':
                    flt.setDatePattern(v)
        self.filters[key] = flt
        return flt

    def regexes(self, key, name, opts):
        return list(self._filter(key, name, opts).getFailRegex())

    def run(self, key, name, opts, lines):
        flt = self._filter(key, name, opts)
        out = []
        for line in lines:
            if opts.get('logtype') != 'journal':
                ret = flt.processLine(line)
            else:
                pl = opts.get('test.prefix-line', '')
                ret = flt.processLine(('', TEST_NOW_STR, pl + line), TEST_NOW)
            hits = []
            for r in ret or ():
                idx, fid, t, fail = r
                hits.append({'regex': idx, 'fid': fid, 'time': t, 'fields': copy.deepcopy(dict(fail)),
                             'nofail': fid is None or bool(fail.get('nofail'))})
            out.append(hits)
        return out


_mxjail_state = None


def mxjail_unavailable():
    """None when `mxjail test --json` works, else the reason for skipping."""
    global _mxjail_state
    if _mxjail_state is not None:
        return None if _mxjail_state is True else _mxjail_state
    binp = os.environ.get('MXJAIL_BIN')
    if not binp:
        cand = [os.path.join(SRCDIR, d, 'mxjail') for d in sorted(os.listdir(SRCDIR))
                if d.startswith('build')] if os.path.isdir(SRCDIR) else []
        cand = [c for c in cand if os.access(c, os.X_OK)]
        binp = cand[0] if cand else None
    if not binp or not os.access(binp, os.X_OK):
        _mxjail_state = 'mxjail binary not built yet (MXJAIL_BIN=%s)' % binp
        return _mxjail_state
    try:
        p = subprocess.run([binp, 'test', '--json', '--all', '--now', str(TEST_NOW), '-c', ETCDIR,
                            'recidive', '-'], input='2006-02-13 15:52:30,388 fail2ban.actions: '
                           'NOTICE [sendmail] Ban 192.0.2.1\n', capture_output=True, text=True,
                           timeout=60)
    except Exception as e:
        _mxjail_state = 'mxjail test cannot run: %s' % e
        return _mxjail_state
    first = p.stdout.strip().splitlines()[:1]
    ok = False
    if p.returncode == 0 and first:
        try:
            ok = 'line' in json.loads(first[0])
        except ValueError:
            ok = False
    if not ok:
        said = (p.stderr or p.stdout).strip()
        # Skip only while the command does not exist yet; any other failure of a working
        # `test` command is a finding, reported by the tests themselves.
        if re.search(r'unknown|unrecognized|not (?:yet )?implemented|usage', said, re.I) \
                or p.returncode in (126, 127):
            _mxjail_state = ('`mxjail test --json` not implemented yet (rc=%d: %s)'
                             % (p.returncode, said[:200]))
            return _mxjail_state
    _mxjail_state = True
    os.environ['MXJAIL_BIN'] = binp
    return None


class MxjailEngine:
    name = 'mxjail'

    def unavailable(self):
        return mxjail_unavailable()

    def records(self, name, opts, lines):
        """The f2bsamples engine: `mxjail test --json --all` records, one per line."""
        lines = [l.encode('utf-8') if isinstance(l, str) else l for l in lines]
        return f2bsamples.run_mxjail(os.environ['MXJAIL_BIN'], ETCDIR,
                                     f2bsamples.spec_of(name, opts), lines)

    def run(self, key, name, opts, lines):
        if opts.get('logtype') == 'journal':
            lines = [opts.get('test.prefix-line', '') + l for l in lines]
        fopts = {k: v for k, v in opts.items() if not k.startswith('test.')}
        out = []
        for r in self.records(name, fopts, lines):
            hits = []
            idxs = r.get('regex') or []
            if isinstance(idxs, int):
                idxs = [idxs]
            if r.get('match'):
                fields = {k: v for k, v in r.items() if k not in ('line', 'match', 'regex')}
                for idx in idxs or [-1]:
                    hits.append({'regex': idx, 'fid': r.get('host'), 'time': r.get('time'),
                                 'fields': fields, 'nofail': False, 'mx': True})
            else:
                for idx in idxs:
                    hits.append({'regex': idx, 'fid': None, 'time': None, 'fields': {},
                                 'nofail': True})
            # pending and F-NOFAIL results are reported apart; they count as samples
            for idx in r.get('nofail_regex') or []:
                hits.append({'regex': idx, 'fid': None, 'time': None, 'fields': {},
                             'nofail': True})
            out.append(hits)
        return out


def f2b_records(per_line_hits):
    """fail2ban's Filter results (F2bEngine.run) in the shape of `mxjail test --json --all`:
    match when some hit produced a failure id, regex = the failing regexes, nofail_regex =
    the others, and the first failure's groups as fields (users as a list, host = the
    failure id unless a group is named so, attempts = the number of matched lines)."""
    out = []
    for n, hits in enumerate(per_line_hits, 1):
        found = [h for h in hits if not h['nofail'] and h['fid'] is not None]
        rec = {}
        if found:
            h = found[0]
            for k, v in h['fields'].items():
                rec[k] = sorted(v) if isinstance(v, (set, frozenset)) else v
            if rec.get('host') is None:
                rec['host'] = h['fid']
            if rec.get('attempts') is None:
                rec['attempts'] = len(h['fields'].get('matches') or ())
            rec['time'] = h['time']
        rec.update({'line': n, 'match': bool(found), 'regex': [h['regex'] for h in found],
                    'nofail_regex': [h['regex'] for h in hits if h not in found]})
        out.append(rec)
    return out


def f2b_engine(basedir=None):
    """The f2bsamples engine and regex lister for fail2ban's Python code on basedir."""
    basedir = basedir or ETCDIR

    def engine(name, opts, lines):
        # a fresh Filter per option set: its lines come in one call, in file order
        text = [l.decode('utf-8', 'replace') if isinstance(l, bytes) else l for l in lines]
        return f2b_records(F2bEngine(basedir).run('samples', name, opts, text))

    def regexes(name, opts):
        return F2bEngine(basedir).regexes('rx', name, opts)
    return engine, regexes


def _own_samples(name):
    own = os.path.join(OWN_SAMPLES, name)
    return [own] if os.path.isfile(own) else []


def run_samples(name, kind):
    """Check one filter's samples through engine kind 'fail2ban' or 'mxjail'.
    Returns (passed, failed, messages); for fail2ban also the greedy catch-all rule."""
    binp = os.environ.get('MXJAIL_BIN', 'mxjail')
    if kind == 'fail2ban':
        engine, regexes = f2b_engine()
    else:
        engine = MxjailEngine().records
        # regex indices refer to fail2ban's list of the same filter; read it with
        # fail2ban's reader when available, else ask mxjail (dumpconf)
        regexes = f2b_engine()[1] if f2b_available() is None else None
    passed, failed, msgs = f2bsamples.check_filter(binp, ETCDIR, name, [F2B_LOGS], engine=engine,
                                                   regexes=regexes, extra=_own_samples(name))
    if kind == 'fail2ban':
        greed = wrong_greed_check(name)
        failed += len(greed)
        msgs = msgs + greed
    return passed, failed, msgs


_norm_addr = f2bsamples.norm_addr  # test_corpus.py compares ids with it


# fail2ban's check that a greedy catch-all before <HOST> is hard-anchored at the end.
def wrong_greed_check(name):
    if f2b_available() is not None:
        return []
    from fail2ban.server.failregex import Regex
    host = Regex._resolveHostTag('<HOST>')
    bad = re.compile(r'\.[+\*](?!\?)[^\$\^]*' + re.escape(host) + r'.*(?:\.[+\*].*|[^\$])$')
    eng = F2bEngine(ETCDIR)
    out = []
    for key, (opts, _) in f2bsamples.collect(name, [F2B_LOGS], _own_samples(name)).items():
        fopts = {k: v for k, v in opts.items() if not k.startswith('test.')}
        for r in eng.regexes(key, name, fopts):
            if bad.search(r):
                out.append('%s: greedy catch-all before <HOST> not anchored: %s' % (key, r))
    return out


# ---------------------------------------------------------------------------------------
# pytest

try:
    import pytest
except ImportError:  # pragma: no cover - direct runs without pytest
    pytest = None

if pytest:
    @pytest.mark.parametrize('engine', ['fail2ban', 'mxjail'])
    @pytest.mark.parametrize('name', MAIL_FILTERS)
    def test_samples(name, engine, capsys):
        if F2B_LOGS is None or not os.path.isdir(F2B_LOGS):
            pytest.skip('fail2ban 1.0.2 sample logs not found (set MXJAIL_F2B_ROOT)')
        why = f2b_available() if engine == 'fail2ban' else mxjail_unavailable()
        if why:
            pytest.skip(why)
        passed, failed, msgs = run_samples(name, engine)
        with capsys.disabled():
            print('\n%-8s %-16s %d passed, %d failed' % (engine, name, passed, failed))
        assert failed == 0, '%s (%s): %d passed, %d failed\n%s' % (
            name, engine, passed, failed, '\n'.join(msgs[:40]))


def main(argv):
    global ETCDIR
    if argv[:1] == ['--etc']:
        ETCDIR = argv[1]
        argv = argv[2:]
    names = argv or MAIL_FILTERS
    kinds = []
    for kind, why in (('fail2ban', f2b_available()), ('mxjail', mxjail_unavailable())):
        if why:
            print('%s engine: skipped: %s' % (kind, why))
        else:
            kinds.append(kind)
    total_failed = 0
    for kind in kinds:
        for name in names:
            passed, failed, msgs = run_samples(name, kind)
            total_failed += failed
            print('%-8s %-16s %d passed, %d failed' % (kind, name, passed, failed))
            for m in msgs[:20]:
                print('    ' + m)
    return 1 if total_failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
