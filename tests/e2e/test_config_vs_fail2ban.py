"""Compares mxjail's configuration reader with fail2ban's own readers.

Filters: for every filter in $MXJAIL_F2B_ROOT/etc/fail2ban/filter.d (except
*common.conf) and for every option set, `mxjail dumpconf --filter NAME[opts]`
must give exactly what fail2ban's FilterReader (read, getOptions({}),
convert) gives: the same prefregex, failregex and ignoreregex strings in the
same order, maxlines, datepattern and journalmatch. The option sets are the
empty one, every filterOptions/fileOptions combination of the filter's own
sample log (keys starting with "test." removed), and every distinct option set
found in any sample log (so e.g. every filter is also read with mode=aggressive
and each logtype).

Jails: the whole Debian tree is loaded with every jail enabled (a jail.local
in a copy of the tree) and the resolved filter, logpath, action and backend
of a set of jails are compared with fail2ban's JailsReader.

fail2ban's Python code runs from the unpacked package
(PYTHONPATH=$MXJAIL_F2B_ROOT/usr/lib/python3/dist-packages). Skips when
MXJAIL_F2B_ROOT is unset or not a directory.
"""
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.environ.get("MXJAIL_F2B_ROOT", "")
HAVE_ROOT = bool(ROOT) and os.path.isdir(os.path.join(ROOT, "etc/fail2ban"))
BIN = os.environ.get("MXJAIL_BIN", "")
pytestmark = pytest.mark.skipif(
    not HAVE_ROOT, reason="MXJAIL_F2B_ROOT unset or not a directory: no fail2ban tree to compare with")

CONF = os.path.join(ROOT, "etc/fail2ban")
PYLIB = os.path.join(ROOT, "usr/lib/python3/dist-packages")
LOGS = os.path.join(PYLIB, "fail2ban/tests/files/logs")
ANNOT = re.compile(r"^#+ ?(filterOptions|fileOptions|addFILE):(.+)$")

# Runs inside a python with fail2ban importable: reads [(name, opts), ...] as
# JSON on stdin, prints one result per case.
F2B_FILTER_SCRIPT = r"""
import json, shlex, sys, logging
logging.disable(logging.CRITICAL)
from fail2ban.client.filterreader import FilterReader
basedir, cases = json.load(sys.stdin)
out = []
for name, opts in cases:
    r = {"prefregex": None, "failregex": [], "ignoreregex": [], "maxlines": None,
         "datepattern": None, "journalmatch": [], "error": None}
    try:
        fr = FilterReader(name, "jail", dict(opts), basedir=basedir)
        if not fr.read():
            raise ValueError("cannot read filter")
        fr.getOptions({})
        for cmd in fr.convert():
            what, val = cmd[2], cmd[3:]
            if cmd[0] == "multi-set":
                val = val[0]
            if what == "prefregex":
                r["prefregex"] = val[0]
            elif what in ("addfailregex", "addignoreregex"):
                r[what[3:]].extend(val)
            elif what == "maxlines":
                r["maxlines"] = val[0]
            elif what == "datepattern":
                r["datepattern"] = [p.strip() for p in val[0].split("\n") if p.strip()]
            elif what == "addjournalmatch":
                r["journalmatch"].append(list(val))
    except Exception as e:
        r["error"] = "%s: %s" % (type(e).__name__, e)
    out.append(r)
json.dump(out, sys.stdout)
"""

F2B_JAILS_SCRIPT = r"""
import json, sys, logging
logging.disable(logging.CRITICAL)
from fail2ban.client.jailsreader import JailsReader
basedir = sys.argv[1]
jr = JailsReader(basedir=basedir)
jr.read()
jr.getOptions()
out = {}
for j in jr.jails:
    o = j.options
    out[j.getName()] = {k: (o.get(k) if not isinstance(o.get(k), bool) else o.get(k))
                        for k in ("filter", "logpath", "action", "backend", "enabled", "failregex",
                                  "config-error")}
json.dump(out, sys.stdout, default=str)
"""


def f2b_run(script, stdin=None, args=()):
    env = dict(os.environ, PYTHONPATH=PYLIB)
    p = subprocess.run([sys.executable, "-c", script] + list(args), input=stdin,
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def mxjail_bin():
    if not BIN or not os.path.exists(BIN):
        pytest.skip("MXJAIL_BIN not built")
    return BIN


def spec_of(name, opts):
    items = []
    for k, v in opts.items():
        v = str(v)
        if '"' not in v:
            q = '"'
        elif "'" not in v:
            q = "'"
        else:
            raise ValueError("value with both quote kinds: %r" % v)
        items.append('%s=%s%s%s' % (k, q, v, q))
    return name + ("[" + ", ".join(items) + "]" if items else "")


def sample_option_sets(logname, seen=None):
    """filterOptions combinations of one sample log (fileOptions merged, addFILE
    followed), as fail2ban's samples test builds them."""
    path = os.path.join(LOGS, logname)
    seen = seen if seen is not None else set()
    if logname in seen or not os.path.isfile(path):
        return []
    seen.add(logname)
    sets, common = [], {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = ANNOT.match(line.rstrip("\n"))
            if not m:
                continue
            try:
                data = json.loads(m.group(2))
            except ValueError:
                continue
            if m.group(1) == "fileOptions":
                common = data
            elif m.group(1) == "filterOptions":
                for fo in (data if isinstance(data, list) else [data]):
                    opts = dict(common)
                    opts.update(fo)
                    sets.append({k: str(v) for k, v in opts.items() if not k.startswith("test.")})
            elif m.group(1) == "addFILE":
                sets.extend(sample_option_sets(data, seen))
    return sets


def filter_names():
    if not HAVE_ROOT:
        return []
    return sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(CONF, "filter.d/*.conf"))
                  if not p.endswith("common.conf"))


def all_cases():
    names = filter_names()
    glob_sets = []
    for logname in sorted(os.listdir(LOGS)) if HAVE_ROOT else []:
        for s in sample_option_sets(logname):
            if s not in glob_sets:
                glob_sets.append(s)
    cases = {}
    for n in names:
        sets = [{}]
        for s in sample_option_sets(n) + glob_sets:
            if s not in sets:
                sets.append(s)
        cases[n] = sets
    return cases


@pytest.fixture(scope="module")
def reference():
    cases = all_cases()
    flat = [(n, s) for n in sorted(cases) for s in cases[n]]
    res = f2b_run(F2B_FILTER_SCRIPT, stdin=json.dumps([CONF, flat]))
    return {(n, json.dumps(s, sort_keys=True)): r for (n, s), r in zip(flat, res)}, cases


def mx_filter(spec):
    p = subprocess.run([mxjail_bin(), "dumpconf", "-c", CONF, "--filter", spec],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return None, p.stderr
    return json.loads(p.stdout), p.stderr


def compare(ref, mine):
    diffs = []
    exp_max = ref["maxlines"] if ref["maxlines"] is not None else 1
    checks = [
        ("prefregex", ref["prefregex"], mine["prefregex"]),
        ("failregex", ref["failregex"], mine["failregex"]),
        ("ignoreregex", ref["ignoreregex"], mine["ignoreregex"]),
        ("maxlines", exp_max, mine["maxlines"]),
        ("datepattern", ref["datepattern"] or [], mine["datepattern"]),
        ("journalmatch", ref["journalmatch"], [shlex.split(j) for j in mine["journalmatch"]]),
    ]
    for what, a, b in checks:
        if a != b:
            diffs.append("%s: fail2ban %r\n    mxjail   %r" % (what, a, b))
    return diffs


@pytest.mark.parametrize("name", filter_names())
def test_filter_matches_fail2ban(name, reference, summary):
    ref_by_key, cases = reference
    failures = []
    nregex = nerr = 0
    for opts in cases[name]:
        spec = spec_of(name, opts)
        ref = ref_by_key[(name, json.dumps(opts, sort_keys=True))]
        mine, err = mx_filter(spec)
        if ref["error"]:
            if mine is not None:
                failures.append("%s: fail2ban fails (%s) but mxjail reads it" % (spec, ref["error"]))
            nerr += 1
            continue
        if mine is None:
            failures.append("%s: mxjail fails: %s" % (spec, err.strip()))
            continue
        nregex += len(mine["failregex"]) + len(mine["ignoreregex"])
        for d in compare(ref, mine):
            failures.append("%s: %s" % (spec, d))
    summary.append("config %-28s %3d option sets (%d refused by both), %4d regexes: %s" % (
        name, len(cases[name]), nerr, nregex,
        "identical" if not failures else "%d DIFFERENT" % len(failures)))
    assert not failures, "\n".join(failures[:10])


def test_filter_totals(reference, summary):
    _, cases = reference
    total = sum(len(v) for v in cases.values())
    summary.append("config: %d filters x option sets = %d comparisons" % (len(cases), total))
    assert len(cases) > 0


# ---- the fixture tree: corner cases of the dialect, same comparison ----

FIXTURE = os.path.join(os.environ.get("MXJAIL_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")),
                       "tests/fixtures/config/tree")
FIXTURE_SETS = [{}, {"mode": "more"}, {"mode": "aggressive"}, {"who": "bracket-who"},
                {"Mode": "more"}, {"family": "inet6"}, {"logtype": "journal"},
                {"knownval": "x,y", "blocktype": "DROP"}, {"who": "<mode>"},
                {"failregex": "^from-bracket <HOST>$"}, {"maxlines": "7"}]


def fixture_filters():
    return sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(FIXTURE, "filter.d/*.conf"))
                  if not p.endswith("common.conf"))


def test_fixture_filters_match_fail2ban(summary):
    flat = [(n, s) for n in fixture_filters() for s in FIXTURE_SETS]
    ref = f2b_run(F2B_FILTER_SCRIPT, stdin=json.dumps([FIXTURE, flat]))
    failures, same = [], 0
    for (name, opts), r in zip(flat, ref):
        spec = spec_of(name, opts)
        p = subprocess.run([mxjail_bin(), "dumpconf", "-c", FIXTURE, "--filter", spec],
                           capture_output=True, text=True, timeout=60)
        if r["error"]:
            if p.returncode == 0:
                failures.append("%s: fail2ban fails (%s) but mxjail reads it" % (spec, r["error"]))
            else:
                same += 1
            continue
        if p.returncode != 0:
            failures.append("%s: mxjail fails: %s" % (spec, p.stderr.strip()))
            continue
        diffs = compare(r, json.loads(p.stdout))
        failures.extend("%s: %s" % (spec, d) for d in diffs)
        same += not diffs
    summary.append("config fixtures: %d filter x option cases, %d identical" % (len(flat), same))
    assert not failures, "\n".join(failures[:10])


def test_fixture_jails_match_fail2ban(summary):
    ref = f2b_run(F2B_JAILS_SCRIPT, args=[FIXTURE])
    p = subprocess.run([mxjail_bin(), "dumpconf", "-c", FIXTURE], capture_output=True, text=True,
                       timeout=60)
    mine = {j["name"]: j for j in json.loads(p.stdout)["jails"]}
    failures, n = [], 0
    for name, r in ref.items():
        m = mine[name]
        if r.get("config-error"):
            continue
        n += 1
        exp = {"filter": r["filter"], "backend": r["backend"], "action": r["action"],
               "logpath": [x for x in (r["logpath"] or "").split("\n") if x],
               "failregex": r["failregex"]}
        got = {"filter": m["filter"], "backend": m["backend"], "action": m["opts"].get("action"),
               "logpath": m["logpath"], "failregex": m["opts"].get("failregex")}
        for k in exp:
            if exp[k] != got[k]:
                failures.append("%s.%s: fail2ban %r\n    mxjail   %r" % (name, k, exp[k], got[k]))
    assert sorted(j for j in mine if mine[j]["enabled"]) == sorted(ref)
    summary.append("config fixture jails: %d compared" % n)
    assert n >= 3
    assert not failures, "\n".join(failures)


# ---- jails ----

JAILS = ["sshd", "postfix", "postfix-rbl", "postfix-sasl", "dovecot", "recidive", "sieve",
         "courier-auth", "exim", "named-refused", "pure-ftpd", "roundcube-auth",
         "sendmail-auth", "apache-auth", "nginx-http-auth", "asterisk", "selinux-ssh"]


@pytest.fixture(scope="module")
def enabled_tree():
    tmp = tempfile.mkdtemp(prefix="mxjail-cfg-")
    tree = os.path.join(tmp, "fail2ban")
    shutil.copytree(CONF, tree, symlinks=True)
    # enable every jail, with one override per layer to exercise jail.local
    sections = []
    with open(os.path.join(CONF, "jail.conf"), encoding="utf-8") as fh:
        for line in fh:
            m = re.match(r"^\[([^\]]+)\]", line)
            if m and m.group(1) not in ("INCLUDES", "DEFAULT"):
                sections.append(m.group(1))
    with open(os.path.join(tree, "jail.local"), "w", encoding="utf-8") as fh:
        fh.write("[DEFAULT]\nbanaction = nftables-multiport\n\n")
        for s in sections:
            fh.write("[%s]\nenabled = true\n\n" % s)
    os.makedirs(os.path.join(tree, "jail.d"), exist_ok=True)
    with open(os.path.join(tree, "jail.d/zz-postfix.local"), "w", encoding="utf-8") as fh:
        fh.write("[postfix]\nmode = aggressive\nfailregex = %(known/failregex)s\n"
                 "            ^extra <HOST>$\n")
    yield tree
    shutil.rmtree(tmp)


def test_jails_match_fail2ban(enabled_tree, summary):
    ref = f2b_run(F2B_JAILS_SCRIPT, args=[enabled_tree])
    p = subprocess.run([mxjail_bin(), "dumpconf", "-c", enabled_tree], capture_output=True,
                       text=True, timeout=120)
    assert p.stdout, p.stderr
    mine = {j["name"]: j for j in json.loads(p.stdout)["jails"]}
    failures, compared = [], 0
    names = [n for n in ref if not ref[n].get("config-error")]
    for n in names:
        r, m = ref[n], mine.get(n)
        if m is None:
            failures.append("%s: missing in mxjail" % n)
            continue
        compared += 1
        exp_logpath = [x for x in (r["logpath"] or "").split("\n") if x]
        from_f2b = {"filter": r["filter"], "backend": r["backend"], "logpath": exp_logpath,
                    "action": r["action"], "enabled": True, "failregex": r["failregex"]}
        got = {"filter": m["filter"], "backend": m["backend"], "logpath": m["logpath"],
               "action": m["opts"].get("action"), "enabled": m["enabled"],
               "failregex": m["opts"].get("failregex")}
        for k in from_f2b:
            if from_f2b[k] != got[k]:
                failures.append("%s.%s: fail2ban %r\n    mxjail   %r" % (n, k, from_f2b[k], got[k]))
    for n in JAILS:
        assert n in names, "jail %s not read by fail2ban" % n
    summary.append("config jails: %d jails x 6 options compared with fail2ban's JailsReader: %s" % (
        compared, "identical" if not failures else "%d DIFFERENT" % len(failures)))
    assert not failures, "\n".join(failures[:10])


def test_jail_known_failregex_extends_filter(enabled_tree):
    """A jail's failregex replaces the filter's; %(known/failregex)s extends it."""
    p = subprocess.run([mxjail_bin(), "dumpconf", "-c", enabled_tree, "--jail", "postfix"],
                       capture_output=True, text=True, timeout=60)
    jail = json.loads(p.stdout)
    fr = jail["opts"]["failregex"].split("\n")
    assert fr[-1] == "^extra <HOST>$"
    assert len(fr) > 3
