"""The one walker for fail2ban-style annotated sample logs.

The sample logs in fail2ban's test suite carry `# failJSON: {...}` annotations
before each line (plus filterOptions / fileOptions / addFILE / constraint).
This module applies the same rules as fail2ban's own samples test: every line
is run through the filter (with every option set in force), every annotated
field must agree, exactly one failregex may produce the failure, and every
failregex of the filter must be hit by at least one sample.

Interface: check_filter(binary, confdir, name, logdirs, engine=None,
regexes=None, extra=()) -> (passed, failed, messages).  An engine is a callable
(name, opts, lines) -> one dict per line in the shape of `mxjail test --json
--all` (line, match, regex, nofail_regex, host, time, attempts, F- fields); the
default runs mxjail.  test_samples_debian.py uses it for Debian's filter.d,
test_own_filters_samples.py for ours through both mxjail and fail2ban's engine.
"""
import datetime
import ipaddress
import json
import os
import re
import subprocess
import tempfile
import time

TEST_NOW = 1124013600
TEST_NOW_STR = datetime.datetime.utcfromtimestamp(TEST_NOW).isoformat()
TEST_TZ = "CET-01CEST-02,M3.5.0,M10.5.0"
ANNOT = re.compile(rb"^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$")


def f2b_root():
    root = os.environ.get("MXJAIL_F2B_ROOT", "")
    return root if root and os.path.isdir(os.path.join(root, "etc/fail2ban")) else None


def spec_of(name, opts):
    """fail2ban filter spec `name[k="v",...]` for an option dict."""
    items = []
    for k, v in opts.items():
        v = str(v)
        q = '"' if '"' not in v else "'"
        items.append("%s=%s%s%s" % (k, q, v, q))
    return name + ("[" + ",".join(items) + "]" if items else "")


class Case:
    __slots__ = ("line", "fail", "where", "opts")

    def __init__(self, line, fail, where, opts):
        self.line, self.fail, self.where, self.opts = line, fail, where, opts


def collect(name, logdirs, extra=()):
    """Returns {fltName: (opts, [Case...])} in processing order.  The sample log
    `name` is looked up in logdirs; the files in extra (paths) are read after it,
    then the files named by addFILE (next to the file that names them, else in
    logdirs)."""
    def find(entry):
        fn, near = entry
        dirs = ([near] if near else []) + list(logdirs)
        if os.path.isabs(fn):
            dirs = [""]
        for d in dirs:
            p = os.path.join(d, fn)
            if os.path.isfile(p):
                return p
        raise FileNotFoundError("no sample log %r in %s" % (fn, dirs))

    filenames = [(name, None)] + [(p, None) for p in extra]
    common = {}
    tests = None  # list of (fltName, opts)
    ignore_block = False
    out = {}
    i = 0
    while i < len(filenames):
        path = find(filenames[i])
        i += 1
        with open(path, "rb") as fh:
            raw = fh.read().split(b"\n")
        if raw and raw[-1] == b"":
            raw.pop()
        lines = [l.rstrip(b"\r\n") for l in raw]
        k = 0
        while k < len(lines):
            line = lines[k]
            lnnum = k + 1
            k += 1
            faildata = {}
            m = ANNOT.match(line)
            if m:
                kind = m.group(1).decode()
                data = json.loads(m.group(2).decode("utf-8"))
                if kind == "fileOptions":
                    common = data
                    continue
                if kind == "filterOptions":
                    tests = []
                    ignore_block = False
                    for fd in (data if isinstance(data, list) else [data]):
                        opts = dict(common)
                        opts.update(fd)
                        cond = opts.get("test.condition")
                        if cond:
                            ignore_block = not eval(cond, {}, {"name": name, "opts": opts})
                        if not ignore_block:
                            fopts = {a: b for a, b in opts.items() if not a.startswith("test.")}
                            flt = opts.get("test.filter-name") or (str(fopts) if fopts else "")
                            tests.append((name + flt, opts))
                    continue
                if kind == "addFILE":
                    filenames.append((data, os.path.dirname(path)))
                    continue
                faildata = data
                if k >= len(lines):
                    break
                line = lines[k]
                lnnum = k + 1
                k += 1
            elif ignore_block or line.startswith(b"#") or not line.strip():
                continue
            if ignore_block:
                continue
            if not tests:
                tests = [(name, {})]
            for flt, opts in tests:
                if faildata.get("constraint") and not eval(
                        faildata["constraint"], {}, {"name": name, "opts": opts}):
                    continue
                l = line
                if opts.get("logtype") == "journal" and opts.get("test.prefix-line"):
                    l = opts["test.prefix-line"].encode() + l
                out.setdefault(flt, (opts, []))[1].append(
                    Case(l, faildata, "%s:%d" % (os.path.basename(path), lnnum), opts))
    return out


def run_mxjail(binary, confdir, spec, lines):
    with tempfile.NamedTemporaryFile(suffix=".log") as tf:
        tf.write(b"\n".join(lines) + b"\n")
        tf.flush()
        env = dict(os.environ, TZ=TEST_TZ)
        p = subprocess.run([binary, "test", "--json", "--all", "--now", str(TEST_NOW),
                            "-c", confdir, spec, tf.name],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("mxjail test %s failed (%d): %s" % (spec, p.returncode,
                                                                p.stderr.decode(errors="replace")))
    res = [json.loads(l) for l in p.stdout.decode("utf-8").splitlines()]
    if len(res) != len(lines):
        raise RuntimeError("mxjail test %s: %d results for %d lines" % (spec, len(res), len(lines)))
    return res


def mxjail_engine(binary, confdir):
    """The default engine: `mxjail test --json --all` over the lines."""
    return lambda name, opts, lines: run_mxjail(binary, confdir, spec_of(name, opts), lines)


def mxjail_regexes(binary, confdir):
    return lambda name, opts: filter_regexes(binary, confdir, spec_of(name, opts))


def filter_regexes(binary, confdir, spec):
    p = subprocess.run([binary, "dumpconf", "-c", confdir, "--filter", spec],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        return None
    d = json.loads(p.stdout.decode())
    fr = d.get("failregex", [])
    return [x["text"] if isinstance(x, dict) else x for x in fr]


def norm_addr(v):
    """mxjail reports normalised failure ids (FACTS.md: ::ffff:a.b.c.d -> a.b.c.d,
    IPv6 lower-case and compressed); fail2ban's annotations carry raw text."""
    if not isinstance(v, str):
        return v
    try:
        a = ipaddress.ip_address(v.strip("[]"))
    except ValueError:
        return v
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    return str(a)


def _as_list(v):
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple, set, frozenset)) else [v]


def same_value(got, want):
    if want is None:
        return got is None
    if isinstance(want, list) or isinstance(got, (list, tuple, set, frozenset)):
        return sorted(map(str, _as_list(got))) == sorted(map(str, _as_list(want)))
    if got is None:
        return False
    if isinstance(want, str) and isinstance(got, str):
        if got == want or norm_addr(got) == norm_addr(want):
            return True
        try:
            net = ipaddress.ip_network
            return net(got, strict=False) == net(want, strict=False)
        except ValueError:
            return False
    return got == want


def json_time(t):
    os.environ["TZ"] = TEST_TZ
    time.tzset()
    try:
        dt = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        dt = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%f")
    return time.mktime(dt.timetuple()) + dt.microsecond / 1000000.0


def check_filter(binary, confdir, name, logdirs, engine=None, regexes=None, extra=()):
    """Returns (passed, failed, [messages]).  engine(name, opts, lines) gives one
    mxjail-shaped result per line (default: mxjail at binary with -c confdir);
    regexes(name, opts) the failregex texts whose indices the results use, or
    None to skip the no-samples rule (default: mxjail dumpconf).  extra: sample
    files read after logdirs/name."""
    engine = engine or mxjail_engine(binary, confdir)
    regexes = regexes or mxjail_regexes(binary, confdir)
    groups = collect(name, logdirs, extra)
    passed = failed = 0
    msgs = []
    used_text = set()   # regexes hit under any option set count for all (as in fail2ban)
    per_spec = []
    for flt, (opts, cases) in groups.items():
        fopts = {a: b for a, b in opts.items() if not a.startswith("test.")}
        spec = spec_of(name, fopts)
        try:
            res = engine(name, fopts, [c.line for c in cases])
            if len(res) != len(cases):
                raise RuntimeError("%d results for %d lines" % (len(res), len(cases)))
        except Exception as e:  # the whole option set failed
            failed += len(cases)
            msgs.append("%s: %s" % (spec, e))
            continue
        used = set()
        for c, r in zip(cases, res):
            used.update(r.get("regex", []))
            used.update(r.get("nofail_regex", []))
            err = check_case(c, r)
            if err:
                failed += 1
                msgs.append("%s %s: %s\n    line: %s\n    want: %s\n    got:  %s" % (
                    spec, c.where, err, c.line.decode("utf-8", "replace"),
                    json.dumps(c.fail), json.dumps({k: v for k, v in r.items() if k != "lines"},
                               default=str)))
            else:
                passed += 1
        texts = regexes(name, fopts)
        if texts is not None:
            used_text.update(texts[i] for i in used if 0 <= i < len(texts))
            per_spec.append((spec, texts, used))
    for spec, texts, used in per_spec:
        for i, rx in enumerate(texts):
            if i not in used and rx not in used_text:
                failed += 1
                msgs.append("%s: regex has no samples: %d: %s" % (spec, i, rx))
    return passed, failed, msgs


def check_case(c, r):
    want = c.fail
    if not r.get("match"):
        if want.get("match", False):
            return "line not matched when it should have"
        return None
    if not want.get("match", False):
        return "line matched when it should not have"
    if len(r.get("regex", [])) != 1:
        return "multiple regexes matched %r" % (r.get("regex"),)
    for k, v in want.items():
        if k in ("time", "match", "desc", "constraint"):
            continue
        got = r.get(k)
        if not same_value(got, v):
            return "field %s: %r != %r" % (k, got, v)
    t = want.get("time")
    if t is not None:
        jt = json_time(t)
        if r.get("time") is None or abs(r["time"] - jt) > 1e-6:
            return "time %r != %r (%s)" % (r.get("time"), jt, t)
    return None
