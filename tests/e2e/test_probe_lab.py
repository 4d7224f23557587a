"""test_probe_lab - `mxjail probe` against the mail range (tests/tools/mail_targets.sh,
LAB = a fresh /tmp/mxp-probe-lab-* or $MXJAIL_PROBE_LAB, a directory of its own so other labs (the audit test, a second build) are
never touched).

The probe runs inside the lab's network namespace (`mail_targets.sh run ...`):
  - weak Postfix (2526, 2527) from 127.0.0.2: the open relay, the VRFY oracle, the
    version banner, AUTH before TLS, a made-up account accepted, TLSv1 and the
    1024-bit DH group, HELO and pipelining not enforced, SMTP smuggling (a bare
    <LF>.<LF> ends DATA and the smuggled NOOP is answered), no per-client
    connection limit below 30 (its count limit is Postfix's default 50); exit 1;
  - weak Dovecot (IMAP 3143/3993, POP3 3110) from 127.0.0.2: plaintext LOGIN before
    TLS, any password logs in, POP3 without TLS, TLSv1 and 1024-bit DH;
  - hardened Postfix (2525/2587/2465) and Dovecot (2143/2993/2110/2995) from
    127.0.0.3 (127.0.0.2 is in the hardened Postfix's mynetworks, 127.0.0.1 is the
    server's own address) with the lab certificate as trust anchor: nothing medium
    or high, relaying refused ("Relay access denied" proven), DH 2048, the test
    message ends only at <CR><LF>.<CR><LF> (smtpd_forbid_bare_newline =
    normalize), the 11th simultaneous connection gets anvil's 421, exit 0;
  - from the server's own address the probe warns that Dovecot trusts it;
  - without --intrusive no relay, enumeration, login, smuggling or flood test is made.
All mail the range accepts is discarded, so the smuggling test message goes nowhere.
Needs root and the packages of the script; skips otherwise. `down` runs in a finally.
"""
import atexit
import json
import os
import shutil
import subprocess

import tempfile

import pytest

BIN = os.environ.get("MXJAIL_BIN")
SRC = os.environ.get("MXJAIL_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(SRC, "tests", "tools", "mail_targets.sh")
# a directory of its own per run, so that concurrent runs (two builds, the audit and
# probe tests) never share a lab (each lab runs in its own namespaces)
LAB = os.environ.get("MXJAIL_PROBE_LAB")
if not LAB:
    LAB = tempfile.mkdtemp(prefix="mxp-probe-lab-", dir="/tmp")
    atexit.register(shutil.rmtree, LAB, True)

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set")


def _missing_lab_tools():
    missing = [b for b in ("postfix", "postconf", "dovecot", "doveconf", "swaks", "openssl",
                           "nsenter", "ip", "dnsmasq", "unshare")
               if not (shutil.which(b) or os.path.exists("/usr/sbin/" + b))]
    for pkg in ("dovecot-imapd", "dovecot-pop3d"):
        if subprocess.run(["dpkg", "-s", pkg], capture_output=True).returncode != 0:
            missing.append(pkg)
    return missing


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root (the mail range runs in network namespaces)")
    missing = _missing_lab_tools()
    if missing:
        pytest.skip("mail range needs: " + " ".join(missing))
    env = dict(os.environ, LAB=LAB)
    up = subprocess.run([SCRIPT, "up"], capture_output=True, text=True, env=env, timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield LAB
    finally:
        subprocess.run([SCRIPT, "down"], capture_output=True, text=True, env=env, timeout=120)


def probe(*args):
    env = dict(os.environ, LAB=LAB)
    p = subprocess.run([SCRIPT, "run", BIN, "probe", "127.0.0.1", *args, "--json",
                        "--timeout", "30"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.stdout, p.stderr
    return p.returncode, json.loads(p.stdout)


def ids(rep, service=None, sevs=None):
    return {f["id"] for f in rep["findings"]
            if (service is None or f["service"] == service)
            and (sevs is None or f["severity"] in sevs)}


def finding(rep, fid, service):
    for f in rep["findings"]:
        if f["id"] == fid and f["service"] == service:
            return f
    raise AssertionError("no %s on %s in %s" % (fid, service,
                                                sorted((f["id"], f["service"]) for f in
                                                       rep["findings"])))


def test_weak_postfix(lab):
    rc, rep = probe("--smtp", "2526,2527", "--source", "127.0.0.2", "--intrusive")
    assert rc == 1
    assert rep["errors"] == []
    s = "smtp/2526"
    relay = finding(rep, "smtp.relay.open", s)
    assert relay["severity"] == "high"
    assert "RCPT TO:<relaytest@example.com> -> 250" in relay["evidence"]
    assert "%-hack" not in relay["evidence"]  # evidence is the dialogue, not our labels
    assert finding(rep, "smtp.auth.cleartext", s)["severity"] == "high"
    anyp = finding(rep, "smtp.auth.anypassword", s)
    assert anyp["severity"] == "high" and "235" in anyp["evidence"]
    vrfy = finding(rep, "smtp.vrfy.enum", s)
    assert "252" in vrfy["evidence"] and "550" in vrfy["evidence"]
    assert "Postfix 3." in finding(rep, "smtp.banner.disclosure", s)["title"]
    assert "TLSv1 " in finding(rep, "tls.versions", s)["evidence"].split(";")[0] + " "
    assert finding(rep, "tls.old", s)["severity"] == "low"  # port 25 style: a trade-off
    dh = finding(rep, "tls.dh.small", s)
    assert "DH 1024 bits" in dh["evidence"]
    for fid in ("smtp.helo.none", "smtp.helo.nonfqdn", "smtp.helo.invalid", "smtp.pipelining",
                "smtp.rcpt.enum"):
        finding(rep, fid, s)
    assert "smtp.starttls.injection" not in ids(rep, s)
    for s in ("smtp/2526", "smtp/2527"):
        smug = finding(rep, "smtp.smuggling", s)
        assert smug["severity"] == "high"
        assert "<LF>.<LF> and NOOP -> 250 2.0.0 Ok: queued as" in smug["evidence"], smug
        assert "the smuggled NOOP -> 250" in smug["evidence"], smug
        assert "smtpd_forbid_bare_newline = normalize" in smug["fix"]
        flood = finding(rep, "smtp.flood.unlimited", s)
        assert flood["severity"] == "low"  # port 25 style
        assert "30 connections from 127.0.0.2 open at once" in flood["evidence"]
    s = "smtp/2527"
    finding(rep, "smtp.starttls.missing", s)
    finding(rep, "smtp.auth.cleartext", s)
    finding(rep, "smtp.relay.open", s)
    assert "tls.versions" not in ids(rep, s)


def test_weak_dovecot(lab):
    rc, rep = probe("--imap", "3143,3993", "--pop3", "3110", "--source", "127.0.0.2",
                    "--intrusive", "--ca", LAB + "/pki/cert.pem")
    assert rc == 1
    assert rep["errors"] == []
    assert rep["warnings"] == []
    finding(rep, "imap.plaintext.login", "imap/3143")
    assert "OK" in finding(rep, "imap.anypassword", "imap/3143")["evidence"]
    finding(rep, "imap.anypassword", "imap/3993")
    for svc in ("imap/3143", "imap/3993"):
        assert finding(rep, "tls.old", svc)["severity"] == "medium"  # client port: RFC 8996
        assert "DH 1024 bits" in finding(rep, "tls.dh.small", svc)["evidence"]
    finding(rep, "pop3.tls.missing", "pop3/3110")
    finding(rep, "pop3.plaintext.login", "pop3/3110")
    assert "+OK" in finding(rep, "pop3.anypassword", "pop3/3110")["evidence"]
    assert "Dovecot" in finding(rep, "imap.banner.disclosure", "imap/3143")["title"]


def test_hardened_clean(lab):
    # Dovecot doubles its delay after each failed login from an address (auth
    # penalty), so the login attempts go to two of its four ports only.
    rc, rep = probe("--smtp", "2525,2587,2465", "--imap", "2993", "--pop3", "2110",
                    "--source", "127.0.0.3", "--intrusive", "--ca", LAB + "/pki/cert.pem")
    rc2, rep2 = probe("--imap", "2143", "--pop3", "2995", "--source", "127.0.0.3",
                      "--ca", LAB + "/pki/cert.pem")
    rep["findings"] += rep2["findings"]
    rep["errors"] += rep2["errors"]
    rep["warnings"] += rep2["warnings"]
    rc = max(rc, rc2)
    bad = [(f["id"], f["service"], f["evidence"]) for f in rep["findings"]
           if f["severity"] in ("high", "medium")]
    assert bad == []
    assert rep["errors"] == []
    assert rep["warnings"] == []
    assert rc == 0
    assert "Relay access denied" in finding(rep, "smtp.relay.refused", "smtp/2525")["evidence"]
    smug = finding(rep, "smtp.smuggling.guarded", "smtp/2525")["evidence"]
    assert "<CR><LF>.<CR><LF> -> 250 2.0.0 Ok: queued as" in smug, smug
    for svc in ("smtp/2587", "smtp/2465"):  # no message without authentication there
        finding(rep, "smtp.smuggling.untested", svc)
    for svc in ("smtp/2525", "smtp/2587", "smtp/2465"):
        ev = finding(rep, "smtp.flood.limited", svc)["evidence"]
        assert "connection 11: 421 4.7.0" in ev and "too many connections" in ev, (svc, ev)
    assert not {"smtp.smuggling", "smtp.flood.unlimited"} & ids(rep)
    for svc in ("smtp/2525", "smtp/2587", "smtp/2465", "imap/2143", "imap/2993", "pop3/2110",
                "pop3/2995"):
        v = finding(rep, "tls.versions", svc)["evidence"]
        assert v.startswith("accepted: TLSv1.2 TLSv1.3;"), (svc, v)
        assert "DH 2048 bits" in finding(rep, "tls.dhe", svc)["evidence"]
        finding(rep, "tls.session", svc)
    assert "smtp.banner.disclosure" not in ids(rep)
    assert "smtp.vrfy.enum" not in ids(rep)
    assert not ids(rep, sevs=("low",)) - {"tls.cipher.weak"}, ids(rep, sevs=("low",))


def test_untrusted_certificate_without_ca(lab):
    rc, rep = probe("--imap", "2993", "--source", "127.0.0.3")
    f = finding(rep, "tls.cert.untrusted", "imap/2993")
    assert f["severity"] == "medium" and "self-signed" in f["evidence"]
    rc, rep = probe("--imap", "2993", "--source", "127.0.0.3", "--name", "mx.other.test",
                    "--ca", LAB + "/pki/cert.pem")
    assert "mx.other.test" in finding(rep, "tls.cert.name", "imap/2993")["evidence"]


def test_same_ip_warning(lab):
    rc, rep = probe("--imap", "2143", "--ca", LAB + "/pki/cert.pem")
    assert any("own address" in w and "Dovecot" in w for w in rep["warnings"]), rep["warnings"]


def test_not_intrusive_by_default(lab):
    rc, rep = probe("--smtp", "2526", "--source", "127.0.0.2")
    got = ids(rep, "smtp/2526")
    assert "smtp.auth.cleartext" in got  # seen in EHLO, no login attempted
    for fid in ("smtp.relay.open", "smtp.relay.refused", "smtp.vrfy.enum", "smtp.rcpt.enum",
                "smtp.auth.anypassword", "smtp.smuggling", "smtp.smuggling.guarded",
                "smtp.flood.unlimited", "smtp.flood.limited"):
        assert fid not in got
    assert rc == 1
