"""test_audit - `mxjail audit` against real Postfix 3.7 / Dovecot 2.3 configurations.

The lab: tests/tools/mail_targets.sh (LAB = a fresh /tmp/mxa-audit-lab-*, a directory of its own so
that the probe tests' lab is never touched) writes and starts a hardened and a weak
Postfix and Dovecot in a private network namespace. audit reads them the way a user
would: `postconf -c DIR -n/-d/-P/-M` and `doveconf -c FILE -n` (run by mxjail).
  - every weakness the weak targets were built with is flagged (listed below),
  - nothing high on the hardened ones, exit status 0 there and 1 on the weak ones,
  - with -c, mxjail's own jails are checked against where Postfix really logs.
`down` runs in a finally. The lab part needs root and the packages the script uses;
it skips otherwise. The saved-output part (tests/fixtures/audit/) needs neither.
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
FIX = os.path.join(SRC, "tests", "fixtures", "audit")
SCRIPT = os.path.join(SRC, "tests", "tools", "mail_targets.sh")
# a directory of its own per run, so that concurrent runs (two builds, the audit and
# probe tests) never share a lab (each lab runs in its own namespaces)
LAB = tempfile.mkdtemp(prefix="mxa-audit-lab-", dir="/tmp")
atexit.register(shutil.rmtree, LAB, True)

needs_bin = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set")


def _missing_lab_tools():
    missing = [b for b in ("postfix", "postconf", "dovecot", "doveconf", "swaks", "openssl",
                           "nsenter", "ip", "dnsmasq", "unshare")
               if not (shutil.which(b) or os.path.exists("/usr/sbin/" + b))]
    for pkg in ("dovecot-imapd", "dovecot-pop3d"):
        if subprocess.run(["dpkg", "-s", pkg], capture_output=True).returncode != 0:
            missing.append(pkg)
    return missing


# The weaknesses of the weak targets (see mail_targets.sh) and the check that must
# name each one, with a word of the service it applies to where that matters.
WEAK_POSTFIX = [
    ("PF-RELAY-MYNETWORKS", "main.cf"),      # open relay through mynetworks = 0.0.0.0/0
    ("PF-ENUM-VRFY", "2526"),                # VRFY on
    ("PF-BANNER-VERSION", "2526"),           # $mail_name $mail_version in the banner
    ("PF-TLS-PROTOCOLS", "2526"),            # TLSv1 allowed
    ("PF-TLS-DH", "main.cf"),                # 1024-bit DH
    ("PF-AUTH-CLEARTEXT", "2526"),           # AUTH before STARTTLS
    ("PF-AUTH-CLEARTEXT", "2527"),           # ... and on the port without TLS at all
    ("PF-TLS-OFF", "2527"),                  # no STARTTLS on 2527
    ("PF-SMUGGLING", "2526"),                # smtpd_forbid_bare_newline = no
    ("PF-HELO-REQUIRED", "2526"),
    ("PF-LIMIT-CONN-RATE", "2526"),
]
WEAK_DOVECOT = [
    ("DC-PASSDB-NOPASSWORD", "passdb"),      # any password logs in
    ("DC-AUTH-PLAINTEXT", "dovecot.conf"),   # cleartext auth
    ("DC-SSL-OFF", "pop3"),                  # POP3 without TLS
    ("DC-SSL-MIN-PROTOCOL", "dovecot.conf"), # TLSv1
    ("DC-SSL-DH", "dovecot.conf"),           # 1024-bit DH
    ("DC-SSL-CIPHERS", "dovecot.conf"),      # ALL:@SECLEVEL=0
]


def audit(*args):
    p = subprocess.run([BIN, "audit", *args], capture_output=True, text=True, timeout=120)
    return p


def audit_json(*args):
    p = audit(*args, "--json")
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout)


def assert_flagged(report, expected):
    missing = []
    for fid, where in expected:
        if not any(f["id"] == fid and where in f["service"] for f in report["findings"]):
            missing.append((fid, where))
    assert not missing, "not flagged: %r\nfindings: %s" % (
        missing, json.dumps([(f["id"], f["service"]) for f in report["findings"]], indent=1))


def write_jails(dirname, text):
    os.makedirs(dirname, exist_ok=True)
    with open(os.path.join(dirname, "jail.local"), "w") as f:
        f.write(text)


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


@needs_bin
def test_weak_lab_every_weakness_flagged(lab):
    rc, rep = audit_json("--postfix", lab + "/pf-weak/etc", "--dovecot",
                         lab + "/dc-weak/dovecot.conf")
    assert rc == 1
    assert_flagged(rep, WEAK_POSTFIX + WEAK_DOVECOT)
    assert rep["high"] >= 6
    # live postconf -d was read: no built-in defaults note
    assert not any("built-in" in n for n in rep["notes"])


@needs_bin
def test_hardened_lab_nothing_high(lab):
    rc, rep = audit_json("--postfix", lab + "/pf-hard/etc", "--dovecot",
                         lab + "/dc-hard/dovecot.conf")
    assert rep["high"] == 0, json.dumps(rep, indent=1)
    assert rc == 0
    # the text form: table and score
    p = audit("--postfix", lab + "/pf-hard/etc", "--dovecot", lab + "/dc-hard/dovecot.conf")
    assert p.returncode == 0
    assert "score: " in p.stdout


@needs_bin
def test_jails_against_the_lab(lab, tmp_path):
    # weak: the jail reads a file Postfix does not write, no SASL jail, no Dovecot jail
    weak = str(tmp_path / "weak")
    write_jails(weak, "[postfix]\nenabled = true\nfilter = postfix\n"
                      "logpath = %s/pf-weak/no-such.log\n" % lab)
    rc, rep = audit_json("--postfix", lab + "/pf-weak/etc", "--dovecot",
                         lab + "/dc-weak/dovecot.conf", "-c", weak)
    assert_flagged(rep, [("MX-POSTFIX-LOGPATH-MISMATCH", "jail [postfix]"),
                         ("MX-NO-SASL-JAIL", weak), ("MX-NO-DOVECOT-JAIL", weak)])
    # hard: jails on the files Postfix and Dovecot write, SASL failures included
    hard = str(tmp_path / "hard")
    write_jails(hard, "[postfix]\nenabled = true\nfilter = postfix[mode=aggressive]\n"
                      "logpath = %s/pf-hard/maillog\n"
                      "[dovecot]\nenabled = true\nfilter = dovecot\n"
                      "logpath = %s/dc-hard/dovecot.log\n" % (lab, lab))
    rc, rep = audit_json("--postfix", lab + "/pf-hard/etc", "--dovecot",
                         lab + "/dc-hard/dovecot.conf", "-c", hard)
    assert rep["high"] == 0 and rc == 0, json.dumps(rep, indent=1)
    assert not [f for f in rep["findings"] if f["id"].startswith("MX-")], json.dumps(rep, indent=1)


def saved(which):
    return ["--postconf", os.path.join(FIX, "pf-%s.n" % which),
            "--postconf-d", os.path.join(FIX, "postconf-d.txt"),
            "--postconf-P", os.path.join(FIX, "pf-%s.P" % which),
            "--postconf-M", os.path.join(FIX, "pf-%s.M" % which),
            "--doveconf", os.path.join(FIX, "dc-%s.n" % which)]


@needs_bin
def test_saved_outputs():
    rc, rep = audit_json(*saved("weak"))
    assert rc == 1
    # the DH files of the lab are not in the fixtures: their size is the lab test's job
    assert_flagged(rep, [x for x in WEAK_POSTFIX + WEAK_DOVECOT if x[0] not in
                         ("PF-TLS-DH", "DC-SSL-DH")])
    rc, rep = audit_json(*saved("hard"))
    assert rc == 0 and rep["high"] == 0, json.dumps(rep, indent=1)
    # without -d the built-in defaults are used, and the report says so
    rc, rep = audit_json("--postconf", os.path.join(FIX, "pf-weak.n"))
    assert any("built-in" in n for n in rep["notes"])
    assert any(f["id"] == "PF-RELAY-MYNETWORKS" for f in rep["findings"])


@needs_bin
def test_bad_input(tmp_path):
    assert audit("--postconf", str(tmp_path / "missing")).returncode == 2
    assert audit("--bogus").returncode == 2
    assert audit("--postfix", str(tmp_path)).returncode == 2  # not a Postfix directory
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\xff{{{ ${{$a} <level {\n = \n}}}\n" * 1000 + b"x = " + b"y" * 1000000)
    for opt in ("--postconf", "--postconf-P", "--postconf-M", "--doveconf", "--postconf-d"):
        p = audit(opt, str(junk))
        assert p.returncode in (0, 1), (opt, p.stderr)
