"""test_journal - the journal source on real journal files.

Entries are written in journal export format and turned into .journal files
by systemd-journal-remote (no journald needed); tests/tools/srccheck reads
them with the journal source from that directory. Checked: journalmatch with
AND (different fields), OR (same field twice, `+`, one group per line),
dispatch of one shared handle to several match sets, fail2ban's line form and
times (also against fail2ban's own formatJournalEntry through python3-systemd
when that module is installed), cursor resume after a restart without
duplicates, entries appended to a file while reading, a second journal file
appearing (rotation), since/tail starts, bounded reads. Skips when
systemd-journal-remote or the srccheck helper is missing.
"""
import os
import queue
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT = "0123456789abcdef0123456789abcdef"
T0 = 1700000000000000  # microseconds


def find_srccheck():
    exe = os.environ.get("MXJAIL_SRCCHECK")
    if exe and os.access(exe, os.X_OK):
        return exe
    binp = os.environ.get("MXJAIL_BIN")
    if binp:
        cand = os.path.join(os.path.dirname(binp), "tests", "tools", "srccheck")
        if os.access(cand, os.X_OK):
            return cand
    return None


SRCCHECK = find_srccheck()
pytestmark = [
    pytest.mark.skipif(not os.access(REMOTE, os.X_OK),
                       reason="systemd-journal-remote not installed"),
    pytest.mark.skipif(SRCCHECK is None, reason="srccheck helper not built "
                       "(set MXJAIL_SRCCHECK or MXJAIL_BIN)"),
]


def export_entry(ts, mono=None, **fields):
    """One entry in journal export format (bytes); values with a newline use
    the binary form."""
    out = b"__REALTIME_TIMESTAMP=%d\n" % ts
    out += b"__MONOTONIC_TIMESTAMP=%d\n" % (mono if mono is not None else ts - T0 + 1000000)
    out += b"_BOOT_ID=%s\n" % BOOT.encode()
    for k, vals in fields.items():
        if not isinstance(vals, list):
            vals = [vals]
        for v in vals:
            v = v.encode() if isinstance(v, str) else v
            if b"\n" in v:
                out += k.encode() + b"\n" + struct.pack("<Q", len(v)) + v + b"\n"
            else:
                out += k.encode() + b"=" + v + b"\n"
    return out + b"\n"


def write_journal(d, name, entries):
    """Appends entries to d/name.journal (created when missing)."""
    fd, exp = tempfile.mkstemp(prefix="mxjail-exp-", suffix=".export")
    with os.fdopen(fd, "wb") as fh:
        for e in entries:
            fh.write(e)
    r = subprocess.run([REMOTE, "--output=" + os.path.join(d, name + ".journal"), exp],
                       capture_output=True, text=True)
    os.unlink(exp)
    assert r.returncode == 0, r.stderr


def unescape(s):
    out = bytearray()
    b = s.encode()
    i = 0
    while i < len(b):
        if b[i:i + 2] == b"\\\\":
            out += b"\\"
            i += 2
        elif b[i:i + 2] == b"\\x":
            out.append(int(b[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return out.decode("utf-8", "replace")


class Reader:
    def __init__(self, *args):
        self.p = subprocess.Popen([SRCCHECK, "journal", *map(str, args)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1)
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.first = self.q.get(timeout=10)

    def _read(self):
        for line in self.p.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def records(self, n, timeout=10.0):
        got = []
        end = time.time() + timeout
        while len(got) < n:
            try:
                r = self.q.get(timeout=max(0.01, end - time.time()))
            except queue.Empty:
                break
            if r is None:
                break
            if r.startswith("J "):
                _, name, t, text = (r.split(" ", 3) + [""])[:4]
                got.append((name, t, unescape(text)))
        return got

    def expect(self, expected, timeout=10.0):
        assert self.records(len(expected), timeout) == expected

    def quiet(self, t=0.5):
        assert self.records(1, t) == []

    def quit(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        cursor = None
        while True:
            r = self.q.get(timeout=10)
            assert r is not None, "srccheck ended without a cursor"
            assert not r.startswith("J "), "entry after quit: %r" % r
            if r.startswith("CURSOR "):
                cursor = r.split(" ", 1)[1]
                break
        self.p.stdin.close()
        assert self.p.wait(10) == 0
        return cursor

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def d():
    path = tempfile.mkdtemp(prefix="mxjail-jrn-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def readers():
    started = []
    yield started
    for r in started:
        r.kill()


def start(readers, *args):
    r = Reader(*args)
    readers.append(r)
    assert r.first == "READY", r.first
    return r


def ts(us):
    return "%.6f" % (us / 1e6)


MATCHES = [
    ("ssh", "_SYSTEMD_UNIT=ssh.service + _COMM=sshd"),
    ("pfand", "_SYSTEMD_UNIT=postfix@-.service SYSLOG_IDENTIFIER=postfix/smtpd"),
    ("pfor", "SYSLOG_IDENTIFIER=postfix/smtpd SYSLOG_IDENTIFIER=postfix/submission/smtpd"),
    ("dove", "_SYSTEMD_UNIT=dovecot.service\\n_TRANSPORT=kernel"),
    ("all", ""),
]


def match_args(sets=MATCHES):
    out = []
    for name, spec in sets:
        out += ["--match", name, spec]
    return out


def sample_entries():
    return [
        export_entry(T0 + 1, _HOSTNAME="mx", SYSLOG_IDENTIFIER="sshd", _PID="10",
                     _SYSTEMD_UNIT="ssh.service", _COMM="sshd",
                     MESSAGE="Failed password for root from 192.0.2.1 port 22 ssh2"),
        export_entry(T0 + 1000, _HOSTNAME="mx", SYSLOG_IDENTIFIER="postfix/smtpd", _PID="11",
                     _SYSTEMD_UNIT="postfix@-.service",
                     MESSAGE="warning: unknown[192.0.2.2]: SASL LOGIN authentication failed"),
        export_entry(T0 + 2000, _HOSTNAME="mx", SYSLOG_IDENTIFIER="dovecot", SYSLOG_PID="12",
                     _PID="99", _SYSTEMD_UNIT="dovecot.service",
                     MESSAGE="auth: line one\nline two"),
        export_entry(T0 + 3000, _HOSTNAME="mx", _COMM="sshd", _PID="13",
                     _SYSTEMD_UNIT="user@0.service", MESSAGE="sshd in another unit"),
        export_entry(T0 + 4000, _HOSTNAME="mx", SYSLOG_IDENTIFIER="postfix/submission/smtpd",
                     _PID="14", _SYSTEMD_UNIT="postfix@-.service",
                     MESSAGE="warning: x[192.0.2.3]: SASL PLAIN authentication failed"),
        export_entry(T0 + 5000, _HOSTNAME="mx", SYSLOG_IDENTIFIER="kernel", _TRANSPORT="kernel",
                     _SOURCE_MONOTONIC_TIMESTAMP="123456789", MESSAGE="IN=eth0 SRC=192.0.2.9"),
        export_entry(T0 + 6000, SYSLOG_IDENTIFIER="app", _PID="15",
                     _SOURCE_REALTIME_TIMESTAMP=str(T0 - 5000000),
                     MESSAGE=["first value", "second value"]),
        export_entry(T0 + 7000, _HOSTNAME="mx", SYSLOG_IDENTIFIER="weird", SYSLOG_PID="0x1f",
                     MESSAGE="hex pid"),
    ]


EXPECTED = [
    ("ssh", ts(T0 + 1), "mx sshd[10]: Failed password for root from 192.0.2.1 port 22 ssh2"),
    ("all", ts(T0 + 1), "mx sshd[10]: Failed password for root from 192.0.2.1 port 22 ssh2"),
    ("pfand", ts(T0 + 1000),
     "mx postfix/smtpd[11]: warning: unknown[192.0.2.2]: SASL LOGIN authentication failed"),
    ("pfor", ts(T0 + 1000),
     "mx postfix/smtpd[11]: warning: unknown[192.0.2.2]: SASL LOGIN authentication failed"),
    ("all", ts(T0 + 1000),
     "mx postfix/smtpd[11]: warning: unknown[192.0.2.2]: SASL LOGIN authentication failed"),
    ("dove", ts(T0 + 2000), "mx dovecot[12]: auth: line one\\nline two"),
    ("all", ts(T0 + 2000), "mx dovecot[12]: auth: line one\\nline two"),
    ("ssh", ts(T0 + 3000), "mx sshd[13]: sshd in another unit"),
    ("all", ts(T0 + 3000), "mx sshd[13]: sshd in another unit"),
    ("pfor", ts(T0 + 4000),
     "mx postfix/submission/smtpd[14]: warning: x[192.0.2.3]: SASL PLAIN authentication failed"),
    ("all", ts(T0 + 4000),
     "mx postfix/submission/smtpd[14]: warning: x[192.0.2.3]: SASL PLAIN authentication failed"),
    ("dove", ts(T0 + 5000), "mx kernel: [  123.456789] IN=eth0 SRC=192.0.2.9"),
    ("all", ts(T0 + 5000), "mx kernel: [  123.456789] IN=eth0 SRC=192.0.2.9"),
    ("all", ts(T0 - 5000000), "app[15]: first value second value"),
    ("all", ts(T0 + 7000), "mx weird[31]: hex pid"),
]


def test_matches_lines_and_times(d, readers):
    write_journal(d, "x", sample_entries())
    r = start(readers, "--dir", d, *match_args())
    r.expect(EXPECTED)
    r.quiet()


def test_format_same_as_fail2ban(d, summary):
    """fail2ban's own formatJournalEntry over python3-systemd on the same file."""
    f2b = os.environ.get("MXJAIL_F2B_ROOT", "")
    pylib = os.path.join(f2b, "usr/lib/python3/dist-packages")
    if not f2b or not os.path.isdir(pylib):
        pytest.skip("MXJAIL_F2B_ROOT not set: fail2ban not unpacked")
    probe = subprocess.run([sys.executable, "-c", "import systemd.journal"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("python3-systemd not installed")
    write_journal(d, "x", sample_entries())
    script = r'''
import sys
from systemd import journal
from fail2ban.server.filtersystemd import FilterSystemd
class Fake:
    jailName = "t"
    def getLogEncoding(self): return "UTF-8"
    def getJrnEntTime(self, e): return FilterSystemd.getJrnEntTime(self, e)
rd = journal.Reader(path=sys.argv[1], converters={"__CURSOR": lambda x: x})
for e in rd:
    (pre, date, line), t = FilterSystemd.formatJournalEntry(Fake(), e)
    print("%.6f %s" % (t, line))
'''
    env = dict(os.environ, PYTHONPATH=pylib, TZ="UTC")
    out = subprocess.run([sys.executable, "-c", script, d], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr
    theirs = out.stdout.splitlines()
    ours = ["%s %s" % (t, text) for name, t, text in EXPECTED if name == "all"]
    assert ours == theirs
    summary.append("journal format vs fail2ban: %d of %d entries identical"
                   % (len(theirs), len(ours)))


def test_cursor_resume_without_duplicates(d, readers):
    write_journal(d, "x", sample_entries()[:3])
    r = start(readers, "--dir", d, "--match", "all", "")
    got = r.records(3)
    assert [g[2].split(":")[0] for g in got] == ["mx sshd[10]", "mx postfix/smtpd[11]",
                                                  "mx dovecot[12]"]
    cursor = r.quit()
    assert cursor and cursor != "-"
    write_journal(d, "x", [export_entry(T0 + 10000 + i, SYSLOG_IDENTIFIER="late", _PID=str(i + 100),
                                        MESSAGE="late %d" % i) for i in range(3)])
    r2 = start(readers, "--dir", d, "--cursor", cursor, "--match", "all", "")
    r2.expect([("all", ts(T0 + 10000 + i), "late[%d]: late %d" % (i + 100, i)) for i in range(3)])
    r2.quiet()
    cursor2 = r2.quit()
    # nothing new: nothing delivered; the cursor stays
    r3 = start(readers, "--dir", d, "--cursor", cursor2, "--match", "all", "")
    r3.quiet()
    assert r3.quit() == cursor2


def test_cursor_resume_with_matches(d, readers):
    # the cursor entry itself may not fit the match set any more
    write_journal(d, "x", sample_entries())
    r = start(readers, "--dir", d, "--match", "all", "")
    assert len(r.records(8)) == 8
    cursor = r.quit()
    write_journal(d, "x", sample_entries())   # the same entries again, later in the file
    r2 = start(readers, "--dir", d, "--cursor", cursor, *match_args(MATCHES[:1]))
    r2.expect([EXPECTED[0], EXPECTED[7]])
    r2.quiet()


def test_live_append_and_second_file(d, readers):
    write_journal(d, "x", sample_entries()[:1])
    r = start(readers, "--dir", d, *match_args(MATCHES[:1]))
    r.expect([EXPECTED[0]])
    # appended to the open file while reading
    write_journal(d, "x", [export_entry(T0 + 20000, _HOSTNAME="mx", _COMM="sshd", _PID="20",
                                        MESSAGE="appended")])
    r.expect([("ssh", ts(T0 + 20000), "mx sshd[20]: appended")])
    # a second journal file appears (rotation): read once, nothing repeated
    write_journal(d, "y", [export_entry(T0 + 30000 + i, _HOSTNAME="mx", _COMM="sshd",
                                        _PID="30", MESSAGE="rotated %d" % i) for i in range(3)])
    r.expect([("ssh", ts(T0 + 30000 + i), "mx sshd[30]: rotated %d" % i) for i in range(3)])
    r.quiet()
    write_journal(d, "y", [export_entry(T0 + 40000, _HOSTNAME="mx", _COMM="sshd", _PID="40",
                                        MESSAGE="after rotation")])
    r.expect([("ssh", ts(T0 + 40000), "mx sshd[40]: after rotation")])
    cursor = r.quit()
    r2 = start(readers, "--dir", d, "--cursor", cursor, *match_args(MATCHES[:1]))
    r2.quiet()


def test_archived_file_renamed(d, readers):
    # journald's rotation: the active file is renamed to NAME@...journal and a
    # new NAME.journal takes its place
    write_journal(d, "system", [export_entry(T0 + i, SYSLOG_IDENTIFIER="a", _PID="1",
                                             MESSAGE="before %d" % i) for i in range(3)])
    r = start(readers, "--dir", d, "--match", "all", "")
    r.expect([("all", ts(T0 + i), "a[1]: before %d" % i) for i in range(3)])
    os.rename(os.path.join(d, "system.journal"),
              os.path.join(d, "system@0123456789abcdef0123456789abcdef-0000000000000001-"
                              "0005ffffffffffff.journal"))
    write_journal(d, "system", [export_entry(T0 + 100 + i, SYSLOG_IDENTIFIER="a", _PID="1",
                                             MESSAGE="after %d" % i) for i in range(3)])
    r.expect([("all", ts(T0 + 100 + i), "a[1]: after %d" % i) for i in range(3)])
    r.quiet()
    cursor = r.quit()
    r2 = start(readers, "--dir", d, "--cursor", cursor, "--match", "all", "")
    r2.quiet()


def test_since_and_tail(d, readers):
    write_journal(d, "x", sample_entries())
    r = start(readers, "--dir", d, "--since", "%.6f" % ((T0 + 5000) / 1e6), "--match", "all", "")
    r.expect([EXPECTED[12], EXPECTED[13], EXPECTED[14]])
    r.quiet()
    t = start(readers, "--dir", d, "--tail", "--match", "all", "")
    t.quiet()
    write_journal(d, "x", [export_entry(T0 + 50000, SYSLOG_IDENTIFIER="n", MESSAGE="new")])
    t.expect([("all", ts(T0 + 50000), "n: new")])


def test_bounded_reads(d, readers):
    n = 3000
    write_journal(d, "x", [export_entry(T0 + i, SYSLOG_IDENTIFIER="b", _PID=str(i + 1),
                                        MESSAGE="m %d" % i) for i in range(n)])
    r = start(readers, "--dir", d, "--per-turn", 7, "--match", "all", "")
    got = r.records(n, timeout=30)
    assert [g[2] for g in got] == ["b[%d]: m %d" % (i + 1, i) for i in range(n)]
    r.quiet()


def test_bad_match_is_refused(d, readers):
    write_journal(d, "x", sample_entries()[:1])
    for spec in ["sshd", "_SYSTEMD_UNIT=\"x", "unit=x"]:
        r = Reader("--dir", d, "--match", "bad", spec)
        readers.append(r)
        assert r.first.startswith("ERR journalmatch"), r.first
        assert r.p.wait(5) == 2
