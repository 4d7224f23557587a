"""mxjail probe against small fake servers that misbehave: garbage instead of
SMTP, a server that stalls, one that drops the connection, a 1 MB line, an
endless multiline reply, a byte-trickling tarpit, a TLS handshake that never
finishes, and IMAP/POP3 ports that answer nonsense. Each run must end with a
clear error (exit 2) and never hang; the subprocess timeout is only a hang
guard. Also fake servers for the intrusive checks: relay variants never reach
DATA, the SMTP smuggling check against a server that ends DATA at a bare LF
and one that does not (one message either way, to the target's own
postmaster), and the connection-flood check against a server with and
without a per-client connection limit. Needs no root: the servers listen on
127.0.0.1 ports chosen by the OS."""
import os
import socket
import subprocess
import threading
import time

import pytest

BIN = os.environ.get("MXJAIL_BIN")
pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set")


class FakeServer:
    """Accepts connections on 127.0.0.1 and runs handler(conn) in a thread each."""

    def __init__(self, handler):
        while True:
            # ports ending in 465/993/995 mean implicit TLS to the probe, and
            # one ending in 587 a client port (judged more strictly than an MX)
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            if self.sock.getsockname()[1] % 1000 not in (465, 587, 993, 995):
                break
            self.sock.close()
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.stop = threading.Event()
        self.conns = []
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.handler(c, self.stop)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def probe(*args, guard=120):
    t0 = time.monotonic()
    p = subprocess.run([BIN, "probe", *args, "--timeout", "1", "--delay", "0"],
                       capture_output=True, text=True, timeout=guard)
    return p, time.monotonic() - t0


def run_against(handler, *extra, port_opt="--smtp"):
    srv = FakeServer(handler)
    try:
        return probe("127.0.0.1", port_opt, str(srv.port), *extra)
    finally:
        srv.close()


def garbage(c, stop):
    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    stop.wait(5)


def stall(c, stop):
    stop.wait(30)


def drop(c, stop):
    c.close()


def drop_mid_reply(c, stop):
    c.sendall(b"220-mx.example.test\r\n220-more")


def megabyte(c, stop):
    try:
        c.sendall(b"220 " + b"A" * (1024 * 1024))
    except OSError:
        pass
    stop.wait(5)


def endless(c, stop):
    try:
        while not stop.is_set():
            c.sendall(b"220-and more\r\n" * 100)
    except OSError:
        pass


def trickle(c, stop):
    try:
        c.sendall(b"220")
        while not stop.is_set():
            c.sendall(b" x")
            time.sleep(0.3)
    except OSError:
        pass


def nul_bytes(c, stop):
    c.sendall(b"220 mx\x00.example.test\r\n")
    stop.wait(5)


def tls_stall(c, stop):
    """Greets, offers STARTTLS, agrees to it, then never speaks TLS."""
    c.sendall(b"220 mx.example.test ESMTP\r\n")
    buf = b""
    while not stop.is_set():
        d = c.recv(4096)
        if not d:
            return
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO"):
                c.sendall(b"250-mx.example.test\r\n250 STARTTLS\r\n")
            elif cmd == b"STARTTLS":
                c.sendall(b"220 go ahead\r\n")
                stop.wait(30)
                return
            elif cmd == b"QUIT":
                c.sendall(b"221 bye\r\n")
                return
            else:
                c.sendall(b"502 5.5.2 no\r\n")


@pytest.mark.parametrize("handler,message", [
    (garbage, "not an SMTP reply line"),
    (stall, "server stalled"),
    (drop, "closed the connection"),
    (drop_mid_reply, "closed the connection in the middle of a reply"),
    (megabyte, "reply line longer than 4096 bytes"),
    (endless, "multiline reply longer than"),
    (trickle, "deadline"),
    (nul_bytes, "NUL byte"),
])
def test_smtp_misbehaving(handler, message):
    p, took = run_against(handler)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr, p.stderr
    assert "error:" in p.stdout
    print(f"{handler.__name__}: exit 2 after {took:.1f} s: {p.stderr.strip()}")


def test_smtp_misbehaving_json():
    p, _ = run_against(garbage, "--json")
    import json
    doc = json.loads(p.stdout)
    assert p.returncode == 2
    assert any("not an SMTP reply line" in e for e in doc["errors"])
    assert doc["address"] == "127.0.0.1"


def test_tls_handshake_stall_is_bounded():
    p, took = run_against(tls_stall)
    # the dialogue worked: STARTTLS offered, every TLS check reports its timeout
    assert "smtp.starttls" in p.stdout
    assert p.returncode == 2, p.stdout + p.stderr
    assert "TLS handshake" in p.stderr or "TLS handshake" in p.stdout, p.stdout + p.stderr
    print(f"tls_stall: exit {p.returncode} after {took:.1f} s")


@pytest.mark.parametrize("opt", ["--imap", "--pop3"])
@pytest.mark.parametrize("handler,message", [
    (garbage, "not a"),
    (stall, "server stalled"),
    (drop, "closed the connection"),
    (megabyte, "line longer than 8192 bytes"),
])
def test_mailbox_misbehaving(opt, handler, message):
    p, _ = run_against(handler, port_opt=opt)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr, p.stderr


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    p, _ = probe(f"127.0.0.1:{port}")
    assert p.returncode == 2
    assert "Connection refused" in p.stderr


def test_usage_errors():
    for args in (["--smtp", "x"], ["host", "--timeout", "0"], ["host", "--bogus"], [],
                 ["host", "--smtp", "70000"]):
        p = subprocess.run([BIN, "probe", *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, args
    p = subprocess.run([BIN, "probe", "no-such-host.invalid"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2
    assert "cannot resolve" in p.stderr
    p = subprocess.run([BIN, "probe", "127.0.0.1:1", "--source", "::1"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert "source address" in p.stderr


class Recorder:
    """An SMTP server that accepts everything and records each session's commands."""

    def __init__(self):
        self.sessions = []

    def __call__(self, c, stop):
        cmds = []
        self.sessions.append(cmds)
        c.sendall(b"220 mx.fake.test ESMTP\r\n")
        f = c.makefile("rb")
        for line in f:
            cmd = line.rstrip(b"\r\n").decode("latin-1")
            cmds.append(cmd)
            u = cmd.upper()
            if u.startswith("EHLO"):
                c.sendall(b"250-mx.fake.test\r\n250-VRFY\r\n250 PIPELINING\r\n")
            elif u == "QUIT":
                c.sendall(b"221 bye\r\n")
                return
            elif u.startswith("DATA"):
                c.sendall(b"354 go\r\n")
            else:
                c.sendall(b"250 2.0.0 ok\r\n")


def test_relay_variants_fresh_connection_each_never_data():
    rec = Recorder()
    p, _ = run_against(rec, "--intrusive")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "smtp.relay.open" in p.stdout
    # DATA only in the smuggling check's one session, to the target's postmaster
    data = [s for s in rec.sessions if any(c.upper().startswith("DATA") for c in s)]
    assert len(data) == 1, data
    assert "RCPT TO:<postmaster@mx.fake.test>" in data[0], data[0]
    relay = [s for s in rec.sessions if any("relaytest" in c for c in s)]
    assert len(relay) == 14
    for s in relay:
        assert sum(c.upper().startswith("RCPT") for c in s) == 1, s
        assert not any(c.upper().startswith("DATA") for c in s), s
        assert s[-1] == "QUIT"
    # without --intrusive: no relay or enumeration traffic at all
    rec2 = Recorder()
    p, _ = run_against(rec2)
    every = [c for s in rec2.sessions for c in s]
    assert not any("relaytest" in c or c.upper().startswith(("VRFY", "EXPN", "AUTH", "DATA"))
                   for c in every), every
    assert len(rec2.sessions) < 30  # no connection flood either


def _smtp_until_starttls(c):
    """Greets, answers EHLO with STARTTLS; returns the bytes received after
    (and together with) the STARTTLS line, or None when the client quit."""
    c.sendall(b"220 mx.fake.test ESMTP\r\n")
    buf = b""
    while True:
        d = c.recv(4096)
        if not d:
            return None
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            u = line.strip().upper()
            if u.startswith(b"EHLO"):
                c.sendall(b"250-mx.fake.test\r\n250 STARTTLS\r\n")
            elif u == b"STARTTLS":
                c.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                return buf
            elif u == b"QUIT":
                c.sendall(b"221 bye\r\n")
                return None
            else:
                c.sendall(b"250 ok\r\n")


def ancient_ssl(c, stop):
    """Answers SSLv2 and SSLv3-only hellos like a server that speaks them."""
    rest = _smtp_until_starttls(c)
    if rest is None:
        return
    hello = rest
    while len(hello) < 11:
        d = c.recv(4096)
        if not d:
            return
        hello += d
    if hello[0] & 0x80 and hello[2] == 1:
        c.sendall(bytes([0x80, 0x20, 4, 0, 1, 0, 2]) + b"\0" * 27)   # SSLv2 SERVER-HELLO
    elif hello[0] == 0x16 and hello[1:3] == b"\x03\x00" and hello[9:11] == b"\x03\x00":
        c.sendall(b"\x16\x03\x00\x00\x26\x02\x00\x00\x22\x03\x00" + b"\x11" * 32)


def test_sslv2_sslv3_detected():
    p, _ = run_against(ancient_ssl)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "tls.sslv2" in p.stdout and "tls.sslv3" in p.stdout, p.stdout


def _make_cert(tmp_path):
    key, crt = str(tmp_path / "k.pem"), str(tmp_path / "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", key, "-out", crt, "-subj", "/CN=mx.fake.test"],
                   check=True, capture_output=True)
    return crt, key


def test_starttls_injection_detected(tmp_path):
    import ssl
    if not shutil_which("openssl"):
        pytest.skip("needs the openssl command")
    crt, key = _make_cert(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)

    def injectable(c, stop):
        rest = _smtp_until_starttls(c)
        if rest is None:
            return
        pending = rest  # plaintext that arrived with STARTTLS: a broken server keeps it
        t = ctx.wrap_socket(c, server_side=True)
        for line in pending.split(b"\r\n"):
            if line.strip():
                t.sendall(b"250 2.0.0 Ok (" + line.strip() + b")\r\n")
        t.settimeout(3)
        try:
            while t.recv(4096):
                t.sendall(b"250 ok\r\n")
        except OSError:
            pass

    p, _ = run_against(injectable)
    assert "smtp.starttls.injection" in p.stdout, p.stdout + p.stderr
    # the certificate is checked too: self-signed, and expiring within 14 days
    assert "tls.cert.untrusted" in p.stdout
    assert "tls.cert.expiring" in p.stdout


def shutil_which(name):
    import shutil
    return shutil.which(name)


def test_expired_small_key_certificate_on_implicit_tls(tmp_path):
    """An smtps port whose certificate expired and has a 1024-bit RSA key."""
    import datetime
    import ssl
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError:
        pytest.skip("needs python3-cryptography to make an expired certificate")
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.fake.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now - datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    kp, cp = tmp_path / "k.pem", tmp_path / "c.pem"
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption()))
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.load_cert_chain(str(cp), str(kp))

    def smtps(c, stop):
        t = ctx.wrap_socket(c, server_side=True)
        t.sendall(b"220 mx.fake.test ESMTP\r\n")
        f = t.makefile("rb")
        for line in f:
            u = line.strip().upper()
            if u.startswith(b"EHLO"):
                t.sendall(b"250-mx.fake.test\r\n250 AUTH PLAIN\r\n")
            elif u == b"QUIT":
                t.sendall(b"221 bye\r\n")
                return
            else:
                t.sendall(b"554 5.7.1 no\r\n")

    srv = FakeServer(smtps)
    try:
        p, _ = probe("127.0.0.1", "--smtp", "%ds" % srv.port, "--json")
    finally:
        srv.close()
    import json
    rep = json.loads(p.stdout)
    got = {f["id"]: f for f in rep["findings"]}
    assert got["tls.cert.expired"]["severity"] == "high"  # a client port: mail programs refuse it
    assert "days ago" in got["tls.cert.expired"]["evidence"]
    assert "RSA 1024 bits" in got["tls.cert.weakkey"]["evidence"]
    assert "tls.cert.untrusted" in got and "tls.cert.name" in got
    assert "smtp.auth.cleartext" not in got  # AUTH inside implicit TLS is fine
    assert p.returncode == 1


class DataServer:
    """An SMTP server with a real DATA phase that accepts mail for its own
    domain only. vulnerable=True reads lines up to LF (as Postfix before
    smtpd_forbid_bare_newline does), so a bare "<LF>.<LF>" ends the data;
    otherwise only <CR><LF>.<CR><LF> does."""

    def __init__(self, vulnerable):
        self.vulnerable = vulnerable
        self.sessions = []
        self.messages = []  # (recipients, body)

    def __call__(self, c, stop):
        import re
        cmds, rcpts, data, buf = [], [], False, b""
        self.sessions.append(cmds)
        c.settimeout(10)
        c.sendall(b"220 mx.fake.test ESMTP\r\n")
        end = re.compile(rb"(?:^|\n)\.\r?\n" if self.vulnerable else rb"(?:^|\r\n)\.\r\n")
        sep = b"\n" if self.vulnerable else b"\r\n"
        while not stop.is_set():
            if data:
                m = end.search(buf)
                if m:
                    self.messages.append((rcpts, buf[:m.start()]))
                    buf, data, rcpts = buf[m.end():], False, []
                    c.sendall(b"250 2.0.0 Ok: queued as F%d\r\n" % len(self.messages))
                    continue
            elif sep in buf:
                line, buf = buf.split(sep, 1)
                cmd = line.rstrip(b"\r").decode("latin-1")
                cmds.append(cmd)
                u = cmd.upper()
                if u.startswith("EHLO"):
                    c.sendall(b"250-mx.fake.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                elif u.startswith("RCPT"):
                    if u.endswith("@MX.FAKE.TEST>") and "RELAYTEST" not in u:
                        rcpts.append(cmd)
                        c.sendall(b"250 2.1.5 Ok\r\n")
                    else:
                        c.sendall(b"554 5.7.1 Relay access denied\r\n")
                elif u == "DATA":
                    data = bool(rcpts)
                    c.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n" if data
                              else b"554 5.5.1 no valid recipients\r\n")
                elif u == "QUIT":
                    c.sendall(b"221 2.0.0 Bye\r\n")
                    return
                elif u.startswith(("VRFY", "EXPN")):
                    c.sendall(b"502 5.5.1 no\r\n")
                else:
                    c.sendall(b"250 2.0.0 Ok\r\n")
                continue
            d = c.recv(4096)
            if not d:
                return
            buf += d


def _report(p):
    import json
    return {f["id"]: f for f in json.loads(p.stdout)["findings"]}


def test_smuggling_proved_on_bare_lf_server():
    srv = DataServer(vulnerable=True)
    p, _ = run_against(srv, "--intrusive", "--flood", "0", "--user", "alice", "--json")
    got = _report(p)
    f = got["smtp.smuggling"]
    assert f["severity"] == "high", f
    assert "<LF>.<LF> and NOOP -> 250" in f["evidence"], f
    assert "smuggled NOOP -> 250" in f["evidence"], f
    assert "smtpd_forbid_bare_newline = normalize" in f["fix"]
    assert p.returncode == 1, p.stdout + p.stderr
    # one message, to the account given (at the target's own domain), from <>
    assert len(srv.messages) == 1, srv.messages
    assert srv.messages[0][0] == ["RCPT TO:<alice@mx.fake.test>"]
    assert b"X-Mxjail-Probe: smtp-smuggling" in srv.messages[0][1]
    data = [s for s in srv.sessions if "DATA" in s]
    assert len(data) == 1
    s = data[0]
    assert "MAIL FROM:<>" in s
    assert s[s.index("DATA") + 1:] == ["NOOP", "QUIT"], s  # the smuggled command, then QUIT


def test_smuggling_clean_on_strict_server():
    srv = DataServer(vulnerable=False)
    p, _ = run_against(srv, "--intrusive", "--flood", "0", "--json")
    got = _report(p)
    assert "smtp.smuggling" not in got
    f = got["smtp.smuggling.guarded"]
    assert f["severity"] == "info"
    assert "<CR><LF>.<CR><LF> -> 250 2.0.0 Ok: queued as F1" in f["evidence"], f
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(srv.messages) == 1
    rcpts, body = srv.messages[0]
    assert rcpts == ["RCPT TO:<postmaster@mx.fake.test>"]
    # every bare end and every NOOP stayed inside the one message
    assert body.count(b"\nNOOP") == 3 and b"part 3 of the test" in body, body
    data = [s for s in srv.sessions if "DATA" in s]
    assert len(data) == 1 and data[0][data[0].index("DATA") + 1:] == ["QUIT"], data


def with_connection_limit(inner, limit):
    """Greets at most `limit` simultaneous connections, then answers 421 like anvil."""
    lock = threading.Lock()
    state = {"active": 0, "refused": 0}

    def handler(c, stop):
        with lock:
            state["active"] += 1
            n = state["active"]
        try:
            if n > limit:
                with lock:
                    state["refused"] += 1
                c.sendall(b"421 4.7.0 mx.fake.test Error: too many connections from "
                          b"127.0.0.1\r\n")
                return
            inner(c, stop)
        finally:
            with lock:
                state["active"] -= 1
    return handler, state


def test_connection_flood_limited_and_unlimited():
    handler, state = with_connection_limit(DataServer(vulnerable=False), 4)
    p, _ = run_against(handler, "--intrusive", "--flood", "12", "--json")
    got = _report(p)
    f = got["smtp.flood.limited"]
    assert f["severity"] == "info"
    assert "4 connections from this host open and greeted; connection 5: 421 4.7.0" in \
        f["evidence"], f
    assert "smtp.flood.unlimited" not in got
    assert state["refused"] == 1  # stops at the first refusal
    assert p.returncode == 0, p.stdout + p.stderr

    srv = DataServer(vulnerable=False)
    p, _ = run_against(srv, "--intrusive", "--flood", "6", "--json")
    got = _report(p)
    f = got["smtp.flood.unlimited"]
    assert f["severity"] == "low"  # an MX port; medium on 587/465
    assert "6 connections from this host open at once" in f["evidence"], f
    assert "smtpd_client_connection_count_limit" in f["fix"]
    flood = [s for s in srv.sessions if s == ["QUIT"]]
    assert len(flood) == 6, srv.sessions  # all closed with QUIT at the end


def test_flood_option_checked():
    for v in ("x", "201", "-1"):
        p = subprocess.run([BIN, "probe", "127.0.0.1", "--flood", v], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 2 and "--flood" in p.stderr, (v, p.stderr)


def test_words_in_smtp_commands_must_be_plain():
    srv = DataServer(vulnerable=True)
    for opt in ("--user", "--domain", "--helo", "--relay-to"):
        p, _ = run_against(srv, "--intrusive", "--flood", "0", opt, "a>\r\nRCPT TO:<x@y.test")
        assert p.returncode == 2, p.stdout + p.stderr
        assert "must be one word" in p.stderr
    assert srv.messages == [] and srv.sessions == []
