"""netns_helpers - a two-namespace test network and small clients for the e2e tests.

    attacker (veth) <===== veth pair =====> (veth) server
    10.77.0.2 10.77.0.3                     10.77.0.1/24
    2001:db8:77::2 2001:db8:77::3           2001:db8:77::1/64

Interface: Topology(tag).up() builds both namespaces with names unique to this
process and tag (so parallel test runs never collide), .down() deletes them;
.srv_cmd()/.att_cmd() prefix a command with `ip netns exec NS`; connects() and
imap_login() run a short, time-bounded Python client inside the attacker
namespace with a chosen source address. Nothing is added to the host
namespace: the veth pair is created inside the server namespace and its peer
moved straight into the attacker's. Processes must be stopped (by PID) before
down(), since a live process keeps its namespace around.

Needs root and iproute2; callers skip otherwise.
"""
import os
import subprocess
import sys
import time

SRV4, ATT4, ATT4B = "10.77.0.1", "10.77.0.2", "10.77.0.3"
SRV6, ATT6, ATT6B = "2001:db8:77::1", "2001:db8:77::2", "2001:db8:77::3"

_seq = [0]


def run(*args, check=True, timeout=30, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True,
                          timeout=timeout, **kw)


class Topology:
    def __init__(self, tag="t"):
        _seq[0] += 1
        base = "mx%s%d-%d" % (tag, os.getpid(), _seq[0])
        self.srv = base + "-srv"
        self.att = base + "-att"

    def up(self):
        run("ip", "netns", "add", self.srv)
        run("ip", "netns", "add", self.att)
        run("ip", "-n", self.srv, "link", "add", "veth-srv", "type", "veth", "peer", "name",
            "veth-att", "netns", self.att)
        for ns in (self.srv, self.att):
            run("ip", "-n", ns, "link", "set", "lo", "up")
            # no duplicate address detection: IPv6 addresses usable at once
            run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0")
        run("ip", "-n", self.srv, "addr", "add", SRV4 + "/24", "dev", "veth-srv")
        run("ip", "-n", self.srv, "addr", "add", SRV6 + "/64", "dev", "veth-srv", "nodad")
        for a in (ATT4, ATT4B):
            run("ip", "-n", self.att, "addr", "add", a + "/24", "dev", "veth-att")
        for a in (ATT6, ATT6B):
            run("ip", "-n", self.att, "addr", "add", a + "/64", "dev", "veth-att", "nodad")
        run("ip", "-n", self.srv, "link", "set", "veth-srv", "up")
        run("ip", "-n", self.att, "link", "set", "veth-att", "up")
        for _ in range(50):
            a = run("ip", "netns", "exec", self.srv, "cat",
                    "/sys/class/net/veth-srv/operstate").stdout.strip()
            b = run("ip", "netns", "exec", self.att, "cat",
                    "/sys/class/net/veth-att/operstate").stdout.strip()
            if a == "up" and b == "up":
                return self
            time.sleep(0.1)
        raise AssertionError("veth pair did not come up")

    def down(self):
        for ns in (self.srv, self.att):
            run("ip", "netns", "del", ns, check=False)

    def srv_cmd(self, *cmd):
        return ["ip", "netns", "exec", self.srv] + list(cmd)

    def att_cmd(self, *cmd):
        return ["ip", "netns", "exec", self.att] + list(cmd)

    def connects(self, host, port, src, timeout=1.5):
        """True when a TCP connect from src to host:port completes within timeout."""
        r = run(*self.att_cmd(sys.executable, "-c", _CONNECT, host, str(port), src,
                              str(timeout)), check=False, timeout=timeout + 10)
        return r.stdout.startswith("connected")

    def imap_login(self, host, src, user, password, timeout=5.0):
        """One IMAP session from src: greeting, LOGIN, LOGOUT. Returns 'ok', 'no'
        (login refused), or 'failed ...' (no connection / protocol trouble)."""
        r = run(*self.att_cmd(sys.executable, "-c", _IMAP, host, src, user, password,
                              str(timeout)), check=False, timeout=timeout + 10)
        return r.stdout.strip() or ("failed rc=%d %s" % (r.returncode, r.stderr.strip()))


_CONNECT = r"""
import socket, sys
host, port, src, t = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(t)
s.bind((src, 0))
try:
    s.connect((host, port))
    print("connected")
except OSError as e:
    print("failed", e)
"""

# A raw socket client rather than imaplib: imaplib cannot bind a source address.
_IMAP = r"""
import socket, sys
host, src, user, pw, t = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(t)
s.bind((src, 0))
buf = b""
def reply(tag):
    global buf
    while True:
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            if line.startswith(tag):
                return line.decode("ascii", "replace")
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
try:
    s.connect((host, 143))
    greet = reply(b"* ")
    if not greet.startswith("* OK"):
        print("failed greeting", greet); sys.exit(0)
    s.sendall(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), pw.encode()))
    r = reply(b"a ")
    s.sendall(b"b LOGOUT\r\n")
    try:
        reply(b"b ")
    except OSError:
        pass
    print("ok" if r.startswith("a OK") else "no " + r)
except OSError as e:
    print("failed", e)
"""
