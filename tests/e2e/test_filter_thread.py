"""test_filter_thread - the filter thread changes nothing but speed.

`mxjail run` reads the same generated mail log (bench/gen_maillog.py: Postfix,
Dovecot and sshd traffic with attacks, timestamps ending now) twice, once with
`filter_thread = yes` and once with `no`, through jails postfix (mode
aggressive), dovecot, sshd and sshd in mode aggressive (two filters failing on
the same lines, whose order within a line must hold) with low maxretry so that many addresses are
banned. Extra lines carry invalid UTF-8 around failures (the preparation
copies repaired text) and the file grows while the daemon reads it (batches
end with each read). The daemon logs every failure ("[jail] Found ADDR - TIME")
at DEBUG level: both runs must log the same failures in the same order, ban
the same addresses with the same counts and keep the same evidence.
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

BIN = os.environ.get("MXJAIL_BIN")
SRC = os.environ.get("MXJAIL_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set")

JAILS = ("postfix", "dovecot", "sshd", "sshd-agg")


def make_log(path, n):
    start = datetime.datetime.now() - datetime.timedelta(hours=6)
    subprocess.run([sys.executable, os.path.join(SRC, "bench", "gen_maillog.py"), "-n", str(n),
                    "--seed", "7", "--attackers4", "800", "--attackers6", "60",
                    "--start", start.strftime("%Y-%m-%dT%H:%M:%S"), "--days", "0.25",
                    "-o", path], check=True)
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    # invalid UTF-8 in user names next to real failures, every 97th line
    stamp = time.strftime("%b %d %H:%M:%S").encode()
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i % 97 == 0 and line:
            out.append(stamp + b" mx1 sshd[901]: Failed password for invalid user \xff\xfe"
                       b"r\xc3\x28oot from 203.0.113.%d port 4711 ssh2" % (i % 50 + 1))
    return b"\n".join(out)


def steady(v):
    """The answer without what changes while the test runs (time left)."""
    if isinstance(v, dict):
        return {k: steady(x) for k, x in v.items() if k != "remaining"}
    if isinstance(v, list):
        return [steady(x) for x in v]
    return v


def run(tmp, name, data, thread):
    d = os.path.join(str(tmp), name)
    conf = os.path.join(d, "conf")
    shutil.copytree(os.path.join(SRC, "etc"), conf)
    log = os.path.join(d, "mail.log")
    with open(os.path.join(conf, "jail.local"), "w") as f:
        f.write("[DEFAULT]\nbackend = polling\nusedns = no\nfindtime = 1d\nbantime = 1h\n"
                "maxretry = 3\nignoreip = 127.0.0.1/8\n\n"
                "[postfix]\nenabled = true\nmode = aggressive\nlogpath = %s\n\n"
                "[dovecot]\nenabled = true\nlogpath = %s\n\n"
                "[sshd]\nenabled = true\nlogpath = %s\n\n"
                "[sshd-agg]\nenabled = true\nfilter = sshd[mode=aggressive]\nport = ssh\n"
                "logpath = %s\n" % (log, log, log, log))
    with open(os.path.join(conf, "mxjail.local"), "w") as f:
        f.write("[mxjail]\nfilter_thread = %s\n" % thread)
    half = data.rfind(b"\n", 0, len(data) // 2) + 1
    with open(log, "wb") as f:
        f.write(data[:half])
    sock = os.path.join(d, "mxjail.sock")
    out = os.path.join(d, "mxjail.log")
    proc = subprocess.Popen([BIN, "run", "-f", "-c", conf, "--state", os.path.join(d, "state"),
                             "--socket", sock, "--logtarget", out, "--loglevel", "DEBUG",
                             "--backend", "null"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def cli(*args):
        r = subprocess.run([BIN] + list(args) + ["--socket", sock, "--json"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    try:
        deadline = time.time() + 60
        while time.time() < deadline and not os.path.exists(sock):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        # the second half arrives in pieces while the first is being read
        with open(log, "ab") as f:
            rest = data[half:]
            step = len(rest) // 7 + 1
            for k in range(0, len(rest), step):
                f.write(rest[k:k + step])
                f.flush()
                time.sleep(0.02)
        last, since = None, time.time()
        while time.time() < deadline:
            st = {j: cli("status", j) for j in JAILS}
            v = [st[j]["total_failed"] for j in JAILS]
            if v != last:
                last, since = v, time.time()
            elif time.time() - since > 1.5:
                break
            time.sleep(0.1)
        banned = sorted((b["jail"], b["address"], b["bancount"], b["failures"])
                        for b in cli("banned"))
        why = {}
        for jail, addr, _, _ in banned[:40]:
            why[(jail, addr)] = json.dumps(steady(cli("why", addr)), sort_keys=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with open(out, errors="replace") as f:
        text = f.read()
    found = [l.split(": ", 1)[1] for l in text.splitlines() if "] Found " in l]
    totals = {j: (st[j]["total_failed"], st[j]["total_banned"]) for j in JAILS}
    return text, found, totals, banned, why


def test_thread_and_main_agree(tmp_path):
    data = make_log(str(tmp_path / "gen.log"), 30000)
    t_text, t_found, t_tot, t_banned, t_why = run(tmp_path, "thread", data, "yes")
    m_text, m_found, m_tot, m_banned, m_why = run(tmp_path, "main", data, "no")
    assert "filter thread:" in t_text
    assert "filter thread:" not in m_text
    assert len(t_found) > 3000 and len(t_banned) > 100, (len(t_found), len(t_banned))
    assert any("203.0.113." in l for l in t_found)
    assert t_found == m_found
    assert t_tot == m_tot
    assert t_banned == m_banned
    assert t_why == m_why


def test_mxjail_test_threads_agree(tmp_path):
    """`mxjail test` prints the same JSON and the same summary with and without
    the thread, for several filters sharing one pass (two with the same date
    settings, one journal-style filter dated by --now)."""
    log = tmp_path / "mail.log"
    log.write_bytes(make_log(str(tmp_path / "gen.log"), 20000))
    conf = os.path.join(SRC, "etc")
    filters = ["postfix[mode=aggressive]", "dovecot", "sshd", "sshd[mode=aggressive]",
               "sshd[logtype=journal]"]
    outs = {}
    for th in ("1", "2"):
        j = subprocess.run([BIN, "test", "-c", conf, "--threads", th, "--json", "--now",
                            "1764000000"] + filters + [str(log)], capture_output=True)
        s = subprocess.run([BIN, "test", "-c", conf, "--threads", th, "--print-all-matched"]
                           + filters + [str(log)], capture_output=True)
        assert j.returncode == 0 and s.returncode == 0, (j.stderr, s.stderr)
        summary = [l for l in s.stdout.splitlines() if b"processed in" not in l]
        outs[th] = (j.stdout, summary)
    assert outs["1"] == outs["2"]
    lines = outs["1"][0].splitlines()
    assert len(lines) > 20000
    assert sum(1 for l in lines if b'"match":true' in l) > 3000
    assert any(l.startswith(b"Lines: ") for l in outs["1"][1])


def test_threads_option_checked():
    r = subprocess.run([BIN, "test", "--threads", "3", "sshd", "/dev/null"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "--threads expects 1 or 2" in r.stderr
