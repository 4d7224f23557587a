"""test_policy_postfix - the policy service behind a real, private Postfix on
loopback, driven by real swaks: greylisting (450 4.2.0, early retry 450, 250
after `delay` and delivered with X-Greylist), recipient and client whitelists,
a client banned with `mxjail ban` refused with 554 at RCPT, a spoofed sender of
the served domain from an unauthenticated remote client refused, a SASL
sender deferred at DATA once over its recipient limit (DATA asks through a
unix socket in Postfix's private/ directory), once impersonated with XCLIENT
LOGIN= and once really authenticated (swaks --auth on a submission-like port
with smtpd_sasl_type = dovecot against a private Dovecot auth socket, one
passwd-file user; skipped when Dovecot is not installed),
greylist state surviving a restart, and [policy-spoof] banning after 3 spoofs.

Remote clients are impersonated with XCLIENT (only text in the SMTP dialogue;
nothing is routed). Needs root, postfix and swaks; skips otherwise.
Postfix runs from a private config directory and queue in a temp dir and is
stopped at the end; mxjail runs `mxjail run -f --backend null`.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

MXJAIL = os.environ.get("MXJAIL_BIN", "mxjail")
DELAY = 2

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("postfix") or not shutil.which("swaks"),
    reason="needs root, postfix and swaks (real Postfix test)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


MASTER_CF = """\
127.0.0.1:{smtp} inet n - n - - smtpd
127.0.0.1:{sub} inet n - n - - smtpd
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=private/auth
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/spool
data_directory  = {base}/data
myhostname = mx.example.test
mydomain   = example.test
myorigin   = $myhostname
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols  = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP
biff = no
maillog_file = {base}/log/postfix.log
maillog_file_prefixes = {base}/log
virtual_mailbox_domains = example.test
virtual_mailbox_base = {base}/mail
virtual_mailbox_maps = static:catchall/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_authorized_xclient_hosts = 127.0.0.1
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
    permit_sasl_authenticated,
    reject_unauth_destination,
    check_policy_service {{ inet:127.0.0.1:{policy}, timeout=10s, default_action=DUNNO }}
smtpd_data_restrictions =
    check_policy_service {{ unix:private/mxjail, timeout=10s, default_action=DUNNO }}
"""

MXJAIL_CONF = """\
[mxjail]
statedir = {base}/state
socket = {base}/mxjail.sock
[policy]
enabled = yes
listen = inet:127.0.0.1:{policy} unix:{base}/spool/private/mxjail
[greylist]
delay = {delay}
whitelist_clients = {base}/wl_clients
whitelist_recipients = {base}/wl_recipients
[ratelimit]
sasl = sasl_username: 3 recipients / 1h
[spoof]
domains = example.test
"""

JAIL_CONF = """\
[DEFAULT]
bantime = 600
findtime = 600
maxretry = 5

[policy-spoof]
enabled = true
backend = policy
policyevents = spoof
maxretry = 3

[manual]
enabled = true
backend = policy
policyevents =
"""


class Env:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="mxjail-pf-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.smtp = free_port()
        self.sub = free_port()      # submission-like: SASL through Dovecot
        self.policy = free_port()
        self.proc = None
        b = self.base
        for d in ("etc", "spool", "data", "mail", "log", "state", "conf"):
            os.makedirs(os.path.join(b, d), exist_ok=True)
        shutil.chown(os.path.join(b, "data"), "postfix", "postfix")
        shutil.chown(os.path.join(b, "mail"), "nobody", "nogroup")
        with open(os.path.join(b, "etc/main.cf"), "w") as f:
            f.write(MAIN_CF.format(base=b, policy=self.policy))
        with open(os.path.join(b, "etc/master.cf"), "w") as f:
            f.write(MASTER_CF.format(smtp=self.smtp, sub=self.sub))
        with open(os.path.join(b, "conf/mxjail.conf"), "w") as f:
            f.write(MXJAIL_CONF.format(base=b, policy=self.policy, delay=DELAY))
        with open(os.path.join(b, "conf/jail.conf"), "w") as f:
            f.write(JAIL_CONF)
        with open(os.path.join(b, "wl_clients"), "w") as f:
            f.write("# postgrey syntax\ntrusted.example.net\n10.88.0.0/24\n")
        with open(os.path.join(b, "wl_recipients"), "w") as f:
            f.write("postmaster@\nabuse@example.test\n")

    def start_mxjail(self):
        self.log = open(os.path.join(self.base, "log/mxjail.log"), "a")
        self.proc = subprocess.Popen(
            [MXJAIL, "run", "-c", os.path.join(self.base, "conf"), "-f", "--backend", "null"],
            stdout=self.log, stderr=subprocess.STDOUT)
        assert wait_port(self.policy), self.mxlog()

    def stop_mxjail(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
            assert self.proc.returncode == 0, self.mxlog()[-3000:]
        self.proc = None

    def mxlog(self):
        with open(os.path.join(self.base, "log/mxjail.log")) as f:
            return f.read()

    def start_postfix(self):
        cfg = os.path.join(self.base, "etc")
        subprocess.run(["postfix", "-c", cfg, "check"], check=True)
        subprocess.run(["postfix", "-c", cfg, "start"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_port(self.smtp), "postfix did not listen"

    def stop_postfix(self):
        subprocess.run(["postfix", "-c", os.path.join(self.base, "etc"), "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ctl(self, *args):
        return subprocess.run([MXJAIL, *args, "-s", os.path.join(self.base, "mxjail.sock")],
                              capture_output=True, text=True, timeout=30)

    def swaks(self, *args, port=None):
        """Returns (exit code, the server's reply to the first RCPT TO, whole transcript)."""
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port or self.smtp),
                            "--helo", "client.example.org", "--timeout", "20", *args],
                           capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        lines = out.splitlines()
        reply = ""
        for i, l in enumerate(lines):
            if l.startswith(" -> RCPT TO"):
                for m in lines[i + 1:]:
                    if m.startswith("<-") or m.startswith("<**"):
                        reply = m
                        break
                break
        return r.returncode, reply, out


@pytest.fixture(scope="module")
def env():
    e = Env()
    try:
        e.start_postfix()   # first: mxjail's unix listener goes into its private/
        e.start_mxjail()
        yield e
    finally:
        e.stop_postfix()
        e.stop_mxjail()
        if os.environ.get("KEEP_TMP"):
            print("kept", e.base)
        else:
            shutil.rmtree(e.base, ignore_errors=True)


def delivered(env, marker, timeout=15.0):
    d = os.path.join(env.base, "mail/catchall/new")
    end = time.time() + timeout
    while time.time() < end:
        if os.path.isdir(d):
            for n in os.listdir(d):
                with open(os.path.join(d, n), errors="replace") as f:
                    text = f.read()
                if marker in text:
                    return text
        time.sleep(0.2)
    return None


def test_greylisting(env):
    frm, to = "news+1234@sender.example.org", "alice@example.test"
    rc, reply, out = env.swaks("--from", frm, "--to", to)
    assert "450 4.2.0" in reply, out
    rc, reply, out = env.swaks("--from", frm, "--to", to)
    assert "450 4.2.0" in reply, out
    time.sleep(DELAY + 1)
    rc, reply, out = env.swaks("--from", frm, "--to", to, "--header", "Subject: grey-ok-1")
    assert rc == 0 and reply.startswith("<-  250"), out
    msg = delivered(env, "grey-ok-1")
    assert msg is not None, "not delivered"
    assert "X-Greylist:" in msg


def test_whitelists_pass_at_once(env):
    rc, reply, out = env.swaks("--from", "x@other.example.org", "--to", "postmaster@example.test")
    assert rc == 0 and "250" in reply, out
    rc, reply, out = env.swaks("--from", "y@other.example.org", "--to", "bob@example.test",
                               "--xclient-addr", "10.88.0.7", "--xclient-name", "unknown")
    assert rc == 0 and "250" in reply, out
    # a remote client that is not whitelisted is greylisted
    rc, reply, out = env.swaks("--from", "z@other.example.org", "--to", "bob@example.test",
                               "--xclient-addr", "10.77.1.9", "--xclient-name", "unknown")
    assert "450 4.2.0" in reply, out


def test_banned_client_554(env):
    r = env.ctl("ban", "manual", "10.77.2.2")
    assert r.returncode == 0, r.stderr
    rc, reply, out = env.swaks("--from", "a@other.example.org", "--to", "bob@example.test",
                               "--xclient-addr", "10.77.2.2", "--xclient-name", "unknown")
    assert "554 5.7.1" in reply, out


def test_spoof_rejected_then_jail_bans(env):
    for i in range(3):
        rc, reply, out = env.swaks("--from", "alice@example.test", "--to", "bob@example.test",
                                   "--xclient-addr", "10.77.3.3", "--xclient-name", "unknown")
        assert "5.7.1" in reply and reply.startswith("<** 5"), out
        assert "spoof" in out.lower() or "served here" in out.lower(), out
    end = time.time() + 5
    while time.time() < end:
        r = env.ctl("banned")
        if "10.77.3.3" in r.stdout:
            break
        time.sleep(0.2)
    assert "policy-spoof" in r.stdout and "10.77.3.3" in r.stdout, r.stdout
    # from now on the banned check answers first
    rc, reply, out = env.swaks("--from", "carol@other.example.org", "--to", "bob@example.test",
                               "--xclient-addr", "10.77.3.3", "--xclient-name", "unknown")
    assert "554 5.7.1" in reply, out


def test_sasl_recipient_limit_deferred(env):
    # permit_sasl_authenticated needs a SASL server, which XCLIENT LOGIN= does
    # not bring, so bob connects from a greylist-whitelisted network; the
    # policy service still sees sasl_username=bob (and skips the spoof check)
    common = ["--from", "bob@example.test", "--xclient-addr", "10.88.0.8",
              "--xclient-name", "unknown", "--xclient-login", "bob"]
    # 2 recipients: within 3 recipients / 1h (and no spoof: authenticated)
    rc, reply, out = env.swaks("--to", "u1@example.test,u2@example.test", *common)
    assert rc == 0, out
    # 2 more: over the limit, deferred at DATA
    rc, reply, out = env.swaks("--to", "u3@example.test,u4@example.test", *common)
    assert rc != 0, out
    assert "4.7.1" in out and "rate limit" in out, out
    r = env.ctl("ratelimit", "list")
    assert "bob" in r.stdout, r.stdout + r.stderr


def test_greylist_survives_restart(env):
    frm, to = "list-bounces@sender2.example.org", "dave@example.test"
    rc, reply, out = env.swaks("--from", frm, "--to", to)
    assert "450 4.2.0" in reply, out
    time.sleep(1.2)  # write-behind commits once a second
    env.stop_mxjail()
    env.start_mxjail()
    r = env.ctl("greylist", "list")
    assert "sender2.example.org" in r.stdout, r.stdout + r.stderr
    time.sleep(DELAY + 1)
    rc, reply, out = env.swaks("--from", frm, "--to", to, "--header", "Subject: grey-ok-2")
    assert rc == 0 and "250" in reply, out
    assert delivered(env, "grey-ok-2") is not None


def test_status_json(env):
    import json
    r = env.ctl("policy", "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["service"]["requests"] > 0
    assert st["service"]["malformed"] == 0


def _dovecot():
    for p in ("/usr/sbin/dovecot", shutil.which("dovecot")):
        if p and os.path.exists(p) and os.path.exists("/usr/lib/dovecot/auth"):
            return p
    return None


DOVECOT_CONF = """\
# private instance: only the auth service, for Postfix's SASL
base_dir = {d}/run
state_dir = {d}/run
instance_name = mxjail-pf-sasl-{pid}
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = {d}/dovecot.log
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={d}/home
}}
service auth {{
  unix_listener {base}/spool/private/auth {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
"""


def test_dovecot_sasl_recipient_limit_deferred(env):
    """A sender really authenticated through Dovecot SASL (sasl_username
    carol, a key of its own) over its 3 recipients / 1h is deferred at DATA."""
    dovecot = _dovecot()
    if not dovecot:
        pytest.skip("dovecot is not installed (dovecot-core)")
    d = os.path.join(env.base, "dovecot")
    os.makedirs(os.path.join(d, "run"), exist_ok=True)
    with open(os.path.join(d, "users"), "w") as f:
        f.write("carol:{PLAIN}carol-pw-7::::::\n")
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(DOVECOT_CONF.format(d=d, base=env.base, pid=os.getpid()))
    out_f = open(os.path.join(d, "stderr"), "w")
    proc = subprocess.Popen([dovecot, "-F", "-c", conf], stdout=out_f, stderr=subprocess.STDOUT)
    sock = os.path.join(env.base, "spool/private/auth")

    def dvtext():
        with open(os.path.join(d, "stderr"), errors="replace") as f:
            t = f.read()
        if os.path.exists(os.path.join(d, "dovecot.log")):
            with open(os.path.join(d, "dovecot.log"), errors="replace") as f:
                t += f.read()
        return t[-3000:]
    try:
        end = time.time() + 15
        while not os.path.exists(sock):
            assert proc.poll() is None, dvtext()
            assert time.time() < end, "no Dovecot auth socket: " + dvtext()
            time.sleep(0.1)
        auth = ["--auth", "PLAIN", "--auth-user", "carol", "--from", "carol@example.test"]
        # a wrong password is refused by Dovecot: the SASL path is real
        rc, reply, out = env.swaks("--to", "u9@example.test", *auth[:4],
                                   "--auth-password", "wrong", "--from", "carol@example.test",
                                   port=env.sub)
        assert rc != 0 and "535" in out, out
        # 2 recipients: within the limit, delivered
        rc, reply, out = env.swaks("--to", "u5@example.test,u6@example.test", *auth,
                                   "--auth-password", "carol-pw-7", "--header",
                                   "Subject: sasl-ok", port=env.sub)
        assert rc == 0 and "235" in out, out
        assert delivered(env, "sasl-ok") is not None
        # 2 more: over 3 recipients / 1h, deferred at DATA
        rc, reply, out = env.swaks("--to", "u7@example.test,u8@example.test", *auth,
                                   "--auth-password", "carol-pw-7", port=env.sub)
        assert rc != 0, out
        assert "235" in out and "4.7.1" in out and "rate limit" in out, out
        r = env.ctl("ratelimit", "list")
        assert "carol" in r.stdout, r.stdout + r.stderr
        with open(os.path.join(env.base, "log/postfix.log"), errors="replace") as f:
            assert "sasl_username=carol" in f.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out_f.close()
