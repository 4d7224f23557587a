"""test_metrics - `mxjail run` with `metrics = 127.0.0.1:PORT`: /metrics, the status
page and /status.json while the daemon bans.

The daemon is started as in test_daemon.py (temp tree, null firewall backend, own state
dir and socket) with an mxjail.local that turns the listener on. Every scrape goes
through a strict exposition-format checker written here (metric and label name grammar,
HELP/TYPE placement, one block per family, label escaping, values, no duplicate
series). Counters must move as failures, bans and unbans happen. The status page is
fetched with curl and rendered by headless Chromium (skipped when either is missing);
both must list the live bans (a screenshot goes to $MXJAIL_ARTIFACTS, default
./artifacts, for CI). Then the listener is attacked with garbage, NUL bytes,
a 1 MB header, a slowloris client and more idle connections than it accepts: it keeps
answering, and so does the daemon. After a restart the timeline still shows the bans
of the last 24 h from the store's history. A non-loopback address without metrics_token is
refused (the daemon runs on); with a token, requests without it get 401.

Every daemon is stopped by its PID at the end of its test.
"""
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from test_daemon import Daemon, poll, syslog_line

BIN = os.environ.get("MXJAIL_BIN")
pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set")

ARTIFACTS = os.environ.get("MXJAIL_ARTIFACTS") or os.path.join(os.getcwd(), "artifacts")
ATTACKER = "192.0.2.7"
OTHER = "198.51.100.23"

# ---------- a strict Prometheus text format (0.0.4) checker ----------

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _value(s):
    if s in ("NaN", "+Inf", "-Inf", "Inf"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ValueError("bad value %r" % s)
    return float(s)


def _labels(s, i, where):
    """Parses {a="b",...} starting at s[i] == '{'; returns (dict, index after '}')."""
    assert s[i] == "{"
    i += 1
    out = {}
    while True:
        if s[i] == "}":
            return out, i + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, i)
        assert m, "%s: bad label name at %r" % (where, s[i:])
        name = m.group(0)
        assert not name.startswith("__"), "%s: reserved label %s" % (where, name)
        assert name not in out, "%s: label %s twice" % (where, name)
        i = m.end()
        assert s[i:i + 2] == '="', "%s: expected =\" after %s" % (where, name)
        i += 2
        val = []
        while True:
            c = s[i]
            if c == "\\":
                nxt = s[i + 1]
                assert nxt in '\\"n', "%s: bad escape \\%s" % (where, nxt)
                val.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                assert c != "\n", "%s: raw newline in a label value" % where
                val.append(c)
                i += 1
        out[name] = "".join(val)
        if s[i] == ",":
            i += 1
            continue
        assert s[i] == "}", "%s: expected , or } at %r" % (where, s[i:])


def parse_prometheus(text):
    """Returns {family: {"type", "help", "samples": {(name, labels): value}}}; asserts
    everything the format requires (and mxjail's naming conventions)."""
    assert text.endswith("\n"), "exposition must end with a newline"
    fams = {}
    closed = set()
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r" % (n, line)
        assert line == line.strip(" ") or line.startswith("#"), where
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(" ")
            assert NAME_RE.match(name), "%s: bad metric name" % where
            assert name not in closed, "%s: family %s appears in two blocks" % (where, name)
            if current and current != name:
                closed.add(current)
            f = fams.setdefault(name, {"type": None, "help": None, "samples": {}})
            assert not f["samples"], "%s: %s after samples" % (where, kind)
            if kind == "HELP":
                assert f["help"] is None, "%s: second HELP" % where
                assert not re.search(r"\\[^\\n]", arg.replace("\\\\", "")), "%s: bad escape" % where
                f["help"] = arg
            else:
                assert f["type"] is None, "%s: second TYPE" % where
                assert arg in TYPES, "%s: unknown type" % where
                f["type"] = arg
            current = name
            continue
        if line.startswith("#") or line == "":
            continue
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        assert m, "%s: no metric name" % where
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _labels(line, i, where)
        assert line[i] == " ", "%s: expected a blank before the value" % where
        parts = line[i + 1:].split(" ")
        assert 1 <= len(parts) <= 2, where
        v = _value(parts[0])
        if len(parts) == 2:
            assert re.fullmatch(r"-?\d+", parts[1]), "%s: bad timestamp" % where
        fam = name
        for suffix in ("_sum", "_count", "_bucket"):
            if name not in fams and name.endswith(suffix) and name[:-len(suffix)] in fams:
                fam = name[:-len(suffix)]
        assert fam not in closed, "%s: family %s appears in two blocks" % (where, fam)
        if current and current != fam:
            closed.add(current)
        current = fam
        f = fams.setdefault(fam, {"type": "untyped", "help": None, "samples": {}})
        key = (name, tuple(sorted(labels.items())))
        assert key not in f["samples"], "%s: duplicate series" % where
        if f["type"] == "counter":
            assert v >= 0 or math.isnan(v), "%s: negative counter" % where
        f["samples"][key] = v
    for name, f in fams.items():
        if f["type"] == "counter":
            assert name.endswith("_total"), "counter %s should end in _total" % name
        if name.startswith("mxjail_"):
            assert f["help"], "%s has no HELP" % name
    return fams


def sample(fams, name, **labels):
    f = fams.get(name)
    assert f, "no family %s in %s" % (name, sorted(fams))
    return f["samples"].get((name, tuple(sorted(labels.items()))))


# ---------- helpers ----------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(port, path, headers=None, timeout=10):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")


def scrape(port, **kw):
    st, hdr, body = http_get(port, "/metrics", **kw)
    assert st == 200, body
    assert hdr["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse_prometheus(body)


def raw(port, data, timeout=5.0):
    """Sends bytes, returns what comes back until the server closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return out


class MetricsDaemon(Daemon):
    def __init__(self, tmp, metrics=None, token=None, **kw):
        super().__init__(tmp, **kw)
        self.port = free_port()
        self.metrics = metrics if metrics is not None else "127.0.0.1:%d" % self.port
        self.write_local(self.metrics, token)

    def write_local(self, metrics, token=None):
        with open(os.path.join(self.conf, "mxjail.local"), "w") as f:
            f.write("[mxjail]\nmetrics = %s\n" % metrics)
            if token:
                f.write("metrics_token = %s\n" % token)

    def alive(self):
        return self.proc.poll() is None and self.cli("ping", check=False).returncode == 0


@pytest.fixture
def mdaemon(tmp_path):
    made = []

    def make(**kw):
        d = MetricsDaemon(tmp_path, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


def wait_listening(port, timeout=10):
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    poll(up, timeout=timeout, what="metrics listener on %d" % port)


# ---------- tests ----------

def test_checker_rejects_bad_text():
    good = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="a\\"b\\\\c\\n"} 1\n'
    assert sample(parse_prometheus(good), "a_total", x='a"b\\c\n') == 1
    bad = [
        "a_total 1",                                        # no final newline
        "9a 1\n",                                           # name grammar
        'a{x="1",x="2"} 1\n',                               # label twice
        'a{x="\\t"} 1\n',                                   # bad escape
        'a{__x="1"} 1\n',                                   # reserved label
        "a 1\nb 1\na 2\n",                                  # family split in two blocks
        "a 1\na 1\n",                                       # duplicate series
        "a one\n",                                          # value
        "# TYPE a counter\n# TYPE a counter\na 1\n",        # TYPE twice
        "a 1\n# TYPE a gauge\n",                            # TYPE after samples
        "# TYPE a_total counter\na_total -1\n",             # negative counter
        "# TYPE a counter\na 1\n",                          # counter without _total
        "# TYPE a_total gauge2\na_total 1\n",               # unknown type
    ]
    for text in bad:
        with pytest.raises((AssertionError, ValueError, IndexError)):
            parse_prometheus(text)


def test_counters_move(mdaemon):
    d = mdaemon(maxretry=3).start()
    wait_listening(d.port)
    m = scrape(d.port)
    assert sample(m, "mxjail_jail_failures_total", jail="sshd") == 0
    assert sample(m, "mxjail_jail_bans_total", jail="sshd") == 0
    assert sample(m, "mxjail_jail_banned", jail="sshd") == 0
    assert sample(m, "mxjail_source_lines_total", source=d.log) == 0
    assert m["mxjail_jail_bans_total"]["type"] == "counter"
    assert m["mxjail_jail_banned"]["type"] == "gauge"
    for fam in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                "mxjail_state_db_bytes", "mxjail_regex_seconds_total", "mxjail_info"):
        assert fam in m, fam
    assert sample(m, "mxjail_state_db_bytes") > 0

    d.append(syslog_line(ATTACKER), syslog_line(ATTACKER), "a line no filter matches\n")
    poll(lambda: sample(scrape(d.port), "mxjail_source_lines_total", source=d.log) == 3,
         what="3 lines read")
    m = scrape(d.port)
    assert sample(m, "mxjail_jail_failures_total", jail="sshd") == 2
    assert sample(m, "mxjail_jail_failed", jail="sshd") == 1
    assert sample(m, "mxjail_source_matched_total", source=d.log) == 2
    assert sample(m, "mxjail_jail_bans_total", jail="sshd") == 0
    assert sample(m, "mxjail_regex_seconds_total") > 0

    d.append(syslog_line(ATTACKER))
    poll(lambda: sample(scrape(d.port), "mxjail_jail_bans_total", jail="sshd") == 1,
         what="the ban counted")
    m = scrape(d.port)
    assert sample(m, "mxjail_jail_banned", jail="sshd") == 1
    assert sample(m, "mxjail_bans") == 1
    assert sample(m, "mxjail_jail_failures_total", jail="sshd") == 3
    assert sample(m, "mxjail_fw_operations_total", op="ban") == 1
    assert sample(m, "mxjail_fw_errors_total", op="ban") == 0

    d.cli("ban", "sshd", OTHER)
    d.cli("unban", ATTACKER)
    m = scrape(d.port)
    assert sample(m, "mxjail_jail_bans_total", jail="sshd") == 2
    assert sample(m, "mxjail_jail_banned", jail="sshd") == 1
    assert sample(m, "mxjail_fw_operations_total", op="ban") == 2
    assert sample(m, "mxjail_fw_operations_total", op="unban") == 1
    assert sample(m, "mxjail_http_requests_total") >= 5

    # counters survive a reload (SIGHUP)
    os.kill(d.proc.pid, signal.SIGHUP)
    poll(lambda: "reloaded" in d.logtext(), what="reload")
    m = scrape(d.port)
    assert sample(m, "mxjail_jail_bans_total", jail="sshd") == 2
    assert sample(m, "mxjail_source_lines_total", source=d.log) == 4

    # HEAD has the headers and no body
    r = raw(d.port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    head, _, body = r.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body == b""


def bans_in_page(html):
    rows = re.findall(r'<tr class="ban"><td>([^<]*)</td><td class="addr">([^<]*)</td>', html)
    return set(rows)


def test_status_page_shows_live_bans(mdaemon):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    d = mdaemon(maxretry=2).start()
    wait_listening(d.port)
    d.append(syslog_line(ATTACKER), syslog_line(ATTACKER))
    poll(lambda: d.status()["currently_banned"] == 1, what="ban")
    d.cli("ban", "sshd", OTHER)
    url = "http://127.0.0.1:%d/" % d.port
    page = subprocess.run(["curl", "-sS", "--max-time", "10", url], capture_output=True,
                          text=True, check=True).stdout
    assert page.startswith("<!DOCTYPE html>")
    assert 'http-equiv="refresh"' in page
    assert bans_in_page(page) == {("sshd", ATTACKER), ("sshd", OTHER)}
    assert "<svg" in page and 'class="ban"' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no external assets
    st, hdr, _ = http_get(d.port, "/")
    assert "default-src 'none'" in hdr["Content-Security-Policy"]

    st, _, body = http_get(d.port, "/status.json")
    j = json.loads(body)
    assert {(b["jail"], b["address"]) for b in j["bans"]} == {("sshd", ATTACKER), ("sshd", OTHER)}
    assert j["jails"][0]["name"] == "sshd" and j["jails"][0]["currently_banned"] == 2
    assert len(j["timeline"]["failures"]) == 96
    assert sum(j["timeline"]["failures"]) == 2 and sum(j["timeline"]["bans"]) == 2

    # an unban shows on the next fetch
    d.cli("unban", OTHER)
    page = subprocess.run(["curl", "-sS", url], capture_output=True, text=True).stdout
    assert bans_in_page(page) == {("sshd", ATTACKER)}
    assert http_get(d.port, "/nope")[0] == 404


def test_timeline_survives_a_restart(mdaemon):
    """The 24 h timeline is read back from the store's ban history at start: an ended
    ban of the previous run and one from yesterday (written into the history while
    the daemon is stopped) are on it, one older than a day is not."""
    import sqlite3
    d = mdaemon().start()
    wait_listening(d.port)
    d.cli("ban", "sshd", OTHER)
    d.cli("unban", OTHER)
    d.kill(signal.SIGTERM)
    now = time.time()
    db = sqlite3.connect(os.path.join(d.state, "mxjail.sqlite3"))
    with db:
        for addr, age in (("203.0.113.20", 20 * 3600), ("203.0.113.30", 30 * 3600)):
            db.execute("INSERT INTO history(id, jail, timeofban, bantime, endtime, bancount,"
                       " failures) VALUES (?, 'sshd', ?, 600, ?, 1, 3)",
                       (addr, now - age, now - age + 600))
    db.close()
    d.start()
    wait_listening(d.port)
    st, _, body = http_get(d.port, "/status.json")
    assert st == 200
    tl = json.loads(body)["timeline"]
    assert sum(tl["bans"]) == 2, tl
    size, start = tl["bucket_seconds"], tl["start"]
    yesterday = int((now - 20 * 3600 - start) // size)
    assert tl["bans"][yesterday] == 1, tl
    assert tl["bans"][-1] + tl["bans"][-2] == 1, tl   # the ban of the last run
    assert d.status()["currently_banned"] == 0


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_status_page_in_chromium(mdaemon, tmp_path):
    browser = chromium()
    if not browser:
        pytest.skip("chromium is not installed")
    d = mdaemon(maxretry=2).start()
    wait_listening(d.port)
    d.append(syslog_line(ATTACKER), syslog_line(ATTACKER))
    poll(lambda: d.status()["currently_banned"] == 1, what="ban")
    d.cli("ban", "sshd", OTHER)
    home = tmp_path / "chromium-home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--user-data-dir=%s" % home, "--dump-dom",
                        "http://127.0.0.1:%d/" % d.port],
                       capture_output=True, text=True, timeout=90, env=env)
    dom = r.stdout
    assert "<table id=\"bans\">" in dom.replace("<tbody>", ""), r.stderr[-2000:]
    # Chromium inserts <tbody>; the rows are what counts
    assert bans_in_page(dom) == {("sshd", ATTACKER), ("sshd", OTHER)}, dom[-3000:]
    assert '<svg id="timeline"' in dom
    assert re.search(r'<rect class="ban"', dom)
    # a screenshot for CI's artifacts (the DOM above is what is checked)
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "status_page.png")
    if os.path.exists(shot):
        os.unlink(shot)
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--user-data-dir=%s" % home, "--screenshot=%s" % shot,
                        "--window-size=1280,900", "http://127.0.0.1:%d/" % d.port],
                       capture_output=True, text=True, timeout=90, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.getsize(shot) > 5000


def test_token(mdaemon):
    d = mdaemon(token="s3cr3t+/x").start()
    wait_listening(d.port)
    st, hdr, _ = http_get(d.port, "/metrics")
    assert st == 401 and hdr["WWW-Authenticate"].startswith("Bearer")
    assert http_get(d.port, "/", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert http_get(d.port, "/metrics?token=s3cr3t")[0] == 401
    scrape(d.port, headers={"Authorization": "Bearer s3cr3t+/x"})
    st, _, page = http_get(d.port, "/?token=s3cr3t%2B%2Fx")
    assert st == 200
    assert 'href="metrics?token=s3cr3t%2B%2Fx"' in page  # the page's links keep working
    assert http_get(d.port, "/status.json?token=s3cr3t%2B%2Fx")[0] == 200


def test_non_loopback_needs_token(mdaemon):
    d = mdaemon(metrics="0.0.0.0:%d" % free_port())
    port = int(d.metrics.rsplit(":", 1)[1])
    d.start()
    poll(lambda: "metrics_token is not set" in d.logtext(), what="refusal logged")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert d.alive()


def test_bad_address_and_reload(mdaemon):
    d = mdaemon(metrics="not-an-address:80").start()
    poll(lambda: "running without the metrics listener" in d.logtext(), what="error logged")
    assert d.alive()
    # a reload with a good address starts the listener; another moves it
    d.write_local("127.0.0.1:%d" % d.port)
    os.kill(d.proc.pid, signal.SIGHUP)
    wait_listening(d.port)
    scrape(d.port)
    p2 = free_port()
    d.write_local("127.0.0.1:%d" % p2)
    os.kill(d.proc.pid, signal.SIGHUP)
    wait_listening(p2)
    scrape(p2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
    assert d.alive()


def test_hostile_clients(mdaemon):
    d = mdaemon(maxretry=2).start()
    wait_listening(d.port)
    p = d.port
    assert raw(p, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(p, b"\x00\xff\x00\xfe" * 64 + b"\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(p, b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(p, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").startswith(
        b"HTTP/1.1 400 ")
    assert raw(p, b"PUT / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    # a 1 MB header: refused once the head limit is full, the rest is not read
    r = raw(p, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"A" * (1 << 20) + b"\r\n\r\n")
    assert r == b"" or r.startswith(b"HTTP/1.1 431 ")
    # many headers
    r = raw(p, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) +
            b"\r\n")
    assert r.startswith(b"HTTP/1.1 431 ")
    # pipelined keep-alive requests are answered in order
    r = raw(p, b"GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n" * 3 +
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.count(b"HTTP/1.1 200 OK") == 4

    # slowloris alone: trickling a byte at a time does not extend the 10 s head limit
    slow = socket.create_connection(("127.0.0.1", p))
    slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    slow.settimeout(0.5)
    t0 = time.time()
    got = b""
    while time.time() - t0 < 30:
        try:
            slow.sendall(b"x")
            got += slow.recv(4096)
            if got.endswith(b"\r\n\r\n") or not got:
                break
        except socket.timeout:
            if int((time.time() - t0) * 2) % 6 == 0:
                scrape(p)  # the listener serves others meanwhile
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
    elapsed = time.time() - t0
    slow.close()
    assert 8 < elapsed < 15, "trickling client cut off after %.1f s" % elapsed
    assert got.startswith(b"HTTP/1.1 408 "), got

    # slowloris with a crowd: one client trickles, many more sit idle
    slow = socket.create_connection(("127.0.0.1", p))
    slow.sendall(b"GET / HTTP/1.1\r\n")
    idle = []
    for _ in range(100):
        try:
            idle.append(socket.create_connection(("127.0.0.1", p), timeout=5))
        except OSError:
            break
    assert len(idle) >= 64
    t0 = time.time()
    got = b""
    slow.settimeout(1.5)
    while time.time() - t0 < 30:
        # the daemon keeps working meanwhile: scrapes succeed and bans happen
        scrape(p)
        try:
            slow.sendall(b"X")
            chunk = slow.recv(4096)
            if not chunk:
                break
            got += chunk
            if b"\r\n\r\n" in got:
                break
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
    elapsed = time.time() - t0
    assert elapsed < 25, "a trickling client was not cut off"
    assert got == b"" or got.startswith(b"HTTP/1.1 408 ")
    slow.close()
    for s in idle:
        s.close()
    d.append(syslog_line(ATTACKER), syslog_line(ATTACKER))
    poll(lambda: d.status()["currently_banned"] == 1, what="ban after the attack")
    m = scrape(p)
    assert sample(m, "mxjail_http_rejected_total") >= 8
    assert sample(m, "mxjail_http_clients") <= 2
    assert d.alive()
