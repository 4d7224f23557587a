"""test_actions - action.d command actions in `mxjail run`.

A jail's `action = NAME[k=v]` whose NAME is not a native banaction runs the
shell commands of action.d/NAME.conf: actionstart when the jail starts,
actionban/actionunban per ban with fail2ban's tags, actionflush + actionstop on
stop, and actionban again (restored=1) for live bans after a restart. Values
taken from log lines never reach the shell as code ($f2bV_ variables).
With the fail2ban tree (MXJAIL_F2B_ROOT) Debian's own dummy.conf and
action_mwl (sendmail-whois-lines) run against a fake sendmail that records the
mail; sendmail-common.local points mailcmd at it, as an admin would.

The daemon runs with the null firewall backend; nothing outside the temp dir
is touched. Each daemon is stopped by its PID.
"""
import os
import shutil
import signal
import stat

import pytest

from test_daemon import ATTACKER, OTHER, Daemon, poll, syslog_line  # noqa: F401

BIN = os.environ.get("MXJAIL_BIN")
F2B_ROOT = os.environ.get("MXJAIL_F2B_ROOT", "")
F2B_ACTIONS = os.path.join(F2B_ROOT, "etc", "fail2ban", "action.d")

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set")

RECORD = """[Definition]
actionstart = echo "start <name> <actname>" >> <out>
actionban = echo "ban <ip> f=<failures> t=<bantime> r=<restored> fam=<family>" >> <out>
            printf '%%s\\n' "<matches>" >> <out>.matches
actionunban = echo "unban <ip>" >> <out>
actionflush = echo flush >> <out>
actionstop = echo stop >> <out>
[Init]
out = /nonexistent/out
"""


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


@pytest.fixture
def made():
    ds = []
    yield ds
    for d in ds:
        d.kill()


def stop(d):
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(timeout=40)


def test_command_action_lifecycle(tmp_path, made):
    out = str(tmp_path / "record.out")
    pwned = str(tmp_path / "PWNED")
    d = Daemon(tmp_path, extra="action = record[out=\"%s\"]\n" % out)
    with open(os.path.join(d.conf, "action.d", "record.conf"), "w") as f:
        f.write(RECORD)
    made.append(d)
    d.start()
    poll(lambda: "start sshd record" in read(out), what="actionstart")
    hostile = "x$(touch %s)`touch %s`';touch %s;'" % (pwned, pwned, pwned)
    d.append(*[syslog_line(ATTACKER, user="invalid user " + hostile)] * 3)
    poll(lambda: "ban %s f=3 t=3600 r=0 fam=inet4" % ATTACKER in read(out), what="actionban")
    poll(lambda: read(out + ".matches").count(hostile) == 3, what="matches, literally")
    assert not os.path.exists(pwned)
    assert d.cli("unban", ATTACKER).stdout.strip() == "1"
    poll(lambda: "unban %s" % ATTACKER in read(out), what="actionunban")
    assert d.cli("ban", "sshd", "2001:db8::5").stdout.strip() == "1"
    poll(lambda: "ban 2001:db8::5 f=0 t=3600 r=0 fam=inet6" in read(out), what="manual ban")
    stop(d)
    lines = read(out).splitlines()
    assert lines[-2:] == ["flush", "stop"], lines
    # restart: the live ban goes through actionban again, marked restored
    d.start()
    poll(lambda: "ban 2001:db8::5 f=0 t=3600 r=1 fam=inet6" in read(out), what="restored ban")
    lines = read(out).splitlines()
    assert lines[-2] == "start sshd record", lines
    assert not os.path.exists(pwned)


def test_missing_action_is_a_config_error(tmp_path, made):
    d = Daemon(tmp_path, extra="action = no-such-action[x=1]\n")
    made.append(d)
    d.start(wait=False)
    d.proc.wait(timeout=20)
    err = d.proc.stderr.read()
    assert d.proc.returncode != 0
    assert "no-such-action" in err and "not found" in err


@pytest.mark.skipif(not os.path.isdir(F2B_ACTIONS),
                    reason="MXJAIL_F2B_ROOT not set (Debian's action.d is needed)")
def test_debian_dummy_and_action_mwl(tmp_path, made):
    target = str(tmp_path / "dummy.target")
    mailbox = str(tmp_path / "mailbox")
    fake = str(tmp_path / "sendmail")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\n{ echo \"ARGS: $*\"; cat; echo '--END--'; } >> '%s'\n" % mailbox)
    os.chmod(fake, stat.S_IRWXU)
    d = Daemon(tmp_path, extra=(
        "destemail = admin@example.org\nsender = mx@example.org\n"
        "action = %%(action_mwl)s\n         dummy[target=\"%s\"]\n" % target))
    for name in os.listdir(F2B_ACTIONS):
        src = os.path.join(F2B_ACTIONS, name)
        if os.path.isfile(src):
            shutil.copy(src, os.path.join(d.conf, "action.d", name))
    with open(os.path.join(d.conf, "action.d", "sendmail-common.local"), "w") as f:
        f.write('[Init]\nmailcmd = %s -f "<sender>" "<dest>"\n' % fake)
    made.append(d)
    d.start()
    poll(lambda: read(target).startswith("123\n"), what="dummy actionstart")
    poll(lambda: "sshd: started on" in read(mailbox), what="start mail")
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(lambda: "+%s\n" % ATTACKER in read(target), what="dummy actionban")
    mail = poll(lambda: "banned %s" % ATTACKER in read(mailbox) and "--END--" in
                read(mailbox).split("banned %s" % ATTACKER)[1] and read(mailbox),
                timeout=30, what="ban mail")
    assert "ARGS: -f mx@example.org admin@example.org" in mail
    assert "3 attempts against sshd" in mail
    assert "From: Fail2Ban <mx@example.org>" in mail
    # sendmail-whois-lines greps the jail's log for the address
    assert mail.count("Failed password for root from %s" % ATTACKER) == 3
    assert d.cli("unban", ATTACKER).stdout.strip() == "1"
    poll(lambda: "-%s\n" % ATTACKER in read(target), what="dummy actionunban")
    stop(d)
    assert not os.path.exists(target)  # dummy's actionstop removes it
    assert "sshd: stopped on" in read(mailbox)


NS_OK = os.geteuid() == 0 and shutil.which("nft") and shutil.which("ip")


@pytest.fixture
def netns():
    import subprocess
    name = "mxja%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot create a network namespace: %s" % r.stderr.strip())
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.mark.skipif(not NS_OK, reason="needs root, nft and ip (network namespace)")
def test_hostsdeny_native(tmp_path, made, netns):
    hd = str(tmp_path / "hosts.deny")
    with open(hd, "w") as f:
        f.write("# the admin's own\nsshd: 203.0.113.99\n")
    d = Daemon(tmp_path, netns=netns, extra=(
        "action = hostsdeny[file=\"%s\"]\n\n"
        "[postfix]\nenabled = true\nlogpath = %s\nbackend = polling\n"
        "action = hostsdeny[file=\"%s\"]\n" % (hd, str(tmp_path / "auth.log"), hd)))
    made.append(d)
    d.start(backend="nftables")
    assert "jail [postfix]: action hostsdeny: Postfix on Debian 12 is not linked with libwrap" \
        in d.logtext()
    assert "jail [sshd]: action hostsdeny" not in d.logtext()
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(lambda: "ALL: %s\n" % ATTACKER in read(hd), what="the hosts.deny line")
    assert read(hd).startswith("# the admin's own\nsshd: 203.0.113.99\n# BEGIN mxjail")
    assert d.cli("ban", "sshd", "2001:db8::5").stdout.strip() == "1"
    poll(lambda: "ALL: [2001:db8::5]\n" in read(hd), what="the IPv6 line")
    assert d.cli("unban", ATTACKER).stdout.strip() == "1"
    poll(lambda: ATTACKER not in read(hd), what="the line removed")
    # kill -9 and restart: the live ban is still written, once
    d.kill()
    d.start(backend="nftables")
    assert read(hd).count("ALL: [2001:db8::5]\n") == 1
    # an editor drops the block: the periodic check writes it again
    with open(hd, "w") as f:
        f.write("# the admin's own\n")
    poll(lambda: "ALL: [2001:db8::5]\n" in read(hd), timeout=15, what="the block restored")
    assert read(hd).startswith("# the admin's own\n# BEGIN mxjail")


IPT_OK = NS_OK and shutil.which("iptables-restore") and shutil.which("ip6tables-restore")


def ipt_save(ns, six=False):
    import subprocess
    r = subprocess.run(["ip", "netns", "exec", ns, "ip6tables-save" if six else "iptables-save",
                        "-t", "filter"], capture_output=True, text=True)
    return r.stdout


@pytest.mark.skipif(not IPT_OK, reason="needs root, ip, nft and iptables (network namespace)")
def test_iptables_multiport_native(tmp_path, made, netns):
    import subprocess
    d = Daemon(tmp_path, netns=netns, extra=(
        "action = iptables-multiport[name=sshd, port=\"ssh,smtp,1000:1002\", protocol=tcp]\n"))
    made.append(d)
    d.start(backend="nftables")
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(lambda: "-A f2b-sshd -s %s/32 -j DROP" % ATTACKER in ipt_save(netns), what="the rule")
    save = ipt_save(netns)
    assert ":f2b-sshd - " in save
    assert "-A INPUT -p tcp -m multiport --dports 22,25,1000:1002 -j f2b-sshd" in save
    assert save.count("-j f2b-sshd") == 1 and "-A f2b-sshd -j RETURN" in save
    assert "f2b-sshd" not in ipt_save(netns, six=True)  # IPv6 chain made on demand
    assert d.cli("ban", "sshd", "2001:db8::5").stdout.strip() == "1"
    poll(lambda: "-A f2b-sshd -s 2001:db8::5/128 -j DROP" in ipt_save(netns, True), what="v6 rule")
    assert d.cli("unban", ATTACKER).stdout.strip() == "1"
    poll(lambda: ATTACKER not in ipt_save(netns), what="the rule removed")
    # someone flushes INPUT: the periodic check puts the jump back, once
    subprocess.run(["ip", "netns", "exec", netns, "iptables", "-F", "INPUT"], check=True)
    poll(lambda: "-j f2b-sshd" in ipt_save(netns), timeout=15, what="the jump restored")
    assert ipt_save(netns).count("-A INPUT -p tcp -m multiport") == 1
    # kill -9 and restart: rules rebuilt from state, nothing doubled
    d.kill()
    d.start(backend="nftables")
    save6 = ipt_save(netns, True)
    assert save6.count("-s 2001:db8::5/128") == 1 and save6.count("-j f2b-sshd") == 1
    assert ipt_save(netns).count("-j f2b-sshd") == 1


IPSET_OK = IPT_OK and shutil.which("ipset")


def ns_out(ns, *cmd):
    import subprocess
    return subprocess.run(["ip", "netns", "exec", ns] + list(cmd), capture_output=True,
                          text=True).stdout


def ipset_members(ns, name):
    out = ns_out(ns, "ipset", "list", name)
    return out.split("Members:\n", 1)[1] if "Members:\n" in out else ""


@pytest.mark.skipif(not IPSET_OK, reason="needs root, ip, nft, ipset and iptables (network namespace)")
def test_ipset_native(tmp_path, made, netns):
    import subprocess
    d = Daemon(tmp_path, netns=netns, extra=(
        "action = iptables-ipset-proto6[name=sshd, port=\"ssh,smtp\", protocol=tcp]\n"))
    made.append(d)
    d.start(backend="nftables")
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(lambda: ATTACKER + " timeout " in ipset_members(netns, "f2b-sshd"), what="the element")
    # the element carries the ban's remaining time (bantime 1h)
    t = int(ipset_members(netns, "f2b-sshd").split(ATTACKER + " timeout ")[1].split()[0])
    assert 3500 < t <= 3600
    save = ns_out(netns, "iptables-save", "-t", "filter")
    assert ("-A INPUT -p tcp -m multiport --dports 22,25 -m set --match-set f2b-sshd src -j DROP"
            in save)
    assert save.count("--match-set f2b-sshd src") == 1
    assert "f2b-sshd6" not in ns_out(netns, "ipset", "list", "-n")  # IPv6 set made on demand
    assert d.cli("ban", "sshd", "2001:db8::5").stdout.strip() == "1"
    poll(lambda: "2001:db8::5 timeout" in ipset_members(netns, "f2b-sshd6"), what="v6 element")
    assert "--match-set f2b-sshd6 src" in ns_out(netns, "ip6tables-save", "-t", "filter")
    assert d.cli("unban", ATTACKER).stdout.strip() == "1"
    poll(lambda: ATTACKER not in ipset_members(netns, "f2b-sshd"), what="the element removed")
    # many addresses in one call: one libipset batch
    many = ["11.0.%d.%d" % (i >> 8, i & 255) for i in range(1000)]
    assert d.cli("ban", "sshd", *many).stdout.strip() == "1000"
    poll(lambda: ipset_members(netns, "f2b-sshd").count(" timeout ") == 1000, what="1000 elements")
    # someone flushes INPUT: the periodic check puts the rule back, once
    subprocess.run(["ip", "netns", "exec", netns, "iptables", "-F", "INPUT"], check=True)
    poll(lambda: "--match-set f2b-sshd src" in ns_out(netns, "iptables-save"), timeout=15,
         what="the rule restored")
    assert ns_out(netns, "iptables-save").count("--match-set f2b-sshd src") == 1
    # kill -9, the set destroyed: a restart rebuilds it from state
    d.kill()
    subprocess.run(["ip", "netns", "exec", netns, "iptables", "-F", "INPUT"], check=True)
    subprocess.run(["ip", "netns", "exec", netns, "ipset", "destroy", "f2b-sshd"], check=True)
    d.start(backend="nftables")
    assert ipset_members(netns, "f2b-sshd").count(" timeout ") == 1000
    assert "2001:db8::5 timeout" in ipset_members(netns, "f2b-sshd6")
    assert ns_out(netns, "iptables-save").count("--match-set f2b-sshd src") == 1
    assert ns_out(netns, "ip6tables-save").count("--match-set f2b-sshd6 src") == 1


def routes(ns, kind, six=False):
    return ns_out(ns, "ip", "-6" if six else "-4", "route", "show", "type", kind)


@pytest.mark.skipif(not NS_OK, reason="needs root, nft and ip (network namespace)")
def test_route_native(tmp_path, made, netns):
    import subprocess
    d = Daemon(tmp_path, netns=netns, extra=(
        "action = route\n\n"
        "[sshd-bh]\nenabled = true\nfilter = sshd\nlogpath = %s\nbackend = polling\n"
        "action = route[blocktype=blackhole]\n" % str(tmp_path / "other.log")))
    made.append(d)
    d.start(backend="nftables")
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(lambda: ATTACKER in routes(netns, "unreachable"), what="the unreachable route")
    assert d.cli("ban", "sshd-bh", OTHER).stdout.strip() == "1"
    poll(lambda: OTHER in routes(netns, "blackhole"), what="the blackhole route")
    assert d.cli("ban", "sshd", "2001:db8::5").stdout.strip() == "1"
    poll(lambda: "2001:db8::5" in routes(netns, "unreachable", six=True), what="the v6 route")
    # the kernel drops what goes there: a connect to it fails at once
    r = subprocess.run(["ip", "netns", "exec", netns, "ping", "-c1", "-W1", "2001:db8::5"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert d.cli("unban", "sshd", ATTACKER).stdout.strip() == "1"
    poll(lambda: ATTACKER not in routes(netns, "unreachable"), what="the route removed")
    assert OTHER in routes(netns, "blackhole")  # the other jail's ban stays
    many = ["11.0.%d.%d" % (i >> 8, i & 255) for i in range(1000)]
    assert d.cli("ban", "sshd", *many).stdout.strip() == "1000"
    poll(lambda: routes(netns, "unreachable").count("\n") == 1000, what="1000 routes")
    # routes flushed by someone: the periodic check puts them back
    subprocess.run(["ip", "netns", "exec", netns, "ip", "route", "flush", "type", "unreachable"],
                   check=True)
    poll(lambda: routes(netns, "unreachable").count("\n") == 1000, timeout=20,
         what="the routes restored")
    # kill -9 and restart in the same namespace: nothing doubled, nothing lost
    d.kill()
    d.start(backend="nftables")
    assert routes(netns, "unreachable").count("\n") == 1000
    assert "2001:db8::5" in routes(netns, "unreachable", six=True)
    assert OTHER in routes(netns, "blackhole")
    assert d.cli("unban", "--all").returncode == 0
    poll(lambda: not routes(netns, "unreachable").strip(), what="every route removed")
    assert not routes(netns, "blackhole").strip()
