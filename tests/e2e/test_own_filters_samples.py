# test_own_filters_samples.py - fail2ban's annotated sample logs against mxjail's own filters.
#
# The sample logs shipped with fail2ban 1.0.2 (tests/files/logs/<name>) carry failJSON
# annotations: for every line whether it must produce a failure, for which host, at what
# time, with which captured fields.  This test runs the samples of the mail filters through
# OUR etc/filter.d and checks them under the rules of fail2ban's samplestestcase.py:
# filterOptions / fileOptions / addFILE / test.condition / constraint, every annotated field
# compared, exactly one failing regex per matching line, clock 1124013600 and
# TZ CET-01CEST-02,M3.5.0,M10.5.0, and "Regex has no samples": every failregex of every
# option combination is hit by some line.  Where fail2ban's samples do not reach one of our
# regexes, our own annotated samples in tests/corpus/samples/<filter> are read after them.
#
# Two engines:
#   - fail2ban's Python code (MXJAIL_F2B_ROOT): proves the files are correct fail2ban filters;
#   - `$MXJAIL_BIN test --json --all --now 1124013600 -c etc FILTER[opts] LOG`: the same
#     checks through mxjail.  Skipped, with the reason, while the binary or its `test`
#     command does not exist yet.
#
# Run directly (python3 test_own_filters_samples.py [filter...]) for a per-filter table.
# test_corpus.py imports the engine helpers from here.

import copy
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

TEST_NOW = 1124013600
TEST_TZ = 'CET-01CEST-02,M3.5.0,M10.5.0'
TEST_NOW_STR = datetime.datetime.utcfromtimestamp(TEST_NOW).isoformat()

HERE = os.path.dirname(os.path.abspath(__file__))
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
# Engines.  Both take (filter name, option dict, [lines]) for one filter combination and
# return one entry per line: a list of hits, each hit a dict with keys
#   regex (index), fid (failure id or None), time, fields (captured groups), nofail (bool).
# fail2ban's engine keeps one Filter object per combination so that multi-line sessions
# (F-MLFID) carry over between the blocks of a sample file, exactly as samplestestcase does.

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


def _spec(name, opts):
    """FILTER[k=v,...] for the command line (values quoted when needed)."""
    items = []
    for k, v in opts.items():
        if k.startswith('test.'):
            continue
        v = str(v)
        if re.search(r'[,\]"\s]', v):
            v = '"%s"' % v.replace('"', '\\"')
        items.append('%s=%s' % (k, v))
    return name + ('[%s]' % ','.join(items) if items else '')


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

    def run(self, key, name, opts, lines):
        env = dict(os.environ, TZ=TEST_TZ)
        with tempfile.NamedTemporaryFile('w', suffix='.log', delete=False, encoding='utf-8') as f:
            for line in lines:
                if opts.get('logtype') == 'journal':
                    line = opts.get('test.prefix-line', '') + line
                f.write(line + '\n')
            path = f.name
        try:
            p = subprocess.run([os.environ['MXJAIL_BIN'], 'test', '--json', '--all', '--now',
                                str(TEST_NOW), '-c', ETCDIR, _spec(name, opts), path],
                               capture_output=True, text=True, env=env, timeout=300)
        finally:
            os.unlink(path)
        if p.returncode != 0:
            raise AssertionError('mxjail test %s failed (rc=%d): %s'
                                 % (_spec(name, opts), p.returncode, p.stderr.strip()[:500]))
        recs = {}
        for jl in p.stdout.splitlines():
            if jl.strip():
                r = json.loads(jl)
                recs[r['line']] = r
        out = []
        for i in range(len(lines)):
            r = recs.get(i + 1)
            if r is None:
                raise AssertionError('mxjail printed no record for line %d of %s'
                                     % (i + 1, _spec(name, opts)))
            hits = []
            idxs = r.get('regex') or []
            if isinstance(idxs, int):
                idxs = [idxs]
            if r.get('match'):
                fields = {k: v for k, v in r.items() if k not in ('line', 'match', 'regex')}
                for n, idx in enumerate(idxs or [-1]):
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


# ---------------------------------------------------------------------------------------
# The sample-file walker: turns a sample log (and its addFILE / own extra files) into a plan
# of (combination, line, faildata) steps, then asks an engine for the results of each
# combination and checks them in file order.

JSON_RE = re.compile(r'^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$')


def sample_files(name):
    files = [os.path.join(F2B_LOGS, name)] if F2B_LOGS else []
    own = os.path.join(OWN_SAMPLES, name)
    return files, own if os.path.isfile(own) else None


def build_plan(name):
    """Return (combos, steps).  combos: key -> opts; steps: list of dicts."""
    main, own = sample_files(name)
    queue = list(main)
    if own:
        queue.append(own)
    combos = {}
    steps = []
    common = {}
    current = None
    i = 0
    while i < len(queue):
        path = queue[i]
        i += 1
        with open(path, encoding='utf-8') as f:
            raw = f.read().split('\n')
        if raw and raw[-1] == '':
            raw.pop()
        ignore = False
        faildata = {}
        n = 0
        while n < len(raw):
            line = raw[n]
            n += 1
            m = JSON_RE.match(line)
            if m:
                data = json.loads(m.group(2))
                if m.group(1) == 'fileOptions':
                    common = data
                    continue
                if m.group(1) == 'filterOptions':
                    current = []
                    ignore = False
                    for fd in (data if isinstance(data, list) else [data]):
                        opts = dict(common)
                        opts.update(fd)
                        if opts.get('test.condition'):
                            ignore = not eval(opts['test.condition'], {}, {'name': name})
                        if not ignore:
                            fopts = {k: v for k, v in opts.items() if not k.startswith('test.')}
                            key = opts.get('test.filter-name') or (str(fopts) if fopts else '')
                            key = name + key
                            combos.setdefault(key, fopts)
                            current.append((key, opts))
                    continue
                if m.group(1) == 'addFILE':
                    queue.append(os.path.join(os.path.dirname(path), data))
                    continue
                faildata = data
                if n >= len(raw):
                    break
                line = raw[n]
                n += 1
            elif ignore or line.startswith('#') or not line.strip():
                continue
            else:
                faildata = {}
            if ignore:
                continue
            if not current:
                combos.setdefault(name, {})
                current = [(name, {})]
            line = line.rstrip('\r\n')
            for key, opts in current:
                if faildata.get('constraint') and not eval(
                        faildata['constraint'], {}, {'name': name, 'opts': opts}):
                    continue
                steps.append({'key': key, 'opts': opts, 'line': line, 'faildata': faildata,
                              'where': '%s:%d' % (os.path.basename(path), n)})
    return combos, steps


def _json_time(t):
    try:
        lt = datetime.datetime.strptime(t, '%Y-%m-%dT%H:%M:%S')
    except ValueError:
        lt = datetime.datetime.strptime(t, '%Y-%m-%dT%H:%M:%S.%f')
    return time.mktime(lt.timetuple()) + lt.microsecond / 1000000.0


def _same(a, b):
    if isinstance(a, (set, list, tuple, dict)):
        return sorted(a) == sorted(b if isinstance(b, (set, list, tuple, dict)) else [b])
    return a == b


def _norm_addr(v):
    """mxjail reports normalised failure ids (FACTS.md: ::ffff:a.b.c.d -> a.b.c.d, IPv6
    lower-case and compressed); fail2ban's sample test compares raw text."""
    import ipaddress
    if not isinstance(v, str):
        return v
    try:
        a = ipaddress.ip_address(v.strip('[]'))
    except ValueError:
        return v
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    return str(a)


def check_step(step, hits, nofail_idx):
    """Return None when the hits agree with the step's failJSON, else a message."""
    fd = step['faildata']
    found = [h for h in hits if not h['nofail'] and h['fid'] is not None]
    if not found:
        if fd.get('match', False):
            return 'line not matched when it should have been'
        return None
    if not fd.get('match', False):
        return 'line matched (regex %s) when it should not have' % [h['regex'] for h in found]
    if not found[0].get('mx'):
        if len(found) != 1:
            return 'several regexes matched: %s' % [h['regex'] for h in found]
    else:
        failing = [h['regex'] for h in found if h['regex'] not in nofail_idx]
        if len(failing) > 1:
            return 'several regexes matched: %s' % failing
    h = found[0]
    for k, v in fd.items():
        if k in ('time', 'match', 'desc', 'constraint'):
            continue
        fv = h['fields'].get(k)
        if fv is None:
            if k == 'host':
                fv = h['fid']
            if k == 'attempts':
                fv = len(h['fields'].get('matches', {}))
        if h.get('mx') and k in ('host', 'ip4', 'ip6'):
            fv, v = _norm_addr(fv), _norm_addr(v)
        bad = (fv is not None) if v is None else not _same(fv, v)
        if bad:
            return 'field %s: got %r, expected %r' % (k, fv, v)
    if fd.get('time') is not None:
        want = _json_time(fd['time'])
        if h['time'] is None or abs(float(h['time']) - want) > 0.0005:
            return 'time: got %r, expected %r (%s)' % (h['time'], want, fd['time'])
    return None


def run_samples(name, engine, regex_engine=None):
    """Check one filter's samples.  Returns (passed, failed, messages)."""
    combos, steps = build_plan(name)
    byc = {}
    for s in steps:
        byc.setdefault(s['key'], []).append(s)
    # regex lists (for the no-samples rule and to know the NOFAIL regexes) come from
    # fail2ban's reader when available; mxjail reports indices into the same list.
    rx = {}
    re_src = regex_engine or (engine if isinstance(engine, F2bEngine) else None)
    if re_src is None and f2b_available() is None:
        re_src = F2bEngine(ETCDIR)
    for key, opts in combos.items():
        rx[key] = re_src.regexes(key, name, opts) if re_src else None
    results = {}
    for key, st in byc.items():
        res = engine.run(key, name, combos[key], [s['line'] for s in st])
        for s, hits in zip(st, res):
            results[id(s)] = hits
    passed = failed = 0
    msgs = []
    used_idx = {k: set() for k in combos}
    used_re = set()
    for s in steps:
        hits = results[id(s)]
        regs = rx.get(s['key'])
        nofail_idx = {i for i, r in enumerate(regs or []) if 'nofail' in r}
        for h in hits:
            if h['regex'] is not None and h['regex'] >= 0:
                used_idx[s['key']].add(h['regex'])
                if regs and h['regex'] < len(regs):
                    used_re.add(regs[h['regex']])
        err = check_step(s, hits, nofail_idx)
        if err:
            failed += 1
            msgs.append('%s [%s] %s\n    %s' % (s['where'], s['key'], err, s['line']))
        else:
            passed += 1
    for key, regs in rx.items():
        for i, r in enumerate(regs or []):
            if i not in used_idx[key] and r not in used_re:
                failed += 1
                msgs.append('%s: Regex has no samples: %d: %r' % (key, i, r))
    return passed, failed, msgs


# fail2ban's check that a greedy catch-all before <HOST> is hard-anchored at the end.
def wrong_greed_check(name):
    if f2b_available() is not None:
        return []
    from fail2ban.server.failregex import Regex
    host = Regex._resolveHostTag('<HOST>')
    bad = re.compile(r'\.[+\*](?!\?)[^\$\^]*' + re.escape(host) + r'.*(?:\.[+\*].*|[^\$])$')
    combos, _ = build_plan(name)
    eng = F2bEngine(ETCDIR)
    out = []
    for key, opts in combos.items():
        for r in eng.regexes(key, name, opts):
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
        if engine == 'fail2ban':
            why = f2b_available()
            eng = F2bEngine(ETCDIR)
        else:
            why = mxjail_unavailable()
            eng = MxjailEngine()
        if why:
            pytest.skip(why)
        passed, failed, msgs = run_samples(name, eng)
        if engine == 'fail2ban':
            greed = wrong_greed_check(name)
            failed += len(greed)
            msgs += greed
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
    engines = []
    if f2b_available() is None:
        engines.append(F2bEngine(ETCDIR))
    else:
        print('fail2ban engine: skipped:', f2b_available())
    if mxjail_unavailable() is None:
        engines.append(MxjailEngine())
    else:
        print('mxjail engine: skipped:', mxjail_unavailable())
    total_failed = 0
    for eng in engines:
        for name in names:
            passed, failed, msgs = run_samples(name, eng)
            if isinstance(eng, F2bEngine):
                g = wrong_greed_check(name)
                failed += len(g)
                msgs += g
            total_failed += failed
            print('%-8s %-16s %d passed, %d failed' % (eng.name, name, passed, failed))
            for m in msgs[:20]:
                print('    ' + m)
    return 1 if total_failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
