"""test_dates_vs_fail2ban - mxjail's date detector against fail2ban's own.

Every line of every sample log shipped with fail2ban 1.0.2 goes through
fail2ban's DateDetector (run in Python from the unpacked package) and through
mxjail's detector (tests/tools/datecheck), once with the default templates and
once per datepattern found in fail2ban's filter.d, plus a few logtimezone
runs. Both must agree on every line: found or not, the time (to 1e-6 s) and
the span of the date text. The clock is fail2ban's test clock (1124013600,
TZ CET-01CEST-02,M3.5.0,M10.5.0). Skips when MXJAIL_F2B_ROOT is unset or the
datecheck helper was not built.
"""
import glob
import json
import os
import random
import re
import subprocess
import sys

import pytest

F2B_ROOT = os.environ.get("MXJAIL_F2B_ROOT", "")
PYLIB = os.path.join(F2B_ROOT, "usr/lib/python3/dist-packages")
LOGDIR = os.path.join(PYLIB, "fail2ban/tests/files/logs")
FILTERDIR = os.path.join(F2B_ROOT, "etc/fail2ban/filter.d")
TEST_NOW = 1124013600
TEST_TZ = "CET-01CEST-02,M3.5.0,M10.5.0"
LOG_ZONES = ["UTC+0200", "-05:30", "EST"]


def find_datecheck():
    exe = os.environ.get("MXJAIL_DATECHECK")
    if exe and os.access(exe, os.X_OK):
        return exe
    binp = os.environ.get("MXJAIL_BIN")
    if binp:
        cand = os.path.join(os.path.dirname(binp), "tests", "tools", "datecheck")
        if os.access(cand, os.X_OK):
            return cand
    return None


def collect_datepatterns():
    """datepattern values of filter.d/*.conf, as the config reader yields them
    (%% -> %), skipping those that need interpolation (%(x)s, <tag>)."""
    sets = []
    for conf in sorted(glob.glob(os.path.join(FILTERDIR, "*.conf"))):
        lines = open(conf, encoding="utf-8", errors="replace").read().split("\n")
        i = 0
        while i < len(lines):
            m = re.match(r"^datepattern\s*[=:]\s?(.*)$", lines[i], re.I)
            i += 1
            if not m:
                continue
            val = [m.group(1)]
            while i < len(lines) and lines[i][:1] in (" ", "\t") and lines[i].strip() \
                    and not lines[i].lstrip().startswith(("#", ";")):
                val.append(lines[i].strip())
                i += 1
            text = "\n".join(val)
            text = re.sub(r"\s;.*$", "", text, flags=re.M)
            if "%(" in text or re.search(r"<[^>]+>", text):
                continue
            pats = [p.strip().replace("%%", "%") for p in text.split("\n") if p.strip()]
            if pats and pats not in sets:
                sets.append(pats)
    return sets


def log_files():
    files = []
    for p in sorted(glob.glob(os.path.join(LOGDIR, "**"), recursive=True)):
        if os.path.isfile(p):
            files.append(p)
    return files


def read_lines(path):
    """Lines as text both sides agree on: invalid UTF-8 replaced, as mxjail's
    filter does before date detection."""
    data = open(path, "rb").read()
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", errors="replace") for p in parts]


# Runs in a child Python with fail2ban importable and the test clock/zone set.
REFERENCE = r'''
import json, os, sys, time
os.environ["TZ"] = sys.argv[1]
time.tzset()
from fail2ban.server.mytime import MyTime
MyTime.setTime(float(sys.argv[2]))
import fail2ban.server.datedetector as D
ORIG = list(D.DateDetectorCache.DEFAULT_TEMPLATES)

def reset():
    # Templates (and their hit counters) are cached process-wide in fail2ban;
    # mxjail keeps them per detector, so each job starts from fresh ones.
    D.DD_patternCache.clear()
    D.DateDetectorCache.DEFAULT_TEMPLATES[:] = ORIG
    D.DateDetector._defCache = D.DateDetectorCache()

def bspan(line, s, e):
    b = lambda n: len(line[:n].encode("utf-8", "surrogateescape"))
    if s < 0:
        s = e = max(len(line) - 1, 0)
    return b(s), b(e)

jobs = json.load(sys.stdin)
out = []
for job in jobs:
    reset()
    res = []
    try:
        dd = D.DateDetector()
        MyTime.setTime(job.get("now", float(sys.argv[2])))
        if job["tz"] is not None:
            dd.default_tz = job["tz"]
        for p in job["patterns"]:
            dd.appendTemplate(p)
        # fail2ban compiles lazily and then fails on every line; mxjail
        # refuses such a pattern up front.
        for t in dd.templates:
            t.template._compileRegex()
    except Exception as e:
        out.append({"error": "%s: %s" % (type(e).__name__, e)})
        continue
    for line in job["lines"]:
        try:
            m, tmpl = dd.matchTime(line)
        except Exception as e:
            res.append("E " + type(e).__name__)
            continue
        if not m:
            res.append("-")
            continue
        s, e = m.start(1), m.end(1)
        text = line[s:e]
        bs, be = bspan(line, s, e)
        if not text:
            res.append("%.6f %d %d" % (MyTime.time(), bs, be))
            continue
        try:
            date = dd.getTime(text, (m, tmpl))
        except Exception:
            date = None
        if date is None:
            res.append("! %d %d" % (bs, be))
        else:
            res.append("%.6f %d %d" % (date[0], bs, be))
    out.append({"results": res})
json.dump(out, sys.stdout)
'''


def run_reference(jobs):
    env = dict(os.environ, PYTHONPATH=PYLIB, TZ=TEST_TZ)
    p = subprocess.run([sys.executable, "-c", REFERENCE, TEST_TZ, str(TEST_NOW)],
                       input=json.dumps(jobs), capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


def run_mxjail(exe, job):
    args = [exe, "--now", repr(float(job.get("now", TEST_NOW)))]
    if job["tz"] is not None:
        args += ["--tz", job["tz"]]
    args += ["--"] + job["patterns"]
    data = "".join(l + "\n" for l in job["lines"]).encode("utf-8", "surrogateescape")
    p = subprocess.run(args, input=data, capture_output=True, timeout=120,
                       env=dict(os.environ, TZ=TEST_TZ))
    return p.returncode, p.stdout.decode().splitlines(), p.stderr.decode()


def same(a, b):
    if a == b:
        return True
    pa, pb = a.split(), b.split()
    if len(pa) != 3 or len(pb) != 3 or pa[0] in "!-" or pb[0] in "!-":
        return False
    return pa[1:] == pb[1:] and abs(float(pa[0]) - float(pb[0])) <= 1e-6


@pytest.fixture(scope="module")
def datecheck():
    if not F2B_ROOT or not os.path.isdir(LOGDIR):
        pytest.skip("MXJAIL_F2B_ROOT unset or without fail2ban's sample logs")
    exe = find_datecheck()
    if not exe:
        pytest.skip("tests/tools/datecheck not built (set MXJAIL_DATECHECK)")
    return exe


def make_jobs():
    files = log_files()
    logs = [(os.path.relpath(f, LOGDIR), read_lines(f)) for f in files]
    jobs = []
    for pats in [[]] + collect_datepatterns():
        for name, lines in logs:
            jobs.append({"name": name, "patterns": pats, "tz": None, "lines": lines})
    for tz in LOG_ZONES:
        for name, lines in logs:
            jobs.append({"name": name, "patterns": [], "tz": tz, "lines": lines})
    return jobs


def compare(datecheck, jobs):
    ref = run_reference(jobs)
    total = mismatches = 0
    report = []
    for job, r in zip(jobs, ref):
        rc, out, err = run_mxjail(datecheck, job)
        if "error" in r:
            # fail2ban refuses the pattern: so must mxjail.
            total += 1
            if rc != 2:
                mismatches += 1
                report.append("%s %r: fail2ban refuses (%s), mxjail accepts"
                              % (job["name"], job["patterns"], r["error"]))
            continue
        if rc != 0:
            mismatches += 1
            report.append("%r: mxjail refuses: %s" % (job["patterns"], err.strip()))
            continue
        for n, (line, a, b) in enumerate(zip(job["lines"], r["results"], out), 1):
            total += 1
            if a == "E IndexError" and line == "":
                # fail2ban's matchTime indexes past the end of an empty line
                # when an empty date match ({NONE}) wins; mxjail returns the
                # empty match.
                continue
            if not same(a, b):
                mismatches += 1
                if len(report) < int(os.environ.get("DATES_REPORT", "40")):
                    report.append("%s:%d %r tz=%s now=%s\n  line: %r\n  fail2ban: %s\n"
                                  "  mxjail:   %s" % (job["name"], n, job["patterns"], job["tz"],
                                                     job.get("now"), line[:160], a, b))
        if len(out) != len(job["lines"]):
            mismatches += 1
            report.append("%s: %d lines in, %d results out" % (job["name"], len(job["lines"]),
                                                              len(out)))
    return total, mismatches, report


def test_dates_match_fail2ban(datecheck):
    jobs = make_jobs()
    total, mismatches, report = compare(datecheck, jobs)
    print("sample logs: date lines compared: %d, mismatches: %d (%d jobs)"
          % (total, mismatches, len(jobs)))
    assert mismatches == 0, "\n".join(report)


# Synthetic lines: every token, odd values, zones, prefixes and mixed formats
# in one stream (so that template reordering is exercised), at clocks around
# a new year as well as the test clock.
SYN_PATTERNS = [
    [], ["{^LN-BEG}"], ["{DEFAULT}"], ["{NONE}"], ["{DATE}"], ["^<\\d+>\\d+\\s+{DATE}"],
    ["%Y-%m-%d %H:%M:%S"], ["^%Y-%m-%d %H:%M:%S"], ["{^LN-BEG}%Y-%m-%d %H:%M:%S"],
    ["{UNB}%H:%M:%S"], ["**%H:%M:%S**"], ["%d/%b/%Y:%H:%M:%S %z"],
    ["%a %b %d %H:%M:%S %Y"], ["%A, %B %d %Y %I:%M:%S %p"], ["%b %d %l:%M:%S %p"],
    ["%j %Y %H:%M:%S"], ["%j %H:%M:%S"], ["%U %w %Y %H:%M"], ["%W %a %Y %H:%M"], ["%c"],
    ["%x %X"], ["%ExY%Exm%Exd%ExH%ExM%ExS"], ["%Exd.%Exm.%Exy %Exk:%ExM"],
    ["%Exl:%M %p"], ["%b %d %H:%M:%S %ExZ"], ["%b %d %H:%M:%S %Exz"],
    ["%Y-%m-%d %H:%M:%S %Z"], ["%Y-%m-%d %H:%M:%S %z"], ["%G-%V-%u %H:%M"], ["%%%H:%M:%S"],
    ["%y/%m/%d %k:%M:%S"], ["%H:%M:%S"], ["%d %b %H:%M"], ["%H:%M"],
    ["EPOCH"], ["LEPOCH"], ["^EPOCH"], ["{^LN-BEG}EPOCH"], ["{^LN-BEG}LEPOCH"],
    ["TAI64N"], ["^TAI64N"], ["^\\[{EPOCH}\\]"], ["{^LN-BEG}{LEPOCH}"],
    ["ts={EPOCH}"], ["^(?P<Y>\\d{4})/(?P<m>\\d\\d)/(?P<d>\\d\\d) (?P<H>\\d\\d)h"],
    ["(?i)%b %d %H:%M:%S"], ["^(\\S+) %H:%M:%S"], ["(?:%H:%M:%S)?x"], ["T=(%H:%M)?;"],
    ["%Y-%m-%d %H:%M:%S", "%b %d %H:%M:%S", "EPOCH"], ["{^LN-BEG}TAI64N", "{^LN-BEG}"],
    ["%q"], ["(unclosed %H"], ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"],
]


def synthetic_lines(seed=7, n=700):
    rnd = random.Random(seed)
    mons = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
            "Dec"]
    fmons = ["January", "February", "March", "December", "august"]
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "mon", "SUN"]
    fdays = ["Monday", "Sunday", "friday"]
    zones = ["Z", "UTC", "GMT", "+0200", "-05:30", "+02", "-1130", "CEST", "PST", "ABCD",
             "utc", "error", "ChST", "NZDT", "Y", "UTC+0200"]
    pre = ["", "", "", "[", "<", "host ", "x", "\u00e9", "\u0660", "audit(", "  ", "@", "ts=",
           "T=", "%", "<13>1 "]
    post = ["", " msg", "]", ">", ":123)", "x", " sshd[1]: Failed", "\u00e9", ".5", "Z", ";"]

    def num(a, b, w=2):
        v = rnd.randint(a, b)
        return ("%0*d" % (w, v)) if rnd.random() < 0.8 else str(v)

    def hms():
        return "%s:%s:%s" % (num(0, 25), num(0, 61), num(0, 61))

    def y():
        return str(rnd.choice([2004, 2005, 2005, 2006, 2019, 2030, 1999]))

    gens = [
        lambda: "%s-%s-%s %s" % (y(), num(1, 13), num(1, 32), hms()),
        lambda: "%s-%s-%sT%s.%s%s" % (y(), num(1, 12), num(1, 31), hms(),
                                      rnd.randint(0, 999999), rnd.choice(zones)),
        lambda: "%s %s %2d %s" % (rnd.choice(days), rnd.choice(mons), rnd.randint(1, 31), hms()),
        lambda: "%s %2d %s" % (rnd.choice(mons), rnd.randint(0, 32), hms()),
        lambda: "%s %2d %s %s" % (rnd.choice(mons), rnd.randint(1, 31), hms(), y()),
        lambda: "%s %s %2d %s" % (rnd.choice(zones), rnd.choice(mons), rnd.randint(1, 31),
                                  hms()),
        lambda: "%s/%s/%s:%s %s" % (num(1, 31), rnd.choice(mons), y(), hms(),
                                    rnd.choice(zones)),
        lambda: "%s/%s/%s %s" % (num(1, 31), num(1, 12), y()[2:], hms()),
        lambda: "%s, %s %s %s %s:%s:%s %s" % (rnd.choice(fdays), rnd.choice(fmons),
                                              num(1, 31), y(), num(0, 13), num(0, 59),
                                              num(0, 59), rnd.choice(["AM", "pm", "am"])),
        lambda: "%s %s, %s %s:%s:%s %s" % (rnd.choice(mons), num(1, 31), y(), num(1, 12),
                                           num(0, 59), num(0, 59), rnd.choice(["AM", "PM"])),
        lambda: "%s %s %s" % (num(1, 366, 3), y(), hms()),
        lambda: "%s %s %s %s:%s" % (num(0, 53), rnd.randint(0, 6), y(), num(0, 23),
                                    num(0, 59)),
        lambda: "%s %s %s %s:%s" % (num(0, 53), rnd.choice(days), y(), num(0, 23),
                                    num(0, 59)),
        lambda: str(rnd.randint(1000000000, 19999999999)) +
        rnd.choice(["", ".123", ".1234567", "123", "123456", "123.5"]),
        lambda: "@4000000%017x" % rnd.randint(0, 1 << 66),
        lambda: "%s%s%s%s%s%s" % (y(), num(1, 12), num(1, 31), num(0, 23), num(0, 59),
                                  num(0, 59)),
        lambda: "%s%s%s %s" % (y()[2:], num(1, 12), num(1, 31), hms()),
        lambda: hms(),
        lambda: "%s:%s" % (num(0, 24), num(0, 60)),
        lambda: "%s %s %s" % (num(1, 31), rnd.choice(mons), hms()[:5]),
        lambda: "%s/%s/%s %s" % (y(), num(1, 12), num(1, 31), num(0, 23)) + "h",
        lambda: "<%s/%s/%s@%s>" % (num(1, 12), num(1, 31), y()[2:], hms()),
        lambda: "%s-%s-%s %s" % (rnd.choice(mons), num(1, 31), y()[2:], hms()),
        lambda: "",
        lambda: "no date here at all",
    ]
    lines = []
    for _ in range(n):
        g = rnd.choice(gens)
        body = g()
        line = rnd.choice(pre) + body + rnd.choice(post)
        if rnd.random() < 0.15:
            line = "prefix text " + line
        if rnd.random() < 0.3:
            # runs of the same shape, as in real logs
            lines.extend([line] * rnd.randint(1, 4))
        lines.append(line)
    return lines


def test_synthetic_dates_match_fail2ban(datecheck):
    lines = synthetic_lines()
    nows = [TEST_NOW, 1104533400.0, 1104535800.5, 1104447600.0, 1130630400.0, 1111885200.0]
    jobs = []
    for pats in SYN_PATTERNS:
        for now in nows:
            jobs.append({"name": "synthetic", "patterns": pats, "tz": None, "now": now,
                         "lines": lines})
    for tz in LOG_ZONES:
        jobs.append({"name": "synthetic", "patterns": [], "tz": tz, "now": TEST_NOW,
                     "lines": lines})
    total, mismatches, report = compare(datecheck, jobs)
    print("synthetic: date lines compared: %d, mismatches: %d (%d jobs)"
          % (total, mismatches, len(jobs)))
    assert mismatches == 0, "\n".join(report)
