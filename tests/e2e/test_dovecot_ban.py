"""test_dovecot_ban - a real Dovecot IMAP server protected by `mxjail run` with nftables.

Two network namespaces (netns_helpers.Topology): `server` runs Debian's Dovecot
(dovecot-imapd, started by hand with a private configuration in a temp dir:
plaintext IMAP on port 143, one passwd-file user, its own log file, base_dir
and state_dir; the host's Dovecot is never touched) and mxjail with the
nftables backend (inside the namespace, so the ruleset change stays there) and
a dovecot jail (mxjail's own filter, port imap, maxretry 3) on Dovecot's log.
From `attacker` wrong-password logins are made until maxretry; then:
  - the attacker's next TCP connect to port 143 fails within a short bound,
  - a second attacker address still connects and logs in with the right password,
  - `mxjail why ADDR` shows Dovecot's log lines,
  - `mxjail unban ADDR` lets the attacker back in.
Once for IPv4 and once for IPv6. Every process is stopped by its PID, the
namespaces are deleted in a finally.

Needs root, ip, nft and dovecot (setup.sh installs dovecot-imapd); skips otherwise.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import netns_helpers as nh

BIN = os.environ.get("MXJAIL_BIN")
SRC = os.environ.get("MXJAIL_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def _dovecot():
    for p in ("/usr/sbin/dovecot", shutil.which("dovecot")):
        if p and os.path.exists(p) and os.path.exists("/usr/lib/dovecot/imap-login"):
            return p
    return None


DOVECOT = _dovecot()

pytestmark = [
    pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, nftables)"),
    pytest.mark.skipif(not shutil.which("ip") or not shutil.which("nft"),
                       reason="needs ip and nft (iproute2, nftables)"),
    pytest.mark.skipif(DOVECOT is None,
                       reason="dovecot is not installed (apt-get install dovecot-imapd; "
                              "`setup.sh test` installs it)"),
]

USER, PASSWORD = "alice", "s3cret-pass"
MAXRETRY = 3
# Dovecot delays the answers to an address with recent failures (anvil auth penalty,
# 2 s doubling up to 15 s): the clients that follow a failure wait that long.
PENALTY_WAIT = 20


def poll(fn, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def dovecot_conf(tmp, uid, gid):
    """A self-contained dovecot.conf: nothing from /etc/dovecot is read."""
    return """# private test instance: nothing shared with the host's Dovecot
base_dir = {tmp}/run
state_dir = {tmp}/lib
instance_name = mxjail-test-{pid}
protocols = imap
listen = {srv4}, {srv6}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = {tmp}/dovecot.log
info_log_path = {tmp}/dovecot.log
first_valid_uid = 1
mail_location = maildir:{tmp}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {tmp}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {tmp}/users
  default_fields = uid={uid} gid={gid} home={tmp}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 143
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""".format(tmp=tmp, uid=uid, gid=gid, srv4=nh.SRV4, srv6=nh.SRV6, pid=os.getpid())


class Setup:
    """Namespaces + Dovecot + mxjail for one test; close() undoes everything."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="mxjail-dovecot-")
        os.chmod(self.tmp, 0o755)  # Dovecot's unprivileged processes walk this path
        self.topo = nh.Topology("dv")
        self.dovecot = None
        self.mxjail = None
        self.dlog = os.path.join(self.tmp, "dovecot.log")
        self.sock = os.path.join(self.tmp, "mxrun", "mxjail.sock")
        self.mxlog = os.path.join(self.tmp, "mxjail.log")

    def start(self):
        self.topo.up()
        self._start_dovecot()
        self._start_mxjail()
        return self

    def _start_dovecot(self):
        t = self.tmp
        for d in ("run", "lib", "mail"):
            os.mkdir(os.path.join(t, d))
        uid = gid = 65534  # nobody/nogroup owns the one test mailbox
        os.chown(os.path.join(t, "mail"), uid, gid)
        with open(os.path.join(t, "users"), "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (USER, PASSWORD))
        conf = os.path.join(t, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(dovecot_conf(t, uid, gid))
        open(self.dlog, "w").close()
        self.dovecot_out = open(os.path.join(t, "dovecot.stderr"), "w")
        self.dovecot = subprocess.Popen(self.topo.srv_cmd(DOVECOT, "-F", "-c", conf),
                                        stdout=self.dovecot_out, stderr=subprocess.STDOUT)
        # ready when IMAP answers on both addresses (bounded)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.dovecot.poll() is not None:
                raise AssertionError("dovecot exited %d: %s" % (self.dovecot.returncode,
                                                                self._dovecot_text()))
            if (self.topo.connects(nh.SRV4, 143, nh.ATT4B, timeout=0.5)
                    and self.topo.connects(nh.SRV6, 143, nh.ATT6B, timeout=0.5)):
                return
            time.sleep(0.1)
        raise AssertionError("dovecot did not listen on port 143: " + self._dovecot_text())

    def _dovecot_text(self):
        out = []
        for p in (os.path.join(self.tmp, "dovecot.stderr"), self.dlog):
            try:
                with open(p, errors="replace") as f:
                    out.append(f.read()[-3000:])
            except OSError:
                pass
        return "\n".join(out)

    def _start_mxjail(self):
        conf = os.path.join(self.tmp, "mxconf")
        shutil.copytree(os.path.join(SRC, "etc"), conf)
        with open(os.path.join(conf, "jail.local"), "w") as f:
            f.write("[DEFAULT]\nignoreip = 127.0.0.1/8 ::1\n\n"
                    "[dovecot]\nenabled = true\nfilter = dovecot\nport = imap\n"
                    "maxretry = %d\nfindtime = 10m\nbantime = 1h\n"
                    "logpath = %s\nbackend = auto\n" % (MAXRETRY, self.dlog))
        cmd = self.topo.srv_cmd(BIN, "run", "-f", "-c", conf, "--state",
                                os.path.join(self.tmp, "mxstate"), "--socket", self.sock,
                                "--logtarget", self.mxlog, "--loglevel", "DEBUG",
                                "--backend", "nftables")
        self.mxjail = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.mxjail.poll() is not None:
                raise AssertionError("mxjail exited %d: %s" % (self.mxjail.returncode,
                                                              self.mxjail.stderr.read()))
            if self.cli("ping", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError("mxjail did not answer on " + self.sock)

    def cli(self, *args, check=True):
        r = subprocess.run([BIN] + list(args) + ["--socket", self.sock], capture_output=True,
                           text=True, timeout=20)
        if check:
            assert r.returncode == 0, "mxjail %s: rc %d: %s%s" % (args, r.returncode, r.stdout,
                                                                  r.stderr)
        return r

    def cli_json(self, *args):
        return json.loads(self.cli(*(list(args) + ["--json"])).stdout)

    def banned(self):
        return {(b["jail"], b["address"]) for b in self.cli_json("banned")}

    def diagnostics(self):
        parts = ["--- dovecot", self._dovecot_text()]
        try:
            with open(self.mxlog, errors="replace") as f:
                parts += ["--- mxjail", f.read()[-3000:]]
        except OSError:
            pass
        r = nh.run(*self.topo.srv_cmd("nft", "list", "ruleset"), check=False)
        parts += ["--- nft", r.stdout[-3000:]]
        return "\n".join(parts)

    def close(self):
        for p in (self.mxjail, self.dovecot):
            if p is None or p.poll() is not None:
                continue
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        if self.mxjail and self.mxjail.stderr:
            self.mxjail.stderr.close()
        if self.dovecot:
            self.dovecot_out.close()
        # `ip netns exec` replaces itself with the command, so the PID above is Dovecot's
        # master; its children follow it out. Wait (bounded) until the namespaces are empty.
        for _ in range(50):
            left = [nh.run("ip", "netns", "pids", ns, check=False).stdout.split()
                    for ns in (self.topo.srv, self.topo.att)]
            if not any(left):
                break
            time.sleep(0.1)
        self.topo.down()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def setup():
    s = Setup()
    try:
        s.start()
        yield s
    finally:
        s.close()


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_dovecot_wrong_passwords_ban_and_unban(setup, family):
    s = setup
    if family == "ipv4":
        srv, att, other = nh.SRV4, nh.ATT4, nh.ATT4B
    else:
        srv, att, other = nh.SRV6, nh.ATT6, nh.ATT6B
    topo = s.topo

    # the right password works for the attacker address before anything happens
    assert topo.imap_login(srv, att, USER, PASSWORD) == "ok", s.diagnostics()

    # maxretry - 1 wrong logins: counted, not banned
    for i in range(MAXRETRY - 1):
        r = topo.imap_login(srv, att, USER, "wrong%d" % i, timeout=PENALTY_WAIT)
        assert r.startswith("no "), r
    poll(lambda: s.cli_json("status", "dovecot")["total_failed"] == MAXRETRY - 1,
         what="%d failures counted" % (MAXRETRY - 1))
    assert ("dovecot", att) not in s.banned()

    # the maxretry-th wrong login bans
    r = topo.imap_login(srv, att, USER, "wrong-last", timeout=PENALTY_WAIT)
    assert r.startswith("no "), r
    poll(lambda: ("dovecot", att) in s.banned(), what="the ban of " + att)
    t0 = time.time()
    assert not topo.connects(srv, 143, att, timeout=1.5), \
        "banned address still connects\n" + s.diagnostics()
    assert time.time() - t0 < 5
    assert topo.imap_login(srv, att, USER, PASSWORD, timeout=1.5).startswith("failed")

    # the second attacker address is not affected
    assert topo.connects(srv, 143, other)
    # (Dovecot keys its auth penalty on the /64 for IPv6, so this login may be delayed)
    assert topo.imap_login(srv, other, USER, PASSWORD, timeout=PENALTY_WAIT) == "ok"
    assert ("dovecot", other) not in s.banned()

    # why shows the Dovecot lines that caused the ban
    why = s.cli("why", att).stdout
    assert "Banned %s in jail dovecot" % att in why, why
    dl = [l for l in why.splitlines() if "imap-login:" in l and "auth failed" in l
          and "rip=%s" % att in l]
    assert len(dl) == MAXRETRY, why
    with open(s.dlog, errors="replace") as f:
        logged = f.read()
    for l in dl:
        assert l.strip() in logged, "why shows a line Dovecot did not write: " + l

    # unban lets it back in
    assert s.cli("unban", att).stdout.strip() == "1"
    assert ("dovecot", att) not in s.banned()
    poll(lambda: topo.connects(srv, 143, att, timeout=1.0), timeout=5, what="connect after unban")
    # Dovecot's own auth penalty still delays this address's next login by a few seconds
    assert topo.imap_login(srv, att, USER, PASSWORD, timeout=PENALTY_WAIT) == "ok"
