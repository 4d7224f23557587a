"""test_daemon - `mxjail run` end to end, steered through the control CLI.

Each test builds its own configuration tree in a temp dir (mxjail's etc/ copied,
plus a jail.local with an sshd jail on a temp log file), starts the daemon with
its own state dir and socket and the null firewall backend (dry run), appends
failure lines and checks the answers of `status`, `banned`, `why`, `ban`,
`unban`, `get`/`set`. Covers kill -9 and restart (live bans kept with their
remaining time, no log line counted twice), a first start that reads back only
`findtime`, SIGHUP keeping bans and counters, and a bad configuration. One test
runs the real nftables backend inside a network namespace and looks for the
banned address in the nft set (root, nft and ip needed; skipped otherwise).

The daemon is always stopped by its PID at the end of the test.
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

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set")

ATTACKER = "192.0.2.7"
OTHER = "198.51.100.23"


def syslog_line(addr, t=None, user="root"):
    t = time.time() if t is None else t
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(t))
    return "%s mx sshd[4242]: Failed password for %s from %s port 52144 ssh2\n" % (stamp, user, addr)


class Daemon:
    """One mxjail run in a temp tree; cli() talks to it over its own socket."""

    def __init__(self, tmp, maxretry=3, findtime="10m", bantime="1h", extra="", netns=None,
                 backend="polling"):
        self.tmp = str(tmp)
        self.conf = os.path.join(self.tmp, "conf")
        self.state = os.path.join(self.tmp, "state")
        self.sock = os.path.join(self.tmp, "run", "mxjail.sock")
        self.log = os.path.join(self.tmp, "auth.log")
        self.out = os.path.join(self.tmp, "mxjail.log")
        self.netns = netns
        self.prefix = None  # a command to run mxjail under (e.g. unshare -m ...)
        self.proc = None
        if not os.path.isdir(self.conf):
            shutil.copytree(os.path.join(SRC, "etc"), self.conf)
        with open(os.path.join(self.conf, "jail.local"), "w") as f:
            f.write("[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 10.0.0.0/8\n\n"
                    "[sshd]\nenabled = true\nlogpath = %s\nbackend = %s\n"
                    "maxretry = %d\nfindtime = %s\nbantime = %s\n%s\n"
                    % (self.log, backend, maxretry, findtime, bantime, extra))
        if not os.path.exists(self.log):
            open(self.log, "w").close()

    def start(self, backend="null", wait=True, journal_dir=None, env=None):
        cmd = [BIN, "run", "-f", "-c", self.conf, "--state", self.state, "--socket", self.sock,
               "--logtarget", self.out, "--loglevel", "DEBUG", "--backend", backend]
        if journal_dir:
            cmd += ["--journal-dir", journal_dir]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        if self.prefix:
            cmd = self.prefix + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        if wait:
            deadline = time.time() + 10
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError("mxjail exited %d: %s" % (self.proc.returncode,
                                                                  self.proc.stderr.read()))
                if self.cli("ping", check=False).returncode == 0:
                    return self
                time.sleep(0.05)
            raise AssertionError("mxjail did not answer on %s" % self.sock)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
            self.proc.stderr.close()

    def cli(self, *args, check=True):
        r = subprocess.run([BIN] + list(args) + ["--socket", self.sock], capture_output=True,
                           text=True, timeout=20)
        if check:
            assert r.returncode == 0, "mxjail %s: rc %d: %s%s" % (args, r.returncode, r.stdout,
                                                                  r.stderr)
        return r

    def cli_json(self, *args):
        return json.loads(self.cli(*(list(args) + ["--json"])).stdout)

    def append(self, *lines):
        with open(self.log, "a") as f:
            f.write("".join(lines))

    def banned(self):
        return {(b["jail"], b["address"]): b for b in self.cli_json("banned")}

    def status(self, jail="sshd"):
        return self.cli_json("status", jail)

    def logtext(self):
        with open(self.out, errors="replace") as f:
            return f.read()


def poll(fn, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


@pytest.fixture
def daemon(tmp_path):
    made = []

    def make(**kw):
        d = Daemon(tmp_path, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


def test_ban_status_why_unban(daemon):
    d = daemon().start()
    d.append(syslog_line(ATTACKER), syslog_line(ATTACKER))
    poll(lambda: d.status()["currently_failed"] == 1, what="2 failures counted")
    assert d.status()["total_failed"] == 2
    assert ("sshd", ATTACKER) not in d.banned()
    d.append(syslog_line(ATTACKER))
    bans = poll(d.banned, what="the ban")
    b = bans[("sshd", ATTACKER)]
    assert b["bantime"] == 3600 and 3500 < b["remaining"] <= 3600
    assert b["failures"] == 3

    st = d.status()
    assert st["currently_banned"] == 1 and st["total_banned"] == 1
    assert st["banned"] == [ATTACKER] and st["total_failed"] == 3
    text = d.cli("status", "sshd").stdout
    assert "Status for the jail: sshd" in text and "Banned IP list:\t%s" % ATTACKER in text
    assert "File list:\t%s" % d.log in text
    assert "Jail list:\tsshd" in d.cli("status").stdout

    why = d.cli("why", ATTACKER).stdout
    assert "Banned %s in jail sshd" % ATTACKER in why
    assert why.count("Failed password for root from %s" % ATTACKER) == 3
    wj = d.cli_json("why", ATTACKER)
    assert wj["bans"][0]["live"] and len(wj["bans"][0]["lines"]) == 3
    assert d.cli("banned", ATTACKER).stdout.strip() == "%s: sshd" % ATTACKER
    assert "NOTICE  [sshd] Ban %s" % ATTACKER in d.logtext()

    assert d.cli("unban", ATTACKER).stdout.strip() == "1"
    assert d.banned() == {}
    assert d.status()["currently_banned"] == 0
    assert "NOTICE  [sshd] Unban %s" % ATTACKER in d.logtext()
    r = d.cli("unban", ATTACKER, check=False)
    assert r.returncode == 1 and "not banned" in r.stderr
    # history stays for why (and bantime.increment)
    assert "Was banned %s" % ATTACKER in d.cli("why", ATTACKER).stdout


def test_manual_ban_refuses_ignored_addresses(daemon):
    d = daemon().start()
    for addr in ("127.0.0.1", "10.1.2.3", "::1"):
        r = d.cli("ban", "sshd", addr, check=False)
        assert r.returncode == 1 and "refusing to ban" in r.stderr and "--force" in r.stderr
    assert d.banned() == {}
    r = d.cli("ban", "sshd", "not-an-address", check=False)
    assert r.returncode == 1
    r = d.cli("ban", "nosuchjail", OTHER, check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr
    assert d.cli("ban", "sshd", OTHER).stdout.strip() == "1"
    assert d.cli("ban", "sshd", "127.0.0.1", "--force").stdout.strip() == "1"
    assert set(d.banned()) == {("sshd", OTHER), ("sshd", "127.0.0.1")}
    assert d.cli("unban", "--all").stdout.strip() == "2"
    assert d.banned() == {}
    # failures from ignored addresses are never counted
    d.append(*[syslog_line("10.9.9.9")] * 5)
    poll(lambda: "Ignore 10.9.9.9 by ip" in d.logtext(), what="ignore message")
    assert d.banned() == {} and d.status()["total_failed"] == 0


def test_get_set_ping_version(daemon):
    d = daemon().start()
    assert d.cli("ping").stdout.strip() == "Server replied: pong"
    assert d.cli("get", "sshd", "bantime").stdout.strip() == "3600"
    assert d.cli("get", "sshd", "maxretry").stdout.strip() == "3"
    assert d.cli_json("set", "sshd", "maxretry", "2")["value"] == 2
    assert d.cli_json("get", "sshd", "findtime") == {"jail": "sshd", "key": "findtime",
                                                     "value": 600}
    assert d.cli("set", "sshd", "bantime", "2h").stdout.strip() == "7200"
    r = d.cli("set", "sshd", "maxretry", "zero", check=False)
    assert r.returncode == 1 and "maxretry" in r.stderr
    assert d.cli("set", "sshd", "ignoreip", "203.0.113.0/24", "::1").stdout.strip() == \
        "203.0.113.0/24 ::1"
    d.append(syslog_line(OTHER), syslog_line(OTHER))
    b = poll(d.banned, what="ban after maxretry 2")[("sshd", OTHER)]
    assert b["bantime"] == 7200
    v = d.cli_json("version")
    assert v["daemon"] == v["version"]


def test_kill9_restart_keeps_bans_and_counts_each_line_once(daemon):
    d = daemon().start()
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(d.banned, what="the ban")
    # two failures of another address: below maxretry
    d.append(syslog_line(OTHER), syslog_line(OTHER))
    poll(lambda: d.status()["currently_failed"] == 1 and d.status()["total_failed"] == 5,
         what="the other address counted")
    d.kill(signal.SIGKILL)
    time.sleep(2)
    d.start()
    b = d.banned()[("sshd", ATTACKER)]
    assert 3500 < b["remaining"] < 3599, b  # the remaining time, not a fresh hour
    # nothing re-read: the lines before the crash are not counted again
    time.sleep(0.5)
    st = d.status()
    assert st["total_failed"] == 0 and st["currently_failed"] == 0, st
    d.append(syslog_line(OTHER))
    poll(lambda: d.status()["total_failed"] == 1, what="the new line")
    time.sleep(0.3)
    assert ("sshd", OTHER) not in d.banned(), "an old line was counted twice"
    assert d.status()["currently_banned"] == 1
    assert "restored 1 live ban" in d.logtext()


def test_restart_drops_expired_bans(daemon):
    d = daemon(bantime="3").start()
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(d.banned, what="the ban")
    d.kill(signal.SIGKILL)
    time.sleep(3.5)
    d.start()
    assert d.banned() == {}


def test_ban_expires_and_unban_is_logged(daemon):
    d = daemon(bantime="2").start()
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(d.banned, what="the ban")
    poll(lambda: "NOTICE  [sshd] Unban %s" % ATTACKER in d.logtext(), timeout=6,
         what="the unban at the end of the ban")
    assert d.banned() == {} and d.status()["currently_banned"] == 0


def test_first_start_reads_back_findtime_only(daemon):
    d = daemon(findtime="10m")
    now = time.time()
    # three old failures (beyond findtime) and two recent ones, written before the start
    d.append(*[syslog_line(ATTACKER, now - 3600 - i) for i in (3, 2, 1)])
    d.append(syslog_line(ATTACKER, now - 60), syslog_line(ATTACKER, now - 30))
    d.start()
    poll(lambda: d.status()["total_failed"] == 2, what="the two recent failures")
    time.sleep(0.3)
    assert d.status()["total_failed"] == 2 and d.banned() == {}


def test_sighup_keeps_bans_and_counters(daemon):
    d = daemon().start()
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(d.banned, what="the ban")
    d.append(syslog_line(OTHER))
    poll(lambda: d.status()["currently_failed"] == 1, what="one failure of the other address")
    os.kill(d.proc.pid, signal.SIGHUP)
    poll(lambda: "reloaded: 1 jail" in d.logtext(), what="the reload")
    assert ("sshd", ATTACKER) in d.banned()
    assert d.status()["currently_failed"] == 1
    # the counter kept its failure: two more reach maxretry 3
    d.append(syslog_line(OTHER), syslog_line(OTHER))
    poll(lambda: ("sshd", OTHER) in d.banned(), what="ban of the other address")
    # reload through the socket, too
    assert "reloaded 1 jail" in d.cli("reload").stdout
    assert len(d.banned()) == 2


def test_reload_with_broken_config_keeps_running(daemon):
    d = daemon().start()
    d.cli("ban", "sshd", OTHER)
    with open(os.path.join(d.conf, "jail.local"), "a") as f:
        f.write("\n[broken]\nenabled = true\nfilter = sshd\nlogpath = %s\nbantime = 1x\n" % d.log)
    r = d.cli("reload", check=False)
    assert r.returncode == 1 and "bantime" in r.stderr and "previous configuration" in r.stderr
    assert ("sshd", OTHER) in d.banned()
    assert d.cli("ping").returncode == 0


def test_reload_one_jail_only(daemon, tmp_path):
    other = str(tmp_path / "other.log")
    open(other, "w").close()
    d = daemon(extra="\n[sshd2]\nenabled = true\nfilter = sshd\nlogpath = %s\n"
               "backend = polling\nmaxretry = 5\n" % other).start()
    d.cli("ban", "sshd", OTHER)
    d.cli("ban", "sshd2", OTHER)
    d.append(syslog_line(ATTACKER))
    poll(lambda: d.status()["total_failed"] == 1, what="one failure counted")
    path = os.path.join(d.conf, "jail.local")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("maxretry = 3", "maxretry = 4").replace("maxretry = 5",
                                                                      "maxretry = 6"))
    r = d.cli("reload", "sshd2")
    assert "reloaded jail sshd2" in r.stdout
    assert d.cli("get", "sshd2", "maxretry").stdout.strip() == "6"
    assert d.cli("get", "sshd", "maxretry").stdout.strip() == "3"  # not reloaded
    assert ("sshd", OTHER) in d.banned() and ("sshd2", OTHER) in d.banned()
    assert d.status()["total_failed"] == 1
    # the running sshd still bans after 3 failures (its old setting)
    d.append(syslog_line(ATTACKER), syslog_line(ATTACKER))
    poll(lambda: ("sshd", ATTACKER) in d.banned(), what="ban with the kept maxretry")
    r = d.cli("reload", "sshd")
    assert d.cli("get", "sshd", "maxretry").stdout.strip() == "4"
    # a jail turned off on disk stops on its own reload; its bans are lifted
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("[sshd2]\nenabled = true", "[sshd2]\nenabled = false"))
    r = d.cli("reload", "sshd2")
    assert "no longer enabled" in r.stdout
    assert ("sshd2", OTHER) not in d.banned() and ("sshd", OTHER) in d.banned()
    assert d.cli("reload", "nosuch", check=False).returncode != 0


def test_logpath_glob_picks_up_new_files(daemon, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("")
    d = daemon(extra="\n[globbed]\nenabled = true\nfilter = sshd\nlogpath = %s/*.log\n"
               "backend = polling\nmaxretry = 2\n" % logs).start()
    # a file that matches the pattern only now: read without a reload
    with open(str(logs / "b.log"), "w") as f:
        f.write(syslog_line(ATTACKER) * 2)
    poll(lambda: ("globbed", ATTACKER) in d.banned(), timeout=15, what="ban from the new file")
    assert "new log file %s/b.log" % logs in d.logtext()
    # a file already followed is not added twice
    time.sleep(5.5)
    assert d.logtext().count("new log file %s/b.log" % logs) == 1
    st = d.status("globbed")
    assert st["total_failed"] == 2


MNT_OK = os.geteuid() == 0 and shutil.which("unshare") is not None


@pytest.mark.skipif(not MNT_OK, reason="needs root and unshare (a private /etc/hosts)")
def test_usedns_resolves_host_names(daemon, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n198.51.100.77 attacker.example\n"
                     "2001:db8::77 attacker.example\n")
    d = daemon(extra="usedns = warn\n")
    # the daemon sees its own /etc/hosts (mount namespace); nothing else does
    d.prefix = ["unshare", "-m", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts)]
    d.start()
    d.append(*[syslog_line("attacker.example")] * 3)
    poll(lambda: ("sshd", "198.51.100.77") in d.banned(), what="the name's IPv4 address banned")
    poll(lambda: ("sshd", "2001:db8::77") in d.banned(), what="its IPv6 address banned")
    assert "Determined IP using DNS Lookup: attacker.example = {" in d.logtext()
    # a name that does not resolve: warned about, nothing banned, the daemon runs on
    d.append(*[syslog_line("nowhere.invalid")] * 3)
    poll(lambda: "Unable to find a corresponding IP address for nowhere.invalid" in d.logtext(),
         timeout=30, what="the failed lookup logged")
    assert d.cli("ping").returncode == 0
    assert d.status()["total_failed"] == 6  # 3 lines x 2 addresses


def test_bad_config_fails_clearly(daemon, tmp_path):
    d = daemon(extra="maxretry = lots")
    d.start(wait=False)
    try:
        rc = d.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("mxjail started with a bad configuration")
    err = d.proc.stderr.read()
    assert rc != 0
    assert "maxretry" in err and "jail.local" in err and "not starting" in err
    # an unknown filter names the jail
    with open(os.path.join(d.conf, "jail.local"), "w") as f:
        f.write("[nosuch]\nenabled = true\nfilter = nosuchfilter\nlogpath = %s\n" % d.log)
    d.proc.stdout.close()
    d.proc.stderr.close()
    d.start(wait=False)
    rc = d.proc.wait(timeout=10)
    err = d.proc.stderr.read()
    assert rc != 0 and "nosuch" in err


def test_sd_notify_ready_watchdog_stopping(daemon, tmp_path):
    import socket
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
    d = daemon().start(env=env)
    # libsystemd is loaded for the notification only (see the test below)
    assert "libsystemd" in mapped_files(d.proc.pid)
    got = []

    def until(word):
        while not any(word in m for m in got):
            got.append(s.recv(4096).decode())
        return True
    assert until("READY=1")
    assert until("WATCHDOG=1")
    d.kill(signal.SIGTERM)
    assert d.proc.returncode == 0
    assert until("STOPPING=1")
    s.close()


def mapped_files(pid):
    with open("/proc/%d/maps" % pid) as f:
        return " ".join(line.split()[-1] for line in f if len(line.split()) >= 6)


def test_optional_libraries_stay_unloaded(daemon):
    """Without journal jails, systemd's notification or nftables jails, neither
    libsystemd nor libnftables is mapped (each costs hundreds of KiB)."""
    d = daemon(extra="action =").start(backend="nftables", env=dict(
        (k, v) for k, v in os.environ.items() if k != "NOTIFY_SOCKET"))
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(d.banned, what="the ban")
    maps = mapped_files(d.proc.pid)
    assert "libsystemd" not in maps and "libnftables" not in maps, maps


def test_corrupt_state_is_moved_aside(daemon):
    d = daemon()
    os.makedirs(d.state)
    with open(os.path.join(d.state, "mxjail.sqlite3"), "wb") as f:
        f.write(b"this is not a database\n" * 100)
    d.start()
    assert any(n.startswith("mxjail.sqlite3.corrupt-") for n in os.listdir(d.state))
    assert "WARNING state:" in d.logtext()
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(d.banned, what="a ban with the fresh state")


def test_cli_without_daemon(tmp_path):
    r = subprocess.run([BIN, "status", "--socket", str(tmp_path / "none.sock")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 255 and "cannot reach mxjail" in r.stderr


# ---------- real nftables in a network namespace ----------

NFT_OK = os.geteuid() == 0 and shutil.which("nft") and shutil.which("ip")


@pytest.fixture
def netns():
    name = "mxjd%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot create a network namespace: %s" % r.stderr.strip())
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def nft_elements(ns, set_name):
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet", "mxjail",
                        set_name], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    out = {}
    for item in json.loads(r.stdout)["nftables"]:
        for e in item.get("set", {}).get("elem", []):
            timeout = None
            if isinstance(e, dict) and "elem" in e:
                timeout = e["elem"].get("timeout")
                e = e["elem"]["val"]
            out[e] = timeout
    return out


@pytest.mark.skipif(not NFT_OK, reason="needs root, nft and ip")
def test_nftables_in_namespace(daemon, netns):
    d = daemon(netns=netns).start(backend="nftables")
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(d.banned, what="the ban")
    els = poll(lambda: nft_elements(netns, "sshd_v4"), what="the nft set")
    assert ATTACKER in els and 3500 < els[ATTACKER] <= 3600
    assert "libnftables" in mapped_files(d.proc.pid)
    # `flush ruleset` (a firewall reload) is repaired from state
    subprocess.run(["ip", "netns", "exec", netns, "nft", "flush", "ruleset"], check=True)
    els = poll(lambda: nft_elements(netns, "sshd_v4"), timeout=10, what="the rebuilt set")
    assert ATTACKER in els
    # kill -9 and restart: the ban is applied again with its remaining time
    d.kill(signal.SIGKILL)
    subprocess.run(["ip", "netns", "exec", netns, "nft", "flush", "ruleset"], check=True)
    d.start(backend="nftables")
    els = poll(lambda: nft_elements(netns, "sshd_v4"), what="the restored set")
    assert ATTACKER in els and els[ATTACKER] < 3600
    d.cli("unban", ATTACKER)
    def unbanned():
        els = nft_elements(netns, "sshd_v4")
        return els is not None and ATTACKER not in els
    poll(unbanned, what="the unban in the set")


@pytest.mark.skipif(not NFT_OK, reason="needs root, nft and ip")
def test_empty_action_bans_without_firewall(daemon, netns):
    """fail2ban's `action =` (set, empty): the jail bans, records and logs, and
    blocks nothing; a table left by an earlier run goes at start."""
    subprocess.run(["ip", "netns", "exec", netns, "nft", "add table inet mxjail; "
                    "add set inet mxjail sshd_v4 { type ipv4_addr; }"], check=True)
    d = daemon(netns=netns, extra="action =").start(backend="nftables")
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(d.banned, what="the ban")
    assert re.search(r"NOTICE +\[sshd\] Ban %s" % re.escape(ATTACKER), d.logtext())
    assert "action is empty" in d.logtext()
    assert d.status()["firewall"] is False
    r = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "tables"],
                       capture_output=True, text=True, check=True)
    assert "mxjail" not in r.stdout
    assert "libnftables" not in mapped_files(d.proc.pid)
    d.cli("unban", ATTACKER)
    assert d.banned() == {}
    d.kill(signal.SIGTERM)
    assert d.proc.returncode == 0


def test_two_jails_on_one_file_read_once(daemon):
    d = daemon(maxretry=3, extra="\n[sshd-slow]\nenabled = true\nfilter = sshd[mode=aggressive]\n"
               "logpath = %(logpath)s\nbackend = polling\nmaxretry = 5\n".replace(
                   "%(logpath)s", "PLACEHOLDER"))
    with open(os.path.join(d.conf, "jail.local")) as f:
        text = f.read().replace("PLACEHOLDER", d.log)
    with open(os.path.join(d.conf, "jail.local"), "w") as f:
        f.write(text)
    d.start()
    d.append(*[syslog_line(ATTACKER)] * 4)
    poll(lambda: d.status("sshd-slow")["total_failed"] == 4, what="the second jail's count")
    assert d.status("sshd")["total_failed"] == 4  # the 4th is counted and prolongs the ban
    assert set(d.banned()) == {("sshd", ATTACKER)}
    d.append(syslog_line(ATTACKER))
    poll(lambda: ("sshd-slow", ATTACKER) in d.banned(), what="the second jail's ban")
    assert d.logtext().count("reading %s" % d.log) == 1
    assert set(d.cli_json("status")["jails"]) == {"sshd", "sshd-slow"}


def test_bantime_increment_uses_history(daemon):
    d = daemon(bantime="100", extra="bantime.increment = true\nbantime.factor = 1\n").start()
    d.append(*[syslog_line(ATTACKER)] * 3)
    first = poll(d.banned, what="the first ban")[("sshd", ATTACKER)]
    assert first["bancount"] == 1 and first["bantime"] == 100
    d.cli("unban", ATTACKER)
    d.append(*[syslog_line(ATTACKER)] * 3)
    second = poll(d.banned, what="the second ban")[("sshd", ATTACKER)]
    assert second["bancount"] == 2 and second["bantime"] > first["bantime"], second
    hist = d.cli_json("why", ATTACKER)["bans"]
    assert [b["live"] for b in hist] == [True, False]


def test_banprefix6_bans_the_prefix(daemon):
    d = daemon(extra="banprefix6 = 64\n").start()
    d.append(*[syslog_line("2001:db8:1:2::5")] * 3)
    bans = poll(d.banned, what="the prefix ban")
    assert ("sshd", "2001:db8:1:2::/64") in bans
    # another host of the same /64 is covered: why finds the prefix's ban
    why = d.cli_json("why", "2001:db8:1:2::99")
    assert why["bans"] and why["bans"][0]["address"] == "2001:db8:1:2::/64"


REMOTE = "/lib/systemd/systemd-journal-remote"


def journal_entry(addr, t=None):
    t = time.time() if t is None else t
    us = int(t * 1e6)
    fields = [("_SYSTEMD_UNIT", "sshd.service"), ("_COMM", "sshd"), ("SYSLOG_IDENTIFIER", "sshd"),
              ("_PID", "4242"), ("_HOSTNAME", "mx"), ("_BOOT_ID", "3" * 32),
              ("MESSAGE", "Failed password for root from %s port 52144 ssh2" % addr)]
    out = "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n" % (us, 1000000)
    return (out + "".join("%s=%s\n" % kv for kv in fields) + "\n").encode()


def write_journal(path, entries):
    exp = path + ".export"
    with open(exp, "wb") as f:
        f.write(b"".join(entries))
    r = subprocess.run([REMOTE, "--output=" + path, exp], capture_output=True, text=True)
    os.unlink(exp)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(not os.access(REMOTE, os.X_OK), reason="systemd-journal-remote not installed")
def test_journal_backend_options(daemon, tmp_path):
    """backend = systemd[journalpath=DIR] / [journalfiles=GLOB] open those journals
    (no --journal-dir on the command line)."""
    jdir = tmp_path / "journal"
    jdir.mkdir()
    write_journal(str(jdir / "remote.journal"), [journal_entry(OTHER)] * 2)
    d = daemon(backend="systemd[journalpath=%s]" % jdir).start()
    poll(lambda: d.status()["total_failed"] == 2, what="failures from journalpath")
    d.kill(signal.SIGKILL)
    shutil.rmtree(d.state)
    with open(os.path.join(d.conf, "jail.local")) as f:
        text = f.read()
    with open(os.path.join(d.conf, "jail.local"), "w") as f:
        f.write(text.replace("systemd[journalpath=%s]" % jdir,
                             "systemd[journalfiles=\"%s/*.journal\", journalflags=0]" % jdir))
    d.start()
    poll(lambda: d.status()["total_failed"] == 2, what="failures from journalfiles")
    assert "backend options" not in d.logtext()


@pytest.mark.skipif(not os.access(REMOTE, os.X_OK), reason="systemd-journal-remote not installed")
def test_journal_backend_with_cursor(daemon, tmp_path):
    jdir = tmp_path / "journal"
    jdir.mkdir()
    jfile = str(jdir / "remote.journal")
    write_journal(jfile, [journal_entry(OTHER), journal_entry(OTHER)])
    d = daemon(backend="systemd").start(journal_dir=str(jdir))
    st = poll(lambda: d.status()["total_failed"] == 2 and d.status(), what="journal failures")
    assert "sshd.service" in st["journal_matches"][0]
    assert "Journal matches:" in d.cli("status", "sshd").stdout
    d.kill(signal.SIGKILL)
    write_journal(jfile, [journal_entry(OTHER)])
    d.start(journal_dir=str(jdir))
    poll(lambda: d.status()["total_failed"] == 1, what="only the new entry")
    time.sleep(0.3)
    assert d.status()["total_failed"] == 1 and d.banned() == {}, "an entry was read twice"
