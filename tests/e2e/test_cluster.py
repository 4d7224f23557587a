"""test_cluster - several `mxjail run` nodes sharing bans and policy state through Redis.

A real redis-server runs on a free loopback port (temp dir, no persistence); every node
is a separate `mxjail run` with its own configuration tree, state dir, socket, policy
port and the null firewall backend, all steered through the control CLI. Covered: a
ban on A reaches B (latency printed, asserted only within seconds) with the same end
time; a manual ban and a maxretry ban; B stopped during bans catches up on restart;
Redis stopped - both keep banning locally and converge when it returns; an unban is
not resurrected by a node that missed it; shared failure counting across nodes;
ignoreip on the receiving node wins; greylisting first on A, retry on B passes; a rate
limit counts across nodes; Redis SIGSTOPped - bans and policy replies stay fast and
the status shows the link down; the link's Prometheus metrics.

Every process is stopped by its PID at the end (SIGCONT first for a stopped Redis).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

BIN = os.environ.get("MXJAIL_BIN")
SRC = os.environ.get("MXJAIL_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
REDIS = shutil.which("redis-server") or ("/usr/bin/redis-server"
                                         if os.path.exists("/usr/bin/redis-server") else None)

pytestmark = [
    pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set"),
    pytest.mark.skipif(not REDIS, reason="redis-server not installed"),
]

REQ = ("request=smtpd_access_policy\nprotocol_state={state}\nprotocol_name=ESMTP\n"
       "client_address={client}\nclient_name=unknown\nhelo_name=h.example\n"
       "sender={sender}\nrecipient={rcpt}\nrecipient_count={count}\nsasl_username={sasl}\n\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def poll(fn, timeout=8.0, what="condition", step=0.01):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def syslog_line(addr, user="root"):
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
    return "%s mx sshd[4242]: Failed password for %s from %s port 52144 ssh2\n" % (stamp, user, addr)


class Redis:
    def __init__(self, tmp):
        self.dir = os.path.join(str(tmp), "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.stopped = False

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "a")
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"],
            stdout=self.log, stderr=subprocess.STDOUT)
        poll(self.ping, 10, "redis-server to answer")
        return self

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def cmd(self, *args):
        """One command in RESP; returns the raw reply bytes (enough for tests)."""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(out)
            time.sleep(0.05)
            return s.recv(1 << 20)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            if self.stopped:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.stopped = False
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def sigstop(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False


class Node:
    def __init__(self, tmp, name, redis, maxretry=3, jail_extra="", cluster_extra="",
                 policy=False, ignoreip="127.0.0.1/8 ::1 10.0.0.0/8", resync="3s"):
        self.name = name
        self.tmp = os.path.join(str(tmp), name)
        os.makedirs(self.tmp, exist_ok=True)
        self.conf = os.path.join(self.tmp, "conf")
        self.state = os.path.join(self.tmp, "state")
        self.sock = os.path.join(self.tmp, "run", "mxjail.sock")
        self.log = os.path.join(self.tmp, "auth.log")
        self.out = os.path.join(self.tmp, "mxjail.log")
        self.policy_port = free_port() if policy else None
        self.proc = None
        shutil.copytree(os.path.join(SRC, "etc"), self.conf)
        with open(os.path.join(self.conf, "jail.local"), "w") as f:
            f.write("[DEFAULT]\nignoreip = %s\n\n"
                    "[sshd]\nenabled = true\nlogpath = %s\nbackend = polling\n"
                    "maxretry = %d\nfindtime = 10m\nbantime = 1h\n%s\n"
                    % (ignoreip, self.log, maxretry, jail_extra))
        with open(os.path.join(self.conf, "mxjail.conf"), "w") as f:
            f.write("[cluster]\nredis = redis://127.0.0.1:%d/0\nnode = %s\n"
                    "share = bans greylist ratelimit\ntimeout = 300ms\nresync = %s\n%s\n"
                    % (redis.port, name, resync, cluster_extra))
            if policy:
                f.write("\n[policy]\nenabled = yes\nlisten = inet:127.0.0.1:%d\n"
                        "[greylist]\ndelay = 2\nwhitelist_clients = %s/none\n"
                        "whitelist_recipients = %s/none\n"
                        "[ratelimit]\nsasl = sasl_username: 5 recipients / 1h\n"
                        % (self.policy_port, self.tmp, self.tmp))
        open(self.log, "w").close()

    def start(self):
        cmd = [BIN, "run", "-f", "-c", self.conf, "--state", self.state, "--socket", self.sock,
               "--logtarget", self.out, "--loglevel", "DEBUG", "--backend", "null"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("mxjail %s exited %d: %s" % (
                    self.name, self.proc.returncode, self.proc.stderr.read()))
            if self.cli("ping", check=False).returncode == 0:
                return self
            time.sleep(0.05)
        raise AssertionError("mxjail %s did not answer" % self.name)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.proc.stderr.close()
        self.proc = None

    def cli(self, *args, check=True):
        r = subprocess.run([BIN] + list(args) + ["--socket", self.sock], capture_output=True,
                           text=True, timeout=20)
        if check:
            assert r.returncode == 0, "%s: mxjail %s: rc %d: %s%s" % (
                self.name, args, r.returncode, r.stdout, r.stderr)
        return r

    def banned(self):
        r = self.cli("banned", "--json")
        return {(b["jail"], b["address"]): b for b in json.loads(r.stdout)}

    def has(self, addr, jail="sshd"):
        return (jail, addr) in self.banned()

    def status(self):
        return json.loads(self.cli("status", "--json").stdout)

    def connected(self):
        c = self.status().get("cluster", {})
        return c.get("state") == "connected"

    def append(self, *lines):
        with open(self.log, "a") as f:
            f.write("".join(lines))

    def logtext(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def ask(self, client, sender="s@remote.example", rcpt="r@example.test", sasl="", conn=None,
            state="RCPT", count=0):
        data = REQ.format(client=client, sender=sender, rcpt=rcpt, sasl=sasl, state=state,
                          count=count).encode()
        s = conn or socket.create_connection(("127.0.0.1", self.policy_port), timeout=5)
        try:
            s.sendall(data)
            buf = b""
            while not buf.endswith(b"\n\n"):
                d = s.recv(4096)
                if not d:
                    break
                buf += d
            return buf.decode(errors="replace")
        finally:
            if conn is None:
                s.close()


@pytest.fixture
def cluster(tmp_path):
    made = {"redis": None, "nodes": []}
    r = Redis(tmp_path).start()
    made["redis"] = r

    def node(name, **kw):
        n = Node(tmp_path, name, r, **kw)
        made["nodes"].append(n)
        return n

    yield r, node
    for n in made["nodes"]:
        n.stop()
    r.stop()


def test_ban_reaches_other_node(cluster):
    redis, node = cluster
    a = node("A").start()
    b = node("B").start()
    poll(lambda: a.connected() and b.connected(), 10, "both nodes connected")
    lat = []
    for i in range(10):
        addr = "192.0.2.%d" % (10 + i)
        t0 = time.time()
        a.cli("ban", "sshd", addr)
        poll(lambda: b.has(addr), 5, "ban of %s on B" % addr, step=0.002)
        lat.append(time.time() - t0)
    lat.sort()
    print("ban propagation A->B incl. two CLI round trips: p50 %.1f ms, max %.1f ms"
          % (lat[len(lat) // 2] * 1000, lat[-1] * 1000))
    # same end time on both nodes (remaining time is carried, not restarted)
    ea = a.banned()[("sshd", "192.0.2.10")]
    eb = b.banned()[("sshd", "192.0.2.10")]
    for k in ("end", "remaining", "timeofban"):
        if k in ea and isinstance(ea[k], (int, float)):
            assert abs(ea[k] - eb[k]) < 2, (k, ea, eb)
    # a ban reached through maxretry on B comes back to A
    b.append(*[syslog_line("198.51.100.23") for _ in range(3)])
    poll(lambda: a.has("198.51.100.23"), 5, "maxretry ban on A")
    # status shows the link
    txt = a.cli("status").stdout
    assert "Cluster:" in txt and "connected" in txt, txt
    assert "cluster: ban 198.51.100.23 from node B" in a.logtext()


def test_restarted_node_catches_up(cluster):
    redis, node = cluster
    a = node("A").start()
    b = node("B", resync="10m").start()
    poll(lambda: a.connected() and b.connected(), 10, "both nodes connected")
    a.cli("ban", "sshd", "203.0.113.1")
    poll(lambda: b.has("203.0.113.1"), 5, "first ban on B")
    b.stop()
    for i in range(2, 7):
        a.cli("ban", "sshd", "203.0.113.%d" % i)
    t0 = time.time()
    b.start()
    poll(lambda: all(b.has("203.0.113.%d" % i) for i in range(1, 7)), 8, "B caught up")
    print("B caught up with 5 bans %.0f ms after its restart" % ((time.time() - t0) * 1000))
    assert b.status()["cluster"]["resyncs"] == 0, "B read the stream, not the index"


def test_redis_down_then_converge(cluster):
    redis, node = cluster
    a = node("A").start()
    b = node("B").start()
    poll(lambda: a.connected() and b.connected(), 10, "both nodes connected")
    redis.stop()
    poll(lambda: not a.connected() and not b.connected(), 5, "both see Redis down")
    t0 = time.time()
    a.cli("ban", "sshd", "192.0.2.50")
    b.append(*[syslog_line("198.51.100.60") for _ in range(3)])
    poll(lambda: a.has("192.0.2.50") and b.has("198.51.100.60"), 5, "local bans without Redis")
    print("local bans with Redis down took %.1f ms" % ((time.time() - t0) * 1000))
    assert not b.has("192.0.2.50")
    redis.start()
    poll(lambda: a.has("198.51.100.60") and b.has("192.0.2.50"), 15, "convergence")
    assert a.connected() and b.connected()


def test_unban_not_resurrected(cluster):
    redis, node = cluster
    a = node("A").start()
    b = node("B").start()
    poll(lambda: a.connected() and b.connected(), 10, "both nodes connected")
    a.cli("ban", "sshd", "192.0.2.77")
    poll(lambda: b.has("192.0.2.77"), 5, "ban on B")
    b.stop(signal.SIGKILL)            # B misses the unban; its store still holds the ban
    a.cli("unban", "192.0.2.77")
    assert not a.has("192.0.2.77")
    b.start()
    poll(lambda: not b.has("192.0.2.77"), 8, "B applies the tombstone")
    time.sleep(4)                     # at least one anti-entropy round (resync = 3s)
    assert not a.has("192.0.2.77") and not b.has("192.0.2.77")
    # a later ban still wins over the old tombstone
    b.cli("ban", "sshd", "192.0.2.77")
    poll(lambda: a.has("192.0.2.77"), 5, "new ban after the unban")


def test_unban_not_resurrected_after_index_resync(cluster):
    """The stream is gone (trimmed/deleted): B resyncs from the index and its stale
    ban loses against the tombstone instead of being published again."""
    redis, node = cluster
    a = node("A").start()
    b = node("B").start()
    poll(lambda: a.connected() and b.connected(), 10, "both nodes connected")
    a.cli("ban", "sshd", "192.0.2.88")
    poll(lambda: b.has("192.0.2.88"), 5, "ban on B")
    b.stop(signal.SIGKILL)
    a.cli("unban", "192.0.2.88")
    time.sleep(0.3)
    redis.cmd("DEL", "mxjail:bans")    # as if trimmed past B's position
    b.start()
    poll(lambda: not b.has("192.0.2.88"), 8, "B drops its stale ban")
    time.sleep(4)
    assert not a.has("192.0.2.88")


def test_shared_failure_counting(cluster):
    redis, node = cluster
    a = node("A", maxretry=5, jail_extra="cluster_counters = true").start()
    b = node("B", maxretry=5, jail_extra="cluster_counters = true").start()
    poll(lambda: a.connected() and b.connected(), 10, "both nodes connected")
    ip = "203.0.113.9"
    a.append(*[syslog_line(ip) for _ in range(3)])
    time.sleep(1.5)
    assert not a.has(ip) and not b.has(ip)
    b.append(*[syslog_line(ip) for _ in range(2)])
    poll(lambda: a.has(ip) and b.has(ip), 8, "5 failures over two nodes ban on both")


def test_never_ban_list_of_receiver(cluster):
    redis, node = cluster
    a = node("A", ignoreip="127.0.0.1/8").start()
    b = node("B", ignoreip="127.0.0.1/8 192.0.2.0/28").start()
    poll(lambda: a.connected() and b.connected(), 10, "both nodes connected")
    a.cli("ban", "sshd", "192.0.2.5")
    a.cli("ban", "sshd", "192.0.2.100")
    poll(lambda: b.has("192.0.2.100"), 5, "ordinary ban on B")
    assert not b.has("192.0.2.5")
    assert "not banning 192.0.2.5 from node A" in b.logtext()


def test_greylist_and_ratelimit_across_nodes(cluster):
    redis, node = cluster
    a = node("A", policy=True).start()
    b = node("B", policy=True).start()
    poll(lambda: a.connected() and b.connected(), 10, "both nodes connected")
    r = a.ask("203.0.113.20", sender="x@sender.example")
    assert r.startswith("action=DEFER_IF_PERMIT 4.2.0"), r
    time.sleep(2.5)
    r = b.ask("203.0.113.20", sender="x@sender.example")
    assert not r.startswith("action=DEFER"), "retry on B was deferred: " + r
    # 5 recipients / 1h for a SASL user (counted at DATA): 3 on A + 2 on B use it up
    r = a.ask("203.0.113.21", sasl="alice", state="DATA", count=3)
    assert "rate limit" not in r, r
    time.sleep(0.5)
    r = b.ask("203.0.113.21", sasl="alice", state="DATA", count=2)
    assert "rate limit" not in r, r
    time.sleep(0.5)
    r = a.ask("203.0.113.21", sasl="alice", state="DATA", count=1)
    r2 = b.ask("203.0.113.21", sasl="alice", state="DATA", count=1)
    assert "rate limit" in r and "rate limit" in r2, (r, r2)


def test_redis_sigstop_does_not_slow_anything(cluster):
    redis, node = cluster
    a = node("A", policy=True).start()
    b = node("B", policy=True).start()
    poll(lambda: a.connected() and b.connected(), 10, "both nodes connected")
    redis.sigstop()
    try:
        s = socket.create_connection(("127.0.0.1", a.policy_port), timeout=5)
        worst = 0.0
        for i in range(50):
            t0 = time.time()
            r = a.ask("203.0.113.%d" % (30 + i), sender="y%d@sender.example" % i, conn=s)
            worst = max(worst, time.time() - t0)
            assert r.startswith("action="), r
        s.close()
        print("policy replies with Redis SIGSTOPped: worst %.2f ms" % (worst * 1000))
        t0 = time.time()
        a.append(*[syslog_line("198.51.100.70") for _ in range(3)])
        poll(lambda: a.has("198.51.100.70"), 5, "local ban with Redis hung")
        print("log-line ban with Redis hung: %.1f ms" % ((time.time() - t0) * 1000))
        poll(lambda: not a.connected(), 5, "A notices the hung Redis")
        st = a.status()["cluster"]
        assert st["state"] == "disconnected", st
        assert "no answer" in st["last_error"] or st["cmd"] != "up", st
    finally:
        redis.sigcont()
    poll(lambda: b.has("198.51.100.70"), 15, "B gets the ban after SIGCONT")


def test_link_metrics(cluster):
    import urllib.request
    redis, node = cluster
    a = node("A")
    port = free_port()
    with open(os.path.join(a.conf, "mxjail.conf"), "a") as f:
        f.write("[mxjail]\nmetrics = 127.0.0.1:%d\n" % port)
    a.start()
    poll(a.connected, 10, "A connected")
    a.cli("ban", "sshd", "203.0.113.44")

    def scrape():
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
        return dict(l.rsplit(" ", 1) for l in body.decode().splitlines()
                    if l.startswith("mxjail_cluster_"))
    m = poll(lambda: (lambda d: d if d.get("mxjail_cluster_commands_total", "0") != "0"
                      else None)(scrape()), 5, "a command acknowledged")
    assert m["mxjail_cluster_up"] == "1" and m["mxjail_cluster_dropped_total"] == "0", m
    redis.stop()
    poll(lambda: scrape().get("mxjail_cluster_up") == "0", 5, "link down in metrics")


def test_reload_applies_cluster_changes(cluster):
    """[cluster] is re-read on reload: a broken section keeps the running link, a
    changed one restarts it with the new settings, none stops it."""
    redis, node = cluster
    a = node("A").start()
    poll(a.connected, 10, "A connected")
    path = os.path.join(a.conf, "mxjail.conf")
    with open(path) as f:
        good = f.read()

    def rewrite(text):
        with open(path, "w") as f:
            f.write(text)
        a.cli("reload")

    rewrite(good.replace("share = bans greylist ratelimit", "share = bans everything"))
    assert "the running cluster link stays" in a.logtext()
    assert a.connected()
    rewrite(good.replace("node = A", "node = A\nprefix = other"))
    poll(lambda: "cluster link restarted with the new settings" in a.logtext(), 5,
         "cluster restart logged")
    poll(a.connected, 10, "A connected again")
    a.cli("ban", "sshd", "203.0.113.77")
    poll(lambda: b"other" in redis.cmd("KEYS", "other*"), 5, "keys under the new prefix")
    rewrite("[mxjail]\n")
    assert "cluster" not in a.status()
    assert "cluster link stopped" in a.logtext()
