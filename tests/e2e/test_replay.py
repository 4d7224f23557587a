"""test_replay - end-to-end tests of `mxjail replay` (jails over old logs, the
logs' own clock, no firewall, no state).

Two kinds of checks:
- a generated mail log (bench/gen_maillog.py --seed 7 -n 20000) with mxjail's
  stock etc/ tree and the postfix (aggressive), dovecot and sshd jails enabled:
  the generator is run in-process so that every line's kind and address are
  known; a ban must only ever hit an address with at least maxretry attack
  lines of the jail's kind, never an address that only sent benign traffic;
- a hand-written sshd log with exact expectations: maxretry and findtime
  edges, ignoreip, prolongation, bantime.increment from the replay's own bans.
"""
import collections
import importlib.util
import json
import os
import shutil
import subprocess
import types

import pytest

BIN = os.environ.get("MXJAIL_BIN", "build/mxjail")
SRC = os.environ.get("MXJAIL_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))

# 2025-03-01 00:00:00 UTC: year-less syslog dates are read as 2025 with --now
# set a few months later.
T0 = 1740787200
NOW = str(T0 + 200 * 86400)


def run(args, **kw):
    env = dict(os.environ, TZ="UTC")
    return subprocess.run([BIN, "replay"] + args, capture_output=True, text=True, env=env,
                          timeout=120, **kw)


def conf_tree(tmp_path, local):
    conf = tmp_path / "conf"
    shutil.copytree(os.path.join(SRC, "etc"), conf,
                    ignore=shutil.ignore_patterns("mxjail.service*"))
    (conf / "jail.local").write_text(local)
    return conf


def json_bans(out):
    return [json.loads(x) for x in out.splitlines() if x.strip()]


# ---------------------------------------------------------------- generated log

class CountSet(collections.Counter):
    """Stands in for the generator's per-kind address sets, counting lines."""

    def add(self, item):
        self[item] += 1


def generate(path, seed, lines):
    spec = importlib.util.spec_from_file_location(
        "gen_maillog", os.path.join(SRC, "bench", "gen_maillog.py"))
    gm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gm)
    args = types.SimpleNamespace(
        lines=lines, seed=seed, output=str(path), truth=None, attack_ratio=0.30,
        attackers4=40000, attackers6=2500, zipf=0.9, benign_ips=3000, ipv6_benign=0.12,
        start="2025-03-01T00:00:00", days=7.0, hostname="mx1", timefmt="bsd", labels=False)
    g = gm.Gen(args)
    g.kind_ips = {k: CountSet() for k in gm.KINDS}
    with open(path, "w") as out:
        g.run(out)
    attack = collections.defaultdict(collections.Counter)  # filter letter -> ip -> failures
    attackers, seen = set(), set()
    for kind, ips in g.kind_ips.items():
        # mxjail's filters match what fail2ban 1.0.2 or 1.1 match (e.g. Postfix's
        # "does not resolve to address" warning, a "context" line of the generator)
        cls, letters = gm.KINDS[kind][0], set(gm.KINDS[kind][1] + gm.KINDS[kind][2])
        seen |= set(ips)
        if cls != "benign":
            attackers |= set(ips)
            for letter in letters:
                for ip, n in ips.items():
                    attack[letter][ip] += n
    return attack, attackers, seen - attackers


def test_generated_log_bans_only_attackers(tmp_path):
    log = tmp_path / "mail.log"
    attack, attackers, benign = generate(log, 7, 20000)
    assert attackers and benign
    conf = conf_tree(tmp_path, "[postfix]\nenabled = true\nmode = aggressive\n"
                               "[dovecot]\nenabled = true\n[sshd]\nenabled = true\n")
    r = run(["-c", str(conf), "--now", NOW, "--json", str(log)])
    assert r.returncode == 0, r.stderr
    bans = json_bans(r.stdout)
    letter = {"postfix": "P", "dovecot": "D", "sshd": "S"}
    per_jail = collections.Counter()
    for b in bans:
        per_jail[b["jail"]] += 1
        ip = b["address"]
        assert ip not in benign, b
        assert ip in attackers, b
        assert b["failures"] >= 5, b
        assert attack[letter[b["jail"]]][ip] >= 5, b
        assert b["bantime"] == 600 and b["unban"] >= b["time"] + 600, b
        assert T0 <= b["time"] < T0 + 8 * 86400, b
    # every jail found its attackers (the log holds hundreds of bursts)
    for jail in ("postfix", "dovecot", "sshd"):
        assert per_jail[jail] >= 5, (jail, per_jail)
    # bans come in log order
    times = [b["time"] for b in bans]
    assert times == sorted(times)

    # the human summary agrees with the JSON
    r2 = run(["-c", str(conf), "--now", NOW, str(log)])
    assert r2.returncode == 0, r2.stderr
    assert "Status for the jail: postfix" in r2.stdout
    assert "Bans (%d):" % len(bans) in r2.stdout
    for jail in ("postfix", "dovecot", "sshd"):
        block = r2.stdout.split("Status for the jail: " + jail, 1)[1]
        assert "Total banned:     %d" % per_jail[jail] in block


def test_generated_log_jail_option_selects(tmp_path):
    log = tmp_path / "mail.log"
    generate(log, 7, 3000)
    conf = conf_tree(tmp_path, "[postfix]\nenabled = true\nmode = aggressive\n")
    # --jail runs a jail that is not enabled (tuning before enabling it)
    r = run(["-c", str(conf), "--now", NOW, "--jail", "sshd", "--json", str(log)])
    assert r.returncode == 0, r.stderr
    assert {b["jail"] for b in json_bans(r.stdout)} <= {"sshd"}
    r = run(["-c", str(conf), "--jail", "nosuchjail", str(log)])
    assert r.returncode == 1
    assert "nosuchjail" in r.stderr


# ------------------------------------------------------------- hand-written log

LOCAL = """[sshd]
enabled = true
maxretry = 3
findtime = 60
bantime = 100
ignoreip = 198.51.100.0/24
bantime.increment = true
"""


def syslog_line(t, addr):
    import time
    ts = time.strftime("%b %d %H:%M:%S", time.gmtime(T0 + t)).replace(" 0", "  ", 1)
    return "%s mx1 sshd[%d]: Failed password for root from %s port 4%04d ssh2\n" % (
        ts, 10000 + t, addr, t % 10000)


def hand_log(path, events):
    events = sorted(events)
    with open(path, "w") as f:
        for t, a in events:
            f.write(syslog_line(t, a))
        f.write("Mar  1 09:00:00 mx1 sshd[1]: Accepted publickey for admin from 192.0.2.50 "
                "port 1 ssh2\n")


EVENTS = (
    # A: three within findtime -> ban at 20 for 100 s; a failure at 50 prolongs to 150
    [(0, "203.0.113.1"), (10, "203.0.113.1"), (20, "203.0.113.1"), (50, "203.0.113.1")]
    # B: the third at 59 s after the first: still inside findtime -> ban
    + [(1000, "203.0.113.2"), (1030, "203.0.113.2"), (1059, "203.0.113.2")]
    # C: one failure every 100 s never reaches 3 in 60 s (the rate stays below)
    + [(2000 + 100 * i, "203.0.113.3") for i in range(6)]
    # D: ignoreip: many failures, never banned
    + [(3000 + i, "198.51.100.7") for i in range(10)]
    # E: three bursts -> bans of 100, 200, 400 s (bantime.increment, default formula)
    + [(4000 + i, "203.0.113.4") for i in range(3)]
    + [(4300 + i, "203.0.113.4") for i in range(3)]
    + [(5000 + i, "203.0.113.4") for i in range(3)]
    # F: IPv6
    + [(6000 + i, "2001:db8::7") for i in range(3)]
)


def test_hand_written_exact(tmp_path):
    log = tmp_path / "auth.log"
    hand_log(log, EVENTS)
    conf = conf_tree(tmp_path, LOCAL)
    r = run(["-c", str(conf), "--now", NOW, "--json", str(log)])
    assert r.returncode == 0, r.stderr
    got = [(b["address"], b["time"] - T0, b["failures"], b["bancount"], b["bantime"],
            b["unban"] - T0, b["prolongs"]) for b in json_bans(r.stdout)]
    assert got == [
        ("203.0.113.1", 20, 3, 1, 100, 150, 1),
        ("203.0.113.2", 1059, 3, 1, 100, 1159, 0),
        ("203.0.113.4", 4002, 3, 1, 100, 4102, 0),
        ("203.0.113.4", 4302, 3, 2, 200, 4502, 0),
        ("203.0.113.4", 5002, 3, 3, 400, 5402, 0),
        ("2001:db8::7", 6002, 3, 1, 100, 6102, 0),
    ]

    r = run(["-c", str(conf), "--now", NOW, str(log)])
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Status for the jail: sshd" in out
    assert "Total failed:     25" in out    # 4 + 3 + 6 + 3*3 + 3 (ignored ones do not count)
    assert "Ignored:          10" in out
    assert "Total banned:     6" in out
    assert "Prolonged:        1" in out
    assert "2025-03-01 00:00:20  sshd  203.0.113.1" in out
    assert "2025-03-01 00:02:30 (prolonged)" in out
    # the last line (09:00) is past every ban: none is live at the end
    assert "Currently banned: 0" in out


def test_overalljails_and_maxtime(tmp_path):
    log = tmp_path / "auth.log"
    hand_log(log, [(i * 500 + k, "203.0.113.9") for i in range(5) for k in range(3)])
    conf = conf_tree(tmp_path, LOCAL + "bantime.maxtime = 300\n")
    r = run(["-c", str(conf), "--now", NOW, "--json", str(log)])
    assert r.returncode == 0, r.stderr
    assert [b["bantime"] for b in json_bans(r.stdout)] == [100, 200, 300, 300, 300]


def test_two_logs_are_merged_by_time(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    hand_log(a, [(0, "203.0.113.1"), (20, "203.0.113.1")])
    hand_log(b, [(10, "203.0.113.1")])
    conf = conf_tree(tmp_path, LOCAL)
    r = run(["-c", str(conf), "--now", NOW, "--json", str(a), str(b)])
    assert r.returncode == 0, r.stderr
    bans = json_bans(r.stdout)
    assert [(x["address"], x["time"] - T0) for x in bans] == [("203.0.113.1", 20)]


def test_errors(tmp_path):
    conf = conf_tree(tmp_path, LOCAL)
    r = run(["-c", str(conf), str(tmp_path / "missing.log")])
    assert r.returncode == 1
    assert "missing.log" in r.stderr
    r = run(["-c", str(conf)])
    assert r.returncode == 2
    bad = conf_tree(tmp_path / "b", "[sshd]\nenabled = true\nmaxretry = many\n")
    log = tmp_path / "x.log"
    log.write_text("")
    r = run(["-c", str(bad), str(log)])
    assert r.returncode == 1
    assert "maxretry" in r.stderr
    # garbage input: no crash
    log.write_bytes(b"\x00\xff garbage\n" * 1000 + b"x" * (2 << 20) + b"\n")
    r = run(["-c", str(conf), str(log)])
    assert r.returncode == 0, r.stderr
    assert "Bans (0):" in r.stdout
