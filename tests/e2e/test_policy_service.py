"""test_policy_service - `mxjail policy` (the standalone policy service) under
hostile and heavy clients: malformed requests and 1 MB requests get no reply
and a close, half-closed peers still get their replies, a peer that never
reads its replies does not hold up anyone else, 10,000 concurrent idle
connections, policy_load with 1,000 connections; everyone else keeps getting
correct replies throughout. Also the control verbs (policy status, greylist
list|del, ratelimit list|reset, --json) and greylist state across a restart.

Runs as any user; the 10,000-connection case raises RLIMIT_NOFILE and skips
when the hard limit does not allow it. policy_load is looked up next to the
binary (build/tests/tools/policy_load); that case skips when it is absent.
"""
import json
import os
import resource
import signal
import socket
import subprocess
import tempfile
import time

import pytest

MXJAIL = os.environ.get("MXJAIL_BIN", "mxjail")
NCONN = 10000

REQ = ("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
       "client_address={client}\nclient_name=unknown\nhelo_name=h.example\n"
       "sender={sender}\nrecipient={rcpt}\nrecipient_count=0\nsasl_username=\n\n")


def req(client="10.20.30.40", sender="s@remote.example", rcpt="r@example.test"):
    return REQ.format(client=client, sender=sender, rcpt=rcpt).encode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def read_reply(s, timeout=5.0):
    s.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n\n"):
        d = s.recv(4096)
        if not d:
            break
        buf += d
    return buf.decode(errors="replace")


def closed_without_reply(s, timeout=5.0):
    s.settimeout(timeout)
    try:
        d = s.recv(4096)
    except ConnectionResetError:
        return True
    return d == b""


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return True
        except (ValueError, OSError):
            return False
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return True


class Service:
    def __init__(self, tmp, delay=1):
        self.tmp = str(tmp)
        self.port = free_port()
        self.conf = os.path.join(self.tmp, "conf")
        os.makedirs(self.conf, exist_ok=True)
        self.sock = os.path.join(self.tmp, "policy.sock")
        with open(os.path.join(self.conf, "jail.conf"), "w") as f:
            f.write("[DEFAULT]\nbantime = 600\n")
        with open(os.path.join(self.conf, "mxjail.conf"), "w") as f:
            f.write(f"""[mxjail]
statedir = {self.tmp}/state
[policy]
listen = inet:127.0.0.1:{self.port} unix:{self.tmp}/policy.in
socket = {self.sock}
max_connections = 30000
[greylist]
delay = {delay}
whitelist_clients = {self.tmp}/wl
whitelist_recipients = {self.tmp}/wl
[ratelimit]
perclient = client_address: 1000000 requests / 1h
sasl = sasl_username: 2 recipients / 1h
[spoof]
domains = example.test
""")
        with open(os.path.join(self.tmp, "wl"), "w") as f:
            f.write("10.99.0.0/16\npostmaster@\n")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.tmp, "policy.log"), "a")

        def limits():
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (NCONN + 2000, NCONN + 2000))
            except (ValueError, OSError):
                pass

        self.proc = subprocess.Popen([MXJAIL, "policy", "-c", self.conf, "-f"],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=limits)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                if os.path.exists(self.sock):
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, self.logtext()
            time.sleep(0.05)
        raise AssertionError("service did not start: " + self.logtext())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def logtext(self):
        with open(os.path.join(self.tmp, "policy.log"), errors="replace") as f:
            return f.read()

    def conn(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def ask(self, **kw):
        with self.conn() as s:
            s.sendall(req(**kw))
            return read_reply(s)

    def ctl(self, *args):
        return subprocess.run([MXJAIL, *args, "-s", self.sock], capture_output=True,
                              text=True, timeout=30)

    def alive(self):
        assert self.proc.poll() is None, self.logtext()
        r = self.ask(client="10.99.1.1")
        assert r == "action=DUNNO\n\n", r


@pytest.fixture
def svc(tmp_path):
    s = Service(tmp_path)
    yield s
    assert s.stop() == 0


def test_greylist_and_verbs(svc):
    r = svc.ask(client="10.1.1.1", sender="a@x.example")
    assert r.startswith("action=DEFER_IF_PERMIT 4.2.0"), r
    assert svc.ask(client="10.1.1.1", sender="a@x.example").startswith("action=DEFER_IF_PERMIT")
    time.sleep(1.2)
    r = svc.ask(client="10.1.1.1", sender="a@x.example")
    assert r.startswith("action=PREPEND X-Greylist:"), r
    assert svc.ask(rcpt="postmaster@example.test") == "action=DUNNO\n\n"
    assert "5.7.1" in svc.ask(sender="x@example.test")
    r = svc.ctl("greylist", "list")
    assert r.returncode == 0 and "x.example" in r.stdout, r.stdout + r.stderr
    j = json.loads(svc.ctl("greylist", "list", "--json").stdout)
    assert j
    st = json.loads(svc.ctl("policy", "status", "--json").stdout)
    assert st["service"]["requests"] == 5
    assert st["service"]["listen"][0].startswith("inet:127.0.0.1:")
    r = svc.ctl("greylist", "del", "10.1.1.1")
    assert r.returncode == 0, r.stderr
    r = svc.ctl("ratelimit", "reset", "nobody")
    assert r.returncode == 0, r.stderr
    r = svc.ctl("ratelimit", "list", "--json")
    assert r.returncode == 0
    json.loads(r.stdout)
    r = svc.ctl("greylist", "frobnicate")
    assert r.returncode != 0 and "usage" in r.stderr
    r = svc.ctl("status")
    assert r.returncode == 1  # not a verb of the standalone service


def test_unix_listener(svc):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(os.path.join(svc.tmp, "policy.in"))
        s.sendall(req(client="10.99.3.3"))
        assert read_reply(s) == "action=DUNNO\n\n"


def test_state_survives_restart(svc):
    assert svc.ask(client="10.2.2.2", sender="b@y.example").startswith("action=DEFER")
    time.sleep(1.2)
    assert svc.stop() == 0
    svc.start()
    time.sleep(0.5)
    r = svc.ask(client="10.2.2.2", sender="b@y.example")
    assert r.startswith("action=PREPEND X-Greylist:"), r


def test_malformed_and_huge(svc):
    for bad in (b"no equals here\n\n", b"=x\n\n", b"a=b\x00c\n\n", b"\x00" * 100):
        with svc.conn() as s:
            s.sendall(bad)
            assert closed_without_reply(s), bad
    # a good request first is answered, the garbage after it closes
    with svc.conn() as s:
        s.sendall(req(client="10.99.1.2") + b"garbage line\n")
        assert read_reply(s) == "action=DUNNO\n\n"
        assert closed_without_reply(s)
    # 1 MB request (one long value, then many attributes)
    for payload in (b"x=" + b"a" * (1 << 20) + b"\n\n",
                    b"".join(b"a%d=b\n" % i for i in range(100000)) + b"\n"):
        with svc.conn() as s:
            try:
                s.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert closed_without_reply(s)
    svc.alive()
    st = json.loads(svc.ctl("policy", "status", "--json").stdout)
    assert st["service"]["malformed"] >= 7
    assert "malformed request" in svc.logtext()


def test_half_closed_and_stalled(svc):
    # half-closed: both pipelined requests answered, then EOF
    with svc.conn() as s:
        s.sendall(req(client="10.99.1.3") + req(client="10.99.1.4"))
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        buf = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        assert buf == b"action=DUNNO\n\n" * 2
    # a partial request and EOF: nothing
    with svc.conn() as s:
        s.sendall(b"request=smtpd_access_policy\n")
        s.shutdown(socket.SHUT_WR)
        assert closed_without_reply(s)
    # a peer that sends a lot and never reads: the others are still served
    stalled = svc.conn()
    stalled.setblocking(False)
    blob = req(client="10.99.1.5") * 2000
    sent = 0
    t_end = time.time() + 3
    while time.time() < t_end:
        try:
            sent += stalled.send(blob)
        except BlockingIOError:
            break
    for i in range(20):
        assert svc.ask(client="10.99.2.%d" % i) == "action=DUNNO\n\n"
    stalled.close()
    # a silent peer (connected, never sends) does not block anyone either
    silent = svc.conn()
    svc.alive()
    silent.close()
    svc.alive()


def test_10000_idle_connections(svc):
    if not raise_nofile(NCONN + 2000):
        pytest.skip("RLIMIT_NOFILE hard limit below %d" % (NCONN + 2000))
    socks = []
    try:
        for i in range(NCONN):
            socks.append(socket.create_connection(("127.0.0.1", svc.port), timeout=10))
        # everyone else is still answered, and so are a few of the idle ones
        svc.alive()
        for s in socks[::1000]:
            s.sendall(req(client="10.99.4.4"))
            assert read_reply(s) == "action=DUNNO\n\n"
        st = json.loads(svc.ctl("policy", "status", "--json").stdout)
        assert st["service"]["connections"] >= NCONN, st
        assert st["service"]["refused"] == 0, st
    finally:
        for s in socks:
            s.close()
    svc.alive()


def policy_load_bin():
    d = os.path.dirname(os.path.abspath(MXJAIL))
    for p in (os.path.join(d, "tests/tools/policy_load"), os.path.join(d, "policy_load")):
        if os.access(p, os.X_OK):
            return p
    return None


def test_policy_load_1000_connections(svc):
    pl = policy_load_bin()
    if not pl:
        pytest.skip("policy_load not built (target policy_load)")
    if not raise_nofile(4096):
        pytest.skip("RLIMIT_NOFILE too low")
    r = subprocess.run([pl, "-H", "127.0.0.1", "-p", str(svc.port), "-c", "1000", "-T", "2",
                        "-d", "3", "-w", "1", "--mix", "60:30:10", "--retry-age", "1",
                        "--wl-net", "10.99.0.0/16", "--timeout", "10000"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    assert r.returncode == 0, r.stdout + r.stderr
    line = [l for l in r.stdout.splitlines() if l.startswith("JSON ")][-1]
    res = json.loads(line[5:])
    assert res["n"] > 1000, res
    assert res["errors"] == 0 and res["timeouts"] == 0, res
    svc.alive()


def test_inside_daemon_jail_and_reload(tmp_path):
    """mxjail run with [policy] enabled: the policy-spoof jail bans after 3
    spoofs, a banned client gets 554, and reload rebuilds the service only
    with valid new settings, keeping the greylist state."""
    port = free_port()
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "jail.conf").write_text(
        "[DEFAULT]\nbantime = 600\nfindtime = 600\n\n"
        "[policy-spoof]\nenabled = true\nbackend = policy\nfilter =\n"
        "policyevents = spoof\nmaxretry = 3\n")
    mport = free_port()
    base = f"""[mxjail]
statedir = {tmp_path}/state
socket = {tmp_path}/mxjail.sock
metrics = 127.0.0.1:{mport}
[policy]
enabled = yes
listen = inet:127.0.0.1:{port}
checks = banned spoof ratelimit greylist
[greylist]
delay = 300
whitelist_clients =
whitelist_recipients =
[spoof]
domains = example.test
"""
    (conf / "mxjail.conf").write_text(base + "[ratelimit]\nc = client_address: 2 requests / 1h\n")
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen([MXJAIL, "run", "-c", str(conf), "-f", "--backend", "null"],
                            stdout=log, stderr=subprocess.STDOUT)

    def ask(**kw):
        end = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(req(**kw))
                    return read_reply(s)
            except OSError:
                if time.time() > end:
                    raise
                time.sleep(0.05)

    def ctl(*a):
        return subprocess.run([MXJAIL, *a, "-s", str(tmp_path / "mxjail.sock")],
                              capture_output=True, text=True, timeout=30)
    try:
        for _ in range(3):
            assert "5.7.1" in ask(client="10.5.5.5", sender="a@example.test")
        r = ctl("banned")
        assert "policy-spoof" in r.stdout and "10.5.5.5" in r.stdout, r.stdout + r.stderr
        assert "554 5.7.1" in ask(client="10.5.5.5")
        # Prometheus: the service's counters and verdicts per check
        import urllib.request
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                      timeout=10).read().decode()
        assert "mxjail_policy_requests_total " in body, body
        assert 'mxjail_policy_verdicts_total{check="spoof",verdict="reject"} 3' in body, body
        assert 'mxjail_policy_verdicts_total{check="banned",verdict="reject"} 1' in body
        # manual network bans: an address inside any live banned prefix is refused
        r = ctl("ban", "policy-spoof", "10.40.0.0/24", "2001:db8:7::/48")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "554 5.7.1" in ask(client="10.40.0.77")
        assert "554 5.7.1" in ask(client="2001:db8:7:1::5")
        assert "554" not in ask(client="10.40.1.77")
        assert "554" not in ask(client="2001:db8:8::5")
        r = ctl("unban", "policy-spoof", "10.40.0.0/24")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "554" not in ask(client="10.40.0.78")
        assert "554 5.7.1" in ask(client="2001:db8:7:1::6")
        # rate limit: 2 requests per client, the third is deferred
        assert ask(client="10.6.6.6").startswith("action=DEFER_IF_PERMIT 4.2.0")
        assert ask(client="10.6.6.6").startswith("action=DEFER_IF_PERMIT 4.2.0")
        assert "4.7.1" in ask(client="10.6.6.6")
        # a broken new setting: the running service stays as it was
        (conf / "mxjail.conf").write_text(base + "[ratelimit]\nc = nonsense\n")
        ctl("reload")
        assert "4.7.1" in ask(client="10.6.6.6")
        assert "running one stays" in (tmp_path / "run.log").read_text()
        # a valid change takes effect; greylist state is kept
        (conf / "mxjail.conf").write_text(base + "[ratelimit]\nc = client_address: 100 requests / 1h\n")
        r = ctl("reload")
        assert r.returncode == 0, r.stderr
        assert ask(client="10.6.6.6").startswith("action=DEFER_IF_PERMIT 4.2.0")
        r = ctl("greylist", "list")
        assert "10.6.6.0" in r.stdout, r.stdout + r.stderr
        assert "554 5.7.1" in ask(client="10.5.5.5")
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                      timeout=10).read().decode()
        assert "mxjail_policy_state_commits_total" in body  # the new service's collector
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()


def test_standalone_sees_daemon_bans(svc, tmp_path):
    """`mxjail policy` on a host where `mxjail run` also runs (same state
    directory): clients the daemon banned - hosts and networks - get 554
    from the standalone service within a few seconds, and an unban lifts it."""
    conf = tmp_path / "dconf"
    conf.mkdir()
    (conf / "jail.conf").write_text(
        "[DEFAULT]\nbantime = 600\n\n[manual]\nenabled = true\nbackend = policy\n"
        "filter =\npolicyevents =\n")
    dsock = tmp_path / "mxjail.sock"
    (conf / "mxjail.conf").write_text(
        f"[mxjail]\nstatedir = {tmp_path}/state\nsocket = {dsock}\n")
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen([MXJAIL, "run", "-c", str(conf), "-f", "--backend", "null"],
                            stdout=log, stderr=subprocess.STDOUT)

    def ctl(*a):
        return subprocess.run([MXJAIL, *a, "-s", str(dsock)], capture_output=True,
                              text=True, timeout=30)

    def wait_for(pred, secs=10):
        end = time.time() + secs
        while time.time() < end:
            if pred():
                return True
            time.sleep(0.2)
        return False
    try:
        assert wait_for(lambda: ctl("ping").returncode == 0), (tmp_path / "run.log").read_text()
        r = ctl("ban", "manual", "10.41.0.0/24", "10.42.0.9", "2001:db8:9::/48")
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_for(lambda: "554 5.7.1" in svc.ask(client="10.41.0.200")), svc.logtext()
        assert "554 5.7.1" in svc.ask(client="10.42.0.9")
        assert "554 5.7.1" in svc.ask(client="2001:db8:9:ab::1")
        assert "554" not in svc.ask(client="10.42.0.10")
        assert "554" not in svc.ask(client="10.41.1.1")
        r = ctl("unban", "manual", "10.41.0.0/24")
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait_for(lambda: "554" not in svc.ask(client="10.41.0.201")), svc.logtext()
        assert "554 5.7.1" in svc.ask(client="10.42.0.9")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()
    # the daemon gone, its database stays: the bans still hold
    assert "554 5.7.1" in svc.ask(client="10.42.0.9")
    svc.alive()


def test_detached_service_writes_state(tmp_path):
    """Without -f the service detaches (fork) before its threads start: the
    state writer commits, and SIGTERM stops it promptly."""
    s = Service(tmp_path)
    s.stop()
    conf = os.path.join(s.tmp, "conf")
    r = subprocess.run([MXJAIL, "policy", "-c", conf], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    pid = None
    try:
        end = time.time() + 10
        while time.time() < end:
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        args = f.read().split(b"\0")
                except OSError:
                    continue
                if b"policy" in args and conf.encode() in args:
                    pid = int(d)
            if pid and os.path.exists(s.sock):
                break
            time.sleep(0.1)
        assert pid, "the detached service is not running"
        # the control socket can appear before the policy listener: retry the
        # first request until the listener accepts
        reply, end = None, time.time() + 10
        while reply is None:
            try:
                reply = s.ask(client="10.3.3.3")
            except ConnectionRefusedError:
                if time.time() > end:
                    raise
                time.sleep(0.1)
        assert "4.2.0" in reply
        end = time.time() + 10
        st = None
        while time.time() < end:
            st = json.loads(s.ctl("policy", "status", "--json").stdout)
            if st["checks"]["state"]["commits"] >= 1:
                break
            time.sleep(0.2)
        assert st["checks"]["state"]["commits"] >= 1, st
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            end = time.time() + 10
            while time.time() < end and os.path.exists(f"/proc/{pid}"):
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().split(") ")[1].startswith("Z"):
                            break
                except OSError:
                    break
                time.sleep(0.1)
            assert not os.path.exists(f"/proc/{pid}/cmdline") or \
                open(f"/proc/{pid}/cmdline", "rb").read() == b"", "did not stop on SIGTERM"
