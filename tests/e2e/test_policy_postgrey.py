"""test_policy_postgrey - greylisting decisions compared with postgrey 1.37 itself.

The same generated sequence of RCPT requests (clients in shared /24 and /64
networks, Debian's whitelisted names and addresses, BATV, +extension and VERP
senders, whitelisted recipients, several recipients per message, times spread
over days so that the delay, the retry window and the auto-whitelist all
matter) goes to a real postgrey, which takes the time from its
policy_test_time attribute, and through mxjail's engine (tests/tools/
policyreplay). Every answer must be of the same kind (defer, pass, or the
X-Greylist header with the same number of seconds).

postgrey comes from MXJAIL_POSTGREY (path to the postgrey script of an
unpacked Debian package) or is fetched with `apt-get download postgrey` and
unpacked with dpkg-deb (never installed). Skips cleanly without it, without
its perl modules or without root (postgrey drops privileges to nobody).
"""
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

SRC = os.environ.get("MXJAIL_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PERL_MODULES = ["Net::Server::Multiplex", "BerkeleyDB", "NetAddr::IP", "IO::Multiplex"]


def _replay_tool():
    b = os.environ.get("MXJAIL_BIN")
    if b:
        cand = os.path.join(os.path.dirname(b), "tests", "tools", "policyreplay")
        if os.path.exists(cand):
            return cand
    return None


def _perl_ok():
    if not shutil.which("perl"):
        return False
    return all(subprocess.run(["perl", "-M" + m, "-e1"], capture_output=True).returncode == 0
               for m in PERL_MODULES)


@pytest.fixture(scope="module")
def postgrey(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root (postgrey drops privileges to nobody)")
    if not _perl_ok():
        pytest.skip("postgrey's perl modules missing (%s)" % ", ".join(PERL_MODULES))
    script = os.environ.get("MXJAIL_POSTGREY")
    if not script:
        d = tmp_path_factory.mktemp("pg")
        try:
            subprocess.run(["apt-get", "download", "postgrey"], cwd=d, check=True,
                           capture_output=True, timeout=120)
            deb = [f for f in os.listdir(d) if f.endswith(".deb")][0]
            subprocess.run(["dpkg-deb", "-x", os.path.join(d, deb), os.path.join(d, "root")],
                           check=True, capture_output=True)
        except (OSError, subprocess.SubprocessError, IndexError) as e:
            pytest.skip("postgrey not available (set MXJAIL_POSTGREY): %s" % e)
        script = os.path.join(d, "root", "usr", "sbin", "postgrey")
    if not os.path.exists(script):
        pytest.skip("no postgrey script at %s" % script)
    return script


@pytest.fixture(scope="module")
def replay():
    t = _replay_tool()
    if not t:
        pytest.skip("policyreplay helper not built (set MXJAIL_BIN)")
    return t


CLIENTS = [("192.0.2.%d" % i, "unknown") for i in (1, 2, 3, 77)] + \
          [("198.51.100.%d" % i, "mx%d.example.net" % i) for i in (5, 6)] + \
          [("203.0.113.9", "lists.debian.org"), ("203.0.113.10", "mail7.telekom.de"),
           ("66.216.126.174", "unknown"), ("195.235.39.20", "unknown"),
           ("2001:db8:1:2::5", "unknown"), ("2001:db8:1:2::99", "v6.example.org"),
           ("2001:db8:1:3::5", "unknown")]
SENDERS = ["alice@example.com", "alice+news@example.com", "bounce-123-456@lists.example.org",
           "bounce-999-456@lists.example.org", "prvs=0123456789=bob@example.net",
           "prvs=9876543210=bob@example.net", "", "news.2024@mail.example",
           "Carol@Example.COM"]
RCPTS = ["u1@example.test", "U1@example.test", "u2@example.test", "postmaster@example.test",
         "abuse+x@example.test", "u3@other.test"]


def _sequence(seed, n):
    rnd = random.Random(seed)
    t, inst, out = 1700000000, 0, []
    while len(out) < n:
        t += rnd.choice([0, 1, 5, 30, 60, 200, 400, 3000, 4000, 20000, 200000])
        ca, cn = rnd.choice(CLIENTS)
        snd = rnd.choice(SENDERS)
        inst += 1
        for _ in range(rnd.choice([1, 1, 1, 2])):
            out.append((t, ca, cn, snd, rnd.choice(RCPTS), "%x.%x" % (inst, inst)))
    return out


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _kind(action):
    if action.startswith("action=DEFER_IF_PERMIT 4.2.0"):
        return "defer"
    m = re.match(r"action=PREPEND X-Greylist: delayed (\d+) seconds", action)
    if m:
        return "header " + m.group(1)
    return action


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_answers_as_postgrey(postgrey, replay, seed, tmp_path):
    wlc = os.path.join(SRC, "tests", "fixtures", "postgrey", "whitelist_clients")
    wlr = os.path.join(SRC, "tests", "fixtures", "postgrey", "whitelist_recipients")
    # postgrey runs as nobody: its database cannot live below pytest's 0700 tree
    work = tempfile.mkdtemp(prefix="mxjail-pg-")
    os.chmod(work, 0o755)
    db = os.path.join(work, "db")
    os.mkdir(db)
    shutil.chown(db, "nobody", "nogroup")
    port = _free_port()
    log = open(tmp_path / "postgrey.log", "w")
    pg = subprocess.Popen(["perl", "-T", postgrey, "--inet=127.0.0.1:%d" % port,
                           "--dbdir=%s" % db, "--delay=60", "--user=nobody", "--group=nogroup",
                           "--whitelist-clients=%s" % wlc, "--whitelist-recipients=%s" % wlr],
                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("postgrey did not start: " + open(tmp_path / "postgrey.log").read())
        seq = _sequence(seed, 1500)
        f = conn.makefile("rwb")
        pg_answers = []
        for t, ca, cn, snd, rc, inst in seq:
            f.write(("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
                     "client_address=%s\nclient_name=%s\nsender=%s\nrecipient=%s\n"
                     "instance=%s\netrn_domain=\npolicy_test_time=%d\n\n"
                     % (ca, cn, snd, rc, inst, t)).encode())
            f.flush()
            pg_answers.append(f.readline().decode().rstrip("\n"))
            f.readline()
        conn.close()
    finally:
        pg.terminate()
        try:
            pg.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pg.kill()
            pg.wait(timeout=10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)

    tsv = tmp_path / "seq.tsv"
    tsv.write_text("".join("%d\t%s\t%s\t%s\t%s\t%s\n" % r for r in seq))
    r = subprocess.run([replay, "-o", "policy.checks=greylist", "-o", "greylist.delay=60",
                        "-o", "greylist.whitelist_clients=" + wlc,
                        "-o", "greylist.whitelist_recipients=" + wlr, str(tsv)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    mx_answers = r.stdout.splitlines()
    assert len(mx_answers) == len(pg_answers)
    kinds = {}
    diffs = []
    for req, a, b in zip(seq, pg_answers, mx_answers):
        kinds[_kind(a).split()[0]] = kinds.get(_kind(a).split()[0], 0) + 1
        if _kind(a) != _kind(b):
            diffs.append("%s: postgrey %s, mxjail %s" % ("\t".join(map(str, req)), a, b))
    # the sequence must exercise every outcome
    assert kinds.get("defer", 0) > 50 and kinds.get("header", 0) > 5, kinds
    assert not diffs, "\n".join(diffs[:20])
