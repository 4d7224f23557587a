"""test_nft - the native nftables backend against a real kernel, in network namespaces.

Drives tests/tools/fwcheck (a line protocol over the fw_* API) inside a fresh
namespace per test, so the host's ruleset is never touched, and reads the
result back with `nft -j`. Covers hosts, prefixes and their timeouts, re-bans
with a new timeout, unbanning an element that already expired, `flush ruleset`
followed by check/rebuild, set-only mode, the 10,000-ban batch time, and a
real packet test over a veth pair (server 10.77.0.1 / attacker 10.77.0.2).

Needs root, nft and ip; skips otherwise.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

NS_PREFIX = "mxjt%d" % os.getpid()
_counter = [0]


def _fwcheck():
    env = os.environ.get("MXJAIL_FWCHECK")
    if env:
        return env
    b = os.environ.get("MXJAIL_BIN")
    if b:
        cand = os.path.join(os.path.dirname(b), "tests", "tools", "fwcheck")
        if os.path.exists(cand):
            return cand
    return None


FWCHECK = _fwcheck()

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, nftables)"),
    pytest.mark.skipif(not shutil.which("nft") or not shutil.which("ip"), reason="needs nft and ip"),
    pytest.mark.skipif(FWCHECK is None, reason="fwcheck helper not built (set MXJAIL_BIN or MXJAIL_FWCHECK)"),
]


def run(*args, check=True, timeout=30):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout)


def new_ns():
    _counter[0] += 1
    name = "%s-%d" % (NS_PREFIX, _counter[0])
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    return name


def del_ns(name):
    run("ip", "netns", "del", name, check=False)


class Driver:
    """fwcheck running inside a namespace; cmd() sends one line, returns the reply."""

    def __init__(self, ns):
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, FWCHECK], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        reply = self.p.stdout.readline().strip()
        assert reply, "fwcheck died on: %s" % line
        return reply

    def ok(self, line):
        reply = self.cmd(line)
        assert reply.startswith("ok"), "%s -> %s" % (line, reply)
        return reply

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@pytest.fixture
def ns():
    name = new_ns()
    try:
        yield name
    finally:
        del_ns(name)


@pytest.fixture
def fw(ns):
    d = Driver(ns)
    try:
        d.ok("init")
        yield d
    finally:
        d.close()


def ms_of(reply):
    for w in reply.split():
        if w.startswith("ms="):
            return float(w[3:])
    raise AssertionError("no timing in " + reply)


def nft_json(ns, *args):
    r = run("ip", "netns", "exec", ns, "nft", "-j", *args, check=False)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def elements(ns, set_name, table="inet mxjail"):
    """{element text: (timeout or None, expires or None)} of one set, or None if it does not exist."""
    fam, tname = table.split()
    data = nft_json(ns, "list", "set", fam, tname, set_name)
    if data is None:
        return None
    out = {}
    for item in data["nftables"]:
        s = item.get("set")
        if not s:
            continue
        for e in s.get("elem", []):
            timeout = expires = None
            if isinstance(e, dict) and "elem" in e:
                timeout = e["elem"].get("timeout")
                expires = e["elem"].get("expires")
                e = e["elem"]["val"]
            if isinstance(e, dict) and "prefix" in e:
                e = "%s/%d" % (e["prefix"]["addr"], e["prefix"]["len"])
            out[e] = (timeout, expires)
    return out


def rules(ns, table="inet mxjail", chain="input"):
    fam, tname = table.split()
    data = nft_json(ns, "list", "chain", fam, tname, chain)
    if data is None:
        return None
    return [i["rule"] for i in data["nftables"] if "rule" in i]


# ---------------------------------------------------------------------------


def test_ban_hosts_and_prefixes(ns, fw):
    fw.ok("jail sshd ssh tcp")
    fw.ok("jail postfix smtp,465,submission tcp")
    fw.ok("ban sshd 192.0.2.1 600")
    fw.ok("ban sshd 2001:db8::1 0")
    fw.ok("ban postfix 198.51.100.0/24 300")
    fw.ok("ban postfix 2001:db8:1::/48 900")
    fw.ok("ban postfix 198.51.100.9 120")     # a host beside a prefix: separate sets
    fw.ok("commit")
    fw.ok("check")

    v4 = elements(ns, "sshd_v4")
    assert v4["192.0.2.1"][0] == 600 and 590 <= v4["192.0.2.1"][1] <= 600
    assert elements(ns, "sshd_v6") == {"2001:db8::1": (None, None)}  # forever: no timeout
    n4 = elements(ns, "postfix_n4")
    assert n4["198.51.100.0/24"][0] == 300
    assert elements(ns, "postfix_n6")["2001:db8:1::/48"][0] == 900
    assert elements(ns, "postfix_v4")["198.51.100.9"][0] == 120

    # the chain: priority filter - 10, one rule per set with the jail's ports
    data = nft_json(ns, "list", "chain", "inet", "mxjail", "input")
    chain = [i["chain"] for i in data["nftables"] if "chain" in i][0]
    assert chain["hook"] == "input" and chain["prio"] == -10
    text = run("ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "mxjail", "input").stdout
    assert "ip saddr @postfix_v4 tcp dport { 25, 465, 587 } drop" in text
    assert "ip6 saddr @sshd_v6 tcp dport 22 drop" in text
    assert len(rules(ns)) == 8


def test_ports_and_protocols(ns, fw):
    fw.ok("jail named domain,953 udp reject")
    fw.ok("jail allp - all")
    fw.ok("jail range 1000:2000,3000-3010 tcp,udp")
    fw.ok("jail sasl smtp,ssmtp,imap2,imap3,imaps,pop3,pop3s tcp")
    for j in ("named", "allp", "range", "sasl"):
        fw.ok("declare " + j)
    fw.ok("commit")
    text = run("ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "mxjail", "input").stdout
    assert "ip saddr @named_v4 udp dport { 53, 953 } reject" in text
    assert "ip saddr @allp_v4 drop" in text
    assert "meta l4proto { tcp, udp } th dport { 1000-2000, 3000-3010 } drop" in text
    assert "tcp dport { 25, 110, 143, 220, 465, 993, 995 } drop" in text
    # a bad port name is refused when the jail is defined, not at commit time
    assert fw.cmd("jail bad nosuchservice tcp").startswith("err 22")


def test_reban_takes_new_timeout(ns, fw):
    fw.ok("jail sshd ssh tcp")
    fw.ok("ban sshd 192.0.2.7 600")
    fw.ok("ban sshd 2001:db8::7 600")
    fw.ok("ban sshd 203.0.113.0/24 600")
    fw.ok("commit")
    fw.ok("ban sshd 192.0.2.7 3600")
    fw.ok("ban sshd 2001:db8::7 3600")
    fw.ok("ban sshd 203.0.113.0/24 3600")
    fw.ok("commit")
    assert elements(ns, "sshd_v4")["192.0.2.7"][0] == 3600
    assert elements(ns, "sshd_v6")["2001:db8::7"][0] == 3600
    assert elements(ns, "sshd_n4")["203.0.113.0/24"][0] == 3600
    # shorter works too (the idiom deletes and re-adds)
    fw.ok("ban sshd 192.0.2.7 60")
    fw.ok("commit")
    assert elements(ns, "sshd_v4")["192.0.2.7"][0] == 60
    # last operation in a batch wins
    fw.ok("ban sshd 192.0.2.8 100")
    fw.ok("unban sshd 192.0.2.8")
    fw.ok("unban sshd 192.0.2.9")
    fw.ok("ban sshd 192.0.2.9 200")
    fw.ok("commit")
    v4 = elements(ns, "sshd_v4")
    assert "192.0.2.8" not in v4 and v4["192.0.2.9"][0] == 200


def test_unban_of_expired_element_does_not_fail_batch(ns, fw):
    fw.ok("jail sshd ssh tcp")
    fw.ok("ban sshd 192.0.2.1 1")
    fw.ok("ban sshd 2001:db8::1 1")
    fw.ok("ban sshd 203.0.113.0/24 1")
    fw.ok("commit")
    time.sleep(2.5)
    assert "192.0.2.1" not in elements(ns, "sshd_v4")
    assert elements(ns, "sshd_n4") == {}
    fw.ok("unban sshd 192.0.2.1")
    fw.ok("unban sshd 2001:db8::1")
    fw.ok("unban sshd 203.0.113.0/24")
    fw.ok("unban sshd 192.0.2.222")           # never banned at all
    fw.ok("ban sshd 192.0.2.2 600")
    fw.ok("commit")
    assert set(elements(ns, "sshd_v4")) == {"192.0.2.2"}


def test_nested_prefixes(ns, fw):
    # interval sets refuse overlaps: only the widest live prefix goes to the kernel
    fw.ok("jail sshd ssh tcp")
    fw.ok("ban sshd 10.1.0.0/16 900")
    fw.ok("commit")
    fw.ok("ban sshd 10.0.0.0/8 300")
    fw.ok("commit")
    assert set(elements(ns, "sshd_n4")) == {"10.0.0.0/8"}
    fw.ok("unban sshd 10.0.0.0/8")
    fw.ok("commit")
    n4 = elements(ns, "sshd_n4")
    assert set(n4) == {"10.1.0.0/16"} and 890 <= n4["10.1.0.0/16"][0] <= 900


def test_flush_ruleset_check_and_rebuild(ns, fw):
    fw.ok("jail sshd ssh tcp")
    fw.ok("jail postfix smtp tcp")
    fw.ok("ban sshd 192.0.2.1 600")
    fw.ok("ban postfix 2001:db8::5 600")
    fw.ok("commit")
    fw.ok("check")
    run("ip", "netns", "exec", ns, "nft", "flush", "ruleset")
    reply = fw.cmd("check")
    assert reply.startswith("err 2 ") and "missing" in reply
    # a batch into the vanished table reports ENOENT instead of failing obscurely
    reply = fw.cmd("ban sshd 192.0.2.3 600") and fw.cmd("commit")
    assert reply.startswith("err 2 ") and "rebuild" in reply
    reply = fw.ok("rebuild sshd 192.0.2.1 550 postfix 2001:db8::5 420 sshd 192.0.2.3 600 "
                  "sshd 198.51.100.0/24 100")
    fw.ok("check")
    v4 = elements(ns, "sshd_v4")
    assert v4["192.0.2.1"][0] == 550 and v4["192.0.2.3"][0] == 600
    assert elements(ns, "postfix_v6")["2001:db8::5"][0] == 420
    assert elements(ns, "sshd_n4")["198.51.100.0/24"][0] == 100
    assert len(rules(ns)) == 8
    # and the next normal batch works again
    fw.ok("ban sshd 192.0.2.4 60")
    fw.ok("commit")
    assert "192.0.2.4" in elements(ns, "sshd_v4")
    # a deleted chain alone is noticed as well
    run("ip", "netns", "exec", ns, "nft", "delete", "chain", "inet", "mxjail", "input")
    assert "chain input" in fw.cmd("check")


def test_quiet_checks_let_the_context_go(ns, fw):
    """A check with no other command since the previous check frees libnftables'
    context (and its cache); whatever comes next works on a new one."""
    fw.ok("jail sshd ssh tcp")
    fw.ok("ban sshd 192.0.2.1 600")
    fw.ok("commit")
    fw.ok("check")   # a commit since the last check: the context stays
    fw.ok("check")   # nothing else since: it goes
    fw.ok("check")   # a check on a context of its own
    fw.ok("ban sshd 192.0.2.2 600")
    fw.ok("unban sshd 192.0.2.1")
    fw.ok("commit")
    assert set(elements(ns, "sshd_v4")) == {"192.0.2.2"}
    fw.ok("check")
    fw.ok("check")
    run("ip", "netns", "exec", ns, "nft", "flush", "ruleset")
    reply = fw.cmd("check")
    assert reply.startswith("err 2 ") and "missing" in reply
    fw.ok("rebuild sshd 192.0.2.2 300")
    fw.ok("check")
    assert set(elements(ns, "sshd_v4")) == {"192.0.2.2"}


def test_backend_without_jails_holds_nothing(ns, fw):
    """With no jail on the backend, rebuild removes a table left by an earlier
    run and creates nothing; checks find nothing to check, and libnftables is
    not kept loaded (whether a table exists is asked over plain netlink). The
    first jail declared brings the table, its chain and its sets."""
    def mapped():
        with open("/proc/%d/maps" % fw.p.pid) as f:
            return f.read()
    run("ip", "netns", "exec", ns, "nft",
        "add table inet mxjail; add set inet mxjail old_v4 { type ipv4_addr; }")
    fw.ok("rebuild")
    assert nft_json(ns, "list", "table", "inet", "mxjail") is None
    assert "libnftables" not in mapped()
    fw.ok("check")
    fw.ok("rebuild")
    assert "libnftables" not in mapped()
    assert nft_json(ns, "list", "tables")["nftables"][1:] == []
    fw.ok("jail sshd ssh tcp")
    fw.ok("declare sshd")
    fw.ok("commit")
    assert elements(ns, "sshd_v4") == {} and len(rules(ns)) == 4
    assert "libnftables" in mapped()
    fw.ok("ban sshd 192.0.2.1 600")
    fw.ok("commit")
    assert set(elements(ns, "sshd_v4")) == {"192.0.2.1"}
    fw.ok("check")
    fw.ok("stop")
    assert nft_json(ns, "list", "table", "inet", "mxjail") is None


def test_set_only_mode(ns):
    admin = """table inet filter {
    set sshd_v4 { type ipv4_addr; flags timeout; }
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr @sshd_v4 tcp dport 22 counter drop
    }
}
"""
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=admin, text=True,
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    d = Driver(ns)
    try:
        d.ok("init setonly table=filter")
        d.ok("jail sshd ssh tcp")
        d.ok("ban sshd 192.0.2.1 600")
        d.ok("ban sshd 2001:db8::1 600")
        d.ok("commit")
        d.ok("check")
        assert elements(ns, "sshd_v4", "inet filter")["192.0.2.1"][0] == 600
        assert elements(ns, "sshd_v6", "inet filter")["2001:db8::1"][0] == 600
        # no chain of ours, the admin's chain untouched
        assert len(rules(ns, "inet filter")) == 1
        chains = nft_json(ns, "list", "chains", "inet")
        assert [c["chain"]["name"] for c in chains["nftables"] if "chain" in c] == ["input"]
        assert nft_json(ns, "list", "table", "inet", "mxjail") is None
        # stop empties our sets but leaves the admin's table alone
        d.ok("stop")
        assert elements(ns, "sshd_v4", "inet filter") == {}
        assert len(rules(ns, "inet filter")) == 1
    finally:
        d.close()


def test_10k_bans_in_one_commit(ns, fw):
    fw.ok("jail sshd ssh tcp")
    fw.ok("declare sshd")
    fw.ok("commit")
    reply = fw.ok("bulk sshd 10000 600")
    t_new = ms_of(reply)
    assert len(elements(ns, "sshd_v4")) == 5000 and len(elements(ns, "sshd_v6")) == 5000
    t_reban = ms_of(fw.ok("bulk sshd 10000 1200"))
    t_unban = ms_of(fw.ok("bulk sshd 10000 0 unban"))
    t_rebuild = ms_of(fw.ok("bulkrebuild sshd 100000 600"))
    print("\nnft: 10,000 new bans in one commit: %.1f ms; 10,000 re-bans: %.1f ms; "
          "10,000 unbans: %.1f ms; rebuild with 100,000 bans: %.1f ms"
          % (t_new, t_reban, t_unban, t_rebuild))
    # Timings are reported, not asserted: the figure of record comes from bench/.


def _netns_pair():
    srv, att = new_ns(), new_ns()
    run("ip", "-n", srv, "link", "add", "veth-srv", "type", "veth", "peer", "name", "veth-att",
        "netns", att)
    for n in (srv, att):
        run("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0")
    run("ip", "-n", srv, "addr", "add", "10.77.0.1/24", "dev", "veth-srv")
    run("ip", "-n", att, "addr", "add", "10.77.0.2/24", "dev", "veth-att")
    run("ip", "-n", att, "addr", "add", "10.77.0.3/24", "dev", "veth-att")
    run("ip", "-n", srv, "addr", "add", "2001:db8:77::1/64", "dev", "veth-srv", "nodad")
    run("ip", "-n", att, "addr", "add", "2001:db8:77::2/64", "dev", "veth-att", "nodad")
    run("ip", "-n", att, "addr", "add", "2001:db8:77::3/64", "dev", "veth-att", "nodad")
    run("ip", "-n", srv, "link", "set", "veth-srv", "up")
    run("ip", "-n", att, "link", "set", "veth-att", "up")
    for _ in range(50):
        a = run("ip", "netns", "exec", srv, "cat", "/sys/class/net/veth-srv/operstate").stdout
        b = run("ip", "netns", "exec", att, "cat", "/sys/class/net/veth-att/operstate").stdout
        if a.strip() == "up" and b.strip() == "up":
            break
        time.sleep(0.1)
    return srv, att


LISTENER = r"""
import socket, sys, time
socks = []
for port in map(int, sys.argv[1:]):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(128)
    socks.append(s)
print("ready", flush=True)
time.sleep(600)
"""

CONNECT = r"""
import socket, sys
host, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(1.0)
s.bind((src, 0))
try:
    s.connect((host, port))
    print("connected")
except OSError as e:
    print("failed", e)
"""


def connects(att, host, port, src):
    r = run("ip", "netns", "exec", att, sys.executable, "-c", CONNECT, host, str(port), src)
    return r.stdout.startswith("connected")


def test_packets_dropped_for_banned_port_only():
    srv, att = _netns_pair()
    listener = None
    d = None
    try:
        listener = subprocess.Popen(["ip", "netns", "exec", srv, sys.executable, "-c", LISTENER,
                                     "2525", "2526"], stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "ready"
        # before any ban everything connects
        assert connects(att, "10.77.0.1", 2525, "10.77.0.2")

        d = Driver(srv)
        d.ok("init")
        d.ok("jail smtp 2525 tcp")
        d.ok("ban smtp 10.77.0.2 600")
        d.ok("ban smtp 2001:db8:77::2 600")
        t_commit = ms_of(d.ok("commit"))
        assert not connects(att, "10.77.0.1", 2525, "10.77.0.2"), "banned address still connects"
        print("\nnft: ban commit took %.1f ms; the next SYN from the banned address was dropped"
              % t_commit)
        assert not connects(att, "2001:db8:77::1", 2525, "2001:db8:77::2")
        # other port, other source address: still served
        assert connects(att, "10.77.0.1", 2526, "10.77.0.2")
        assert connects(att, "10.77.0.1", 2525, "10.77.0.3")
        assert connects(att, "2001:db8:77::1", 2526, "2001:db8:77::2")
        assert connects(att, "2001:db8:77::1", 2525, "2001:db8:77::3")
        # a prefix ban covers the second address too
        d.ok("ban smtp 10.77.0.0/24 600")
        d.ok("commit")
        assert not connects(att, "10.77.0.1", 2525, "10.77.0.3")
        # unban lets them back in
        d.ok("unban smtp 10.77.0.2")
        d.ok("unban smtp 10.77.0.0/24")
        d.ok("unban smtp 2001:db8:77::2")
        d.ok("commit")
        assert connects(att, "10.77.0.1", 2525, "10.77.0.2")
        assert connects(att, "2001:db8:77::1", 2525, "2001:db8:77::2")
    finally:
        if d:
            d.close()
        if listener:
            listener.kill()
            listener.wait()
        del_ns(srv)
        del_ns(att)
