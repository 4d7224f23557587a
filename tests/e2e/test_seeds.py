"""test_seeds - the two jail.local files of issue 3's seeds, read unchanged by mxjail.

tests/fixtures/seeds/jail1.local (a VPS tutorial: old filter names pureftpd,
dovecot-pop3imap, sasl, ssh; iptables-multiport and hostsdeny actions) and
jail2.local (a Docker mail host: postfix[mode=auth], dovecot[mode=aggressive],
recidive on fail2ban.log) are each put as jail.local into a copy of mxjail's
etc/. Only the logpath values are rewritten, to files under the temp dir (same
path below it), and a paths-overrides.local in the copied tree points the
distribution paths (used by jails without a logpath) there too, so nothing on
the host is read. Then:
  - `mxjail check` passes and `mxjail dumpconf` shows the seed's jails and
    settings, with the old filter names resolved to the right filters
    (pureftpd -> pure-ftpd, dovecot-pop3imap -> dovecot, sasl -> postfix
    auth mode, ssh -> sshd);
  - `mxjail run --backend null` on the tree counts failure lines for every
    seed jail and bans at its maxretry, whatever the jail's banaction;
  - the seeds as jail.local of Debian's stock fail2ban tree (MXJAIL_F2B_ROOT)
    pass `mxjail check`, or fail naming the replacement of an old filter name.

The daemon is stopped by its PID at the end of each test.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

BIN = os.environ.get("MXJAIL_BIN")
SRC = os.environ.get("MXJAIL_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SEEDS = os.path.join(SRC, "tests", "fixtures", "seeds")
F2B_ROOT = os.environ.get("MXJAIL_F2B_ROOT")

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set")

LOGPATH_RE = re.compile(r"^(logpath\s*=\s*)(/\S+)(\s*)$", re.M)


def mx(*args, timeout=60):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout)


def poll(fn, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def seed_text(n):
    with open(os.path.join(SEEDS, "jail%d.local" % n)) as f:
        return f.read()


def build_tree(tmp, n, base=None):
    """Copies a configuration tree (mxjail's etc/ by default) to tmp/conf with seed n as
    jail.local, logpaths moved below tmp. Returns (conf dir, {original path: temp path})."""
    tmp = str(tmp)
    conf = os.path.join(tmp, "conf")
    shutil.copytree(base or os.path.join(SRC, "etc"), conf)
    moved = {}

    def relocate(path):
        moved[path] = tmp + path
        return tmp + path

    text = LOGPATH_RE.sub(lambda m: m.group(1) + relocate(m.group(2)) + m.group(3), seed_text(n))
    with open(os.path.join(conf, "jail.local"), "w") as f:
        f.write(text)
    # the distribution paths as well, for jails that name no logpath (seed #2, sshd)
    paths = os.path.join(conf, "paths-debian.conf")
    if os.path.exists(paths):
        over = ["[DEFAULT]"]
        with open(paths) as f:
            for line in f:
                m = re.match(r"^(\w+)\s*=\s*(/var/log/\S+)\s*$", line)
                if m:
                    over.append("%s = %s" % (m.group(1), relocate(m.group(2))))
        with open(os.path.join(conf, "paths-overrides.local"), "w") as f:
            f.write("\n".join(over) + "\n")
    for p in moved.values():
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "a").close()
    return conf, moved


def test_seed_files_are_the_issue_text():
    """The fixtures carry the settings issue 3 quotes (guards against edits)."""
    s1, s2 = seed_text(1), seed_text(2)
    for needle in ("ignoreip = 127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 8.8.8.8",
                   "bantime  = 600", "findtime = 300", "maxretry = 4",
                   "#banaction = iptables-multiport", "#action = %(action_mw)s", "#destemail",
                   "[pureftpd]", "filter   = pureftpd", "maxretry = 6",
                   "[dovecot-pop3imap]", "filter = dovecot-pop3imap",
                   'action = iptables-multiport[name=dovecot-pop3imap, '
                   'port="pop3,pop3s,imap,imaps", protocol=tcp]',
                   "port     = smtp,ssmtp\n",
                   "port     = smtp,ssmtp,imap2,imap3,imaps,pop3,pop3s", "filter   = sasl",
                   "[ssh]", "filter   = sshd", "bantime  = 1200",
                   "[named-refused-udp]", "[named-refused-tcp]", "protocol = udp",
                   "protocol = tcp", "logpath  = /var/log/daemon.log", "action   = hostsdeny",
                   "bantime  = 1800", "maxretry = 10"):
        assert needle in s1, needle
    for needle in ("ignoreip = 127.0.0.1\n", "banaction = iptables-multiport",
                   "[postfix-sasl]", "filter = postfix[mode=auth]", "backend = auto",
                   "[dovecot]", "filter = dovecot[mode=aggressive]", "[recidive]",
                   "bantime = 31536000", "findtime = 18144000", "maxretry = 2",
                   "logpath = /var/log/fail2ban.log"):
        assert needle in s2, needle


def test_only_logpaths_are_rewritten(tmp_path):
    for n in (1, 2):
        conf, moved = build_tree(tmp_path / str(n), n)
        with open(os.path.join(conf, "jail.local")) as f:
            new = f.read().splitlines()
        old = seed_text(n).splitlines()
        assert len(new) == len(old)
        diff = [(a, b) for a, b in zip(old, new) if a != b]
        assert diff and all(a.startswith("logpath") and b.startswith("logpath") for a, b in diff)


def jails_of(conf):
    r = mx("dumpconf", "-c", conf)
    assert r.returncode == 0, r.stderr
    return {j["name"]: j for j in json.loads(r.stdout)["jails"]}


def filter_dump(conf, spec):
    r = mx("dumpconf", "-c", conf, "--filter", spec)
    assert r.returncode == 0, "%s: %s" % (spec, r.stderr)
    return json.loads(r.stdout)


def assert_same_filter(conf, old, new, srcfile):
    """`old` loads the regexes of `new`, defined in filter.d/srcfile."""
    a, b = filter_dump(conf, old), filter_dump(conf, new)
    assert a["failregex"] and a["failregex"] == b["failregex"], (old, new)
    assert a["prefregex"] == b["prefregex"]
    srcs = {os.path.basename(s.rsplit(":", 1)[0]) for s in a["failregex_src"]}
    assert srcs == {srcfile}, (old, srcs)


def test_seed1_check_and_dumpconf(tmp_path):
    conf, moved = build_tree(tmp_path, 1)
    r = mx("check", "-c", conf)
    assert r.returncode == 0, r.stdout + r.stderr
    jails = jails_of(conf)
    enabled = {n for n, j in jails.items() if j["enabled"]}
    seed = {"pureftpd", "dovecot-pop3imap", "postfix", "sasl", "ssh", "named-refused-udp",
            "named-refused-tcp"}
    assert seed <= enabled, enabled
    want = {  # jail: filter, logpath, port, protocol, maxretry, bantime
        "pureftpd": ("pureftpd", "/var/log/syslog", "ftp", "tcp", "6", "600"),
        "dovecot-pop3imap": ("dovecot-pop3imap", "/var/log/mail.log", None, "tcp", "4", "600"),
        "postfix": ("postfix", "/var/log/mail.log", "smtp,ssmtp", "tcp", "4", "600"),
        "sasl": ("sasl", "/var/log/mail.log", "smtp,ssmtp,imap2,imap3,imaps,pop3,pop3s", "tcp",
                 "4", "600"),
        "ssh": ("sshd", "/var/log/auth.log", "ssh", "tcp", "4", "1200"),
        "named-refused-udp": ("named-refused", "/var/log/daemon.log", "domain,953", "udp",
                              "10", "1800"),
        "named-refused-tcp": ("named-refused", "/var/log/daemon.log", "domain,953", "tcp",
                              "10", "1800"),
    }
    for name, (flt, log, port, proto, maxretry, bantime) in want.items():
        j = jails[name]
        assert j["filter"] == flt, name
        assert j["logpath"] == [moved[log]], name
        o = j["opts"]
        assert o["maxretry"] == maxretry and o["bantime"] == bantime and o["findtime"] == "300"
        assert o["ignoreip"] == "127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 8.8.8.8"
        assert o["protocol"] == proto, name
        if port:
            assert o["port"] == port, name
    assert jails["dovecot-pop3imap"]["action"] == [
        'iptables-multiport[name=dovecot-pop3imap, port="pop3,pop3s,imap,imaps", protocol=tcp]']
    assert jails["named-refused-udp"]["action"] == ["hostsdeny"]
    assert jails["named-refused-tcp"]["action"] == ["hostsdeny"]
    # the commented-out lines stay comments: the stock banaction and action are in force
    assert jails["postfix"]["opts"]["banaction"] == "nftables-multiport"
    assert jails["postfix"]["action"][0].startswith("nftables-multiport[")

    # the old filter names load the current filters
    assert_same_filter(conf, "pureftpd", "pure-ftpd", "pure-ftpd.conf")
    assert_same_filter(conf, "dovecot-pop3imap", "dovecot", "dovecot.conf")
    assert_same_filter(conf, "sasl", "postfix[mode=auth]", "postfix.conf")
    assert_same_filter(conf, "ssh", "sshd", "sshd.conf")
    assert_same_filter(conf, jails["ssh"]["filter"], "sshd", "sshd.conf")


def test_seed2_check_and_dumpconf(tmp_path):
    conf, moved = build_tree(tmp_path, 2)
    r = mx("check", "-c", conf)
    assert r.returncode == 0, r.stdout + r.stderr
    jails = jails_of(conf)
    for name in ("postfix-sasl", "dovecot", "recidive"):
        assert jails[name]["enabled"], name
    for name in ("postfix-sasl", "dovecot"):
        o = jails[name]["opts"]
        assert (o["bantime"], o["findtime"], o["maxretry"]) == ("86400", "1800", "3"), name
        assert jails[name]["backend"] == "auto"
        assert jails[name]["logpath"] == [moved["/var/log/mail.log"]], name
        assert jails[name]["action"][0].startswith("iptables-multiport["), name
        assert o["ignoreip"] == "127.0.0.1"
    assert jails["postfix-sasl"]["filter"] == "postfix[mode=auth]"
    assert jails["dovecot"]["filter"] == "dovecot[mode=aggressive]"
    o = jails["recidive"]["opts"]
    assert (o["bantime"], o["findtime"], o["maxretry"]) == ("31536000", "18144000", "2")
    assert jails["recidive"]["logpath"] == [moved["/var/log/fail2ban.log"]]
    # the modes are applied: auth = the old sasl filter, aggressive adds the no-auth sessions
    assert_same_filter(conf, "postfix[mode=auth]", "sasl", "postfix.conf")
    aggr = filter_dump(conf, "dovecot[mode=aggressive]")["failregex"]
    normal = filter_dump(conf, "dovecot")["failregex"]
    assert len([x for x in aggr if x]) > len([x for x in normal if x])


# ---------- the daemon on the seeds ----------


def stamp(t=None):
    return time.strftime("%b %d %H:%M:%S", time.localtime(time.time() if t is None else t))


def l_pureftpd(a):
    return "%s mx pure-ftpd: (?@%s) [WARNING] Authentication failed for user [admin]\n" % (
        stamp(), a)


def l_dovecot(a):
    return ("%s mx dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): "
            "user=<bob>, method=PLAIN, rip=%s, lip=192.0.2.1, session=<Xy1Zz2Q>\n" % (stamp(), a))


def l_dovecot_noauth(a):
    return ("%s mx dovecot: imap-login: Disconnected (no auth attempts in 0 secs): user=<>, "
            "rip=%s, lip=192.0.2.1, session=<Xy1Zz2Q>\n" % (stamp(), a))


def l_postfix(a):
    return ("%s mx postfix/smtpd[1234]: NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 "
            "<x@example.com>: Relay access denied; from=<a@example.net> to=<x@example.com> "
            "proto=ESMTP helo=<spam>\n" % (stamp(), a))


def l_sasl(a):
    return ("%s mx postfix/smtpd[1234]: warning: unknown[%s]: SASL LOGIN authentication "
            "failed: UGFzc3dvcmQ6\n" % (stamp(), a))


def l_ssh(a):
    return "%s mx sshd[4242]: Failed password for root from %s port 52144 ssh2\n" % (stamp(), a)


def l_named(a):
    return ("%s mx named[811]: client @0x7f1 %s#5353 (example.com): query (cache) "
            "'example.com/A/IN' denied\n" % (stamp(), a))


def l_f2b_ban(a):
    return "%s,123 fail2ban.actions        [1234]: NOTICE  [postfix-sasl] Ban %s\n" % (
        time.strftime("%Y-%m-%d %H:%M:%S"), a)


class Run:
    def __init__(self, tmp, conf):
        self.tmp = str(tmp)
        self.sock = os.path.join(self.tmp, "run", "mxjail.sock")
        self.out = os.path.join(self.tmp, "mxjail.log")
        cmd = [BIN, "run", "-f", "-c", conf, "--state", os.path.join(self.tmp, "state"),
               "--socket", self.sock, "--logtarget", self.out, "--loglevel", "DEBUG",
               "--backend", "null"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("mxjail exited %d: %s" % (self.proc.returncode,
                                                              self.proc.stderr.read()))
            if self.cli("ping").returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError("mxjail did not answer on " + self.sock)

    def cli(self, *args):
        return subprocess.run([BIN] + list(args) + ["--socket", self.sock], capture_output=True,
                              text=True, timeout=20)

    def json(self, *args):
        r = self.cli(*(list(args) + ["--json"]))
        assert r.returncode == 0, "%s: %s%s" % (args, r.stdout, r.stderr)
        return json.loads(r.stdout)

    def failed(self, jail):
        return self.json("status", jail)["total_failed"]

    def banned(self):
        return {(b["jail"], b["address"]) for b in self.json("banned")}

    def logtext(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc.stderr.close()


def append(path, *lines):
    with open(path, "a") as f:
        f.write("".join(lines))


def run_jails(tmp, conf, plan):
    """plan: [(jails, file, line maker, address, maxretry)]. Feeds maxretry - 1 lines for
    each entry, checks they are counted and nothing is banned, then one more: banned."""
    d = Run(tmp, conf)
    try:
        for jails, path, mk, addr, maxretry in plan:
            append(path, *[mk(addr) for _ in range(maxretry - 1)])
        for jails, path, mk, addr, maxretry in plan:
            for j in jails:
                poll(lambda: d.failed(j) == maxretry - 1, what="%s: %d failures of %s counted"
                     % (j, maxretry - 1, addr))
        assert d.banned() == set(), d.banned()
        for jails, path, mk, addr, maxretry in plan:
            append(path, mk(addr))
        want = {(j, addr) for jails, _, _, addr, _ in plan for j in jails}
        poll(lambda: want <= d.banned(), what="the bans %s" % sorted(want))
        assert d.banned() == want
        for jails, _, _, addr, maxretry in plan:
            for j in jails:
                st = d.json("status", j)
                assert st["total_failed"] == maxretry and addr in st["banned"], (j, st)
        return d.logtext()
    finally:
        d.stop()


def test_seed1_runs(tmp_path):
    conf, moved = build_tree(tmp_path, 1)
    syslog, mail = moved["/var/log/syslog"], moved["/var/log/mail.log"]
    auth, daemon = moved["/var/log/auth.log"], moved["/var/log/daemon.log"]
    # addresses outside the seed's ignoreip (which ignores 10/8, 172.16/12, 192.168/16)
    log = run_jails(tmp_path, conf, [
        (["pureftpd"], syslog, l_pureftpd, "203.0.113.5", 6),
        (["dovecot-pop3imap"], mail, l_dovecot, "203.0.113.6", 4),
        (["postfix"], mail, l_postfix, "203.0.113.7", 4),
        (["sasl"], mail, l_sasl, "203.0.113.8", 4),
        (["ssh", "sshd"], auth, l_ssh, "2001:db8:5::9", 4),
        (["named-refused-udp", "named-refused-tcp"], daemon, l_named, "198.51.100.10", 10),
    ])
    for j in ("pureftpd", "dovecot-pop3imap", "named-refused-udp", "ssh"):
        assert "[%s] Ban " % j in log, j
    # iptables-multiport / hostsdeny: if their native backend is missing, the jail says
    # so and keeps counting (checked above), it is not dropped
    for j in ("dovecot-pop3imap", "named-refused-udp", "named-refused-tcp"):
        for l in log.splitlines():
            if "jail [%s]:" % j in l and "not built" in l:
                assert "counts failures" in l, l


def test_seed1_ignoreip(tmp_path):
    conf, moved = build_tree(tmp_path, 1)
    d = Run(tmp_path, conf)
    try:
        append(moved["/var/log/auth.log"], *[l_ssh("192.168.7.7") for _ in range(5)])
        append(moved["/var/log/auth.log"], *[l_ssh("8.8.8.8") for _ in range(5)])
        poll(lambda: "Ignore 8.8.8.8" in d.logtext(), what="8.8.8.8 ignored")
        assert "Ignore 192.168.7.7" in d.logtext()
        assert d.banned() == set() and d.failed("ssh") == 0
    finally:
        d.stop()


def test_seed2_runs(tmp_path):
    conf, moved = build_tree(tmp_path, 2)
    mail, f2b = moved["/var/log/mail.log"], moved["/var/log/fail2ban.log"]
    log = run_jails(tmp_path, conf, [
        (["postfix-sasl"], mail, l_sasl, "203.0.113.21", 3),
        # a session without any login attempt counts only in aggressive mode
        (["dovecot"], mail, l_dovecot_noauth, "203.0.113.20", 3),
        (["recidive"], f2b, l_f2b_ban, "198.51.100.23", 2),
    ])
    for j in ("postfix-sasl", "dovecot", "recidive"):
        assert "[%s] Ban " % j in log, j


# ---------- against Debian's stock fail2ban tree ----------

# old name -> (filter to use instead, words its error message must name)
REPLACEMENT = {"pureftpd": ("pure-ftpd", ["pure-ftpd"]),
               "dovecot-pop3imap": ("dovecot", ["dovecot"]),
               "sasl": ("postfix[mode=auth]", ["postfix", "auth"])}


@pytest.mark.skipif(not F2B_ROOT or not os.path.isdir(os.path.join(F2B_ROOT or "", "etc",
                                                                   "fail2ban")),
                    reason="MXJAIL_F2B_ROOT (Debian's fail2ban unpacked) not set")
@pytest.mark.parametrize("n", [1, 2])
def test_seed_on_stock_fail2ban_tree(tmp_path, n):
    conf, _ = build_tree(tmp_path, n, base=os.path.join(F2B_ROOT, "etc", "fail2ban"))
    r = mx("check", "-c", conf)
    if r.returncode == 0:
        if n == 1:  # resolved: then to the right filters of the stock tree
            for old, (new, _) in REPLACEMENT.items():
                assert_same_filter(conf, old, new, new.split("[")[0] + ".conf")
        return
    # Debian's fail2ban 1.0.2 has no filter files under the old names: mxjail may refuse
    # them, but only with a message that names the filter to use instead.
    out = r.stdout + r.stderr
    # ("... cannot be used (N errors above)" only points at the jail section)
    errs = [l for l in out.splitlines() if "error" in l and "above)" not in l]
    assert errs, out
    assert n == 1, out
    for l in errs:
        m = re.search(r"filter '([^'\[]+)", l)
        assert m and m.group(1) in REPLACEMENT, "unexpected error: " + l
        rest = l.replace(m.group(1), "")  # the old name is no hint (dovecot-pop3imap.conf)
        for word in REPLACEMENT[m.group(1)][1]:
            assert word in rest, "the error does not name the replacement: " + l
