"""test_own_actions - the command actions shipped in mxjail's own etc/action.d.

`mxjail run --backend null` on a copy of etc/ with one jail on a temp log:
  - dummy[target=...] records start and ban lines, then on SIGTERM one unban
    line per live ban and a stop line;
  - action = %(action_mwl)s (a native banaction plus sendmail-whois-lines)
    mails start, ban and stop through a fake sendmail set in
    sendmail-common.local; the ban mail carries the address, the failure count,
    the output of a fake whois and the matched log lines.  With `whois =` or a
    whois that is not installed the mail still goes out; %(action_mw)s sends
    the same mail without the log lines.
Nothing here touches the network or anything outside the temp dir; each
daemon is stopped by its PID.
"""
import os
import signal
import stat

import pytest

from test_daemon import ATTACKER, Daemon, poll, syslog_line

BIN = os.environ.get("MXJAIL_BIN")

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="MXJAIL_BIN not set")


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, stat.S_IRWXU)
    return path


@pytest.fixture
def made():
    ds = []
    yield ds
    for d in ds:
        d.kill()


def stop(d):
    os.kill(d.proc.pid, signal.SIGTERM)
    d.proc.wait(timeout=40)
    assert d.proc.returncode == 0, d.proc.stderr.read()


def test_dummy_records_lifecycle(tmp_path, made):
    target = str(tmp_path / "sub" / "dummy.out")
    d = Daemon(tmp_path, extra="action = dummy[target=\"%s\"]\n" % target)
    made.append(d)
    d.start()
    poll(lambda: read(target) == "start sshd\n", what="start line")
    d.append(*[syslog_line(ATTACKER)] * 3)
    poll(lambda: "ban %s\n" % ATTACKER in read(target), what="ban line")
    assert d.cli("ban", "sshd", "2001:db8::5").stdout.strip() == "1"
    poll(lambda: "ban 2001:db8::5\n" in read(target), what="manual ban line")
    stop(d)
    lines = read(target).splitlines()
    assert lines[0] == "start sshd"
    assert lines[-1] == "stop sshd", lines
    # no actionflush: every live ban is unbanned on its own before the stop
    assert sorted(lines[-3:-1]) == sorted(["unban %s" % ATTACKER, "unban 2001:db8::5"]), lines
    assert len(lines) == 6, lines


def test_dummy_target_per_jail(tmp_path, made):
    # the stock target is /run/mxjail/dummy-<name>.log; a .local with the same
    # form shows <name> resolves inside [Init]
    d = Daemon(tmp_path, extra="action = dummy\n")
    with open(os.path.join(d.conf, "action.d", "dummy.local"), "w") as f:
        f.write("[Init]\ntarget = %s/dummy-<name>.log\n" % d.tmp)
    made.append(d)
    d.start()
    target = os.path.join(d.tmp, "dummy-sshd.log")
    poll(lambda: read(target) == "start sshd\n", what="start line")
    stop(d)
    assert read(target) == "start sshd\nstop sshd\n"


def mail_setup(tmp_path, whois_local, action="action_mwl"):
    mailbox = str(tmp_path / "mailbox")
    fake = script(str(tmp_path / "sendmail"),
                  "{ echo \"ARGS: $*\"; cat; echo '--END--'; } >> '%s'\n" % mailbox)
    d = Daemon(tmp_path, extra=(
        "destemail = admin@example.org\nsender = mx@example.org\n"
        "action = %%(%s)s\n" % action))
    with open(os.path.join(d.conf, "action.d", "sendmail-common.local"), "w") as f:
        f.write('[Init]\nmailcmd = %s -f "<sender>" "<dest>"\n' % fake)
    with open(os.path.join(d.conf, "action.d", "sendmail-whois.local"), "w") as f:
        f.write("[Init]\n%s\n" % whois_local)
    return d, mailbox


def ban_mail(d, mailbox):
    """Three failures, one with shell syntax in the user name; the ban mail."""
    pwned = os.path.join(d.tmp, "PWNED")
    hostile = "x$(touch %s)`touch %s` \\n %%s" % (pwned, pwned)
    d.append(syslog_line(ATTACKER), syslog_line(ATTACKER),
             syslog_line(ATTACKER, user="invalid user " + hostile))
    key = "banned %s" % ATTACKER

    def found():
        done = read(mailbox).split("--END--\n")[:-1]
        return next((m for m in done if key in m), None)
    return poll(found, timeout=30, what="ban mail"), hostile


def test_action_mwl_mails_through_mailcmd(tmp_path, made):
    whois = script(str(tmp_path / "fakewhois"), "echo \"FAKE-WHOIS netname for $1\"\n")
    d, mailbox = mail_setup(tmp_path, "whois = %s" % whois)
    made.append(d)
    d.start()
    poll(lambda: "sshd: started on" in read(mailbox), what="start mail")
    mail, hostile = ban_mail(d, mailbox)
    assert "ARGS: -f mx@example.org admin@example.org" in mail
    assert "From: mxjail <mx@example.org>" in mail
    assert "To: admin@example.org" in mail
    assert "Address %s was banned by jail sshd after 3 failures." % ATTACKER in mail
    assert "FAKE-WHOIS netname for %s" % ATTACKER in mail
    assert mail.count("Failed password for root from %s" % ATTACKER) == 2
    # a log line is data: printed verbatim, never run, no escape processing
    assert hostile in mail
    assert not os.path.exists(os.path.join(d.tmp, "PWNED"))
    head, body = mail.split("\n\n", 1)
    assert "Subject: [mxjail] sshd: banned %s on " % ATTACKER in head
    stop(d)
    assert "sshd: stopped on" in read(mailbox)
    assert read(mailbox).count("--END--") == 3


@pytest.mark.parametrize("whois_local,note", [
    ("whois =", "(whois lookup turned off)"),
    ("whois = /nonexistent/whois", "(whois lookup skipped: /nonexistent/whois is not installed)"),
])
def test_action_mwl_without_whois(tmp_path, made, whois_local, note):
    d, mailbox = mail_setup(tmp_path, whois_local)
    made.append(d)
    d.start()
    mail, _ = ban_mail(d, mailbox)
    assert note in mail
    assert mail.count("Failed password for root from %s" % ATTACKER) == 2
    stop(d)


def test_action_mw_has_no_log_lines(tmp_path, made):
    whois = script(str(tmp_path / "fakewhois"), "echo \"FAKE-WHOIS netname for $1\"\n")
    d, mailbox = mail_setup(tmp_path, "whois = %s" % whois, action="action_mw")
    made.append(d)
    d.start()
    mail, _ = ban_mail(d, mailbox)
    assert "Address %s was banned by jail sshd after 3 failures." % ATTACKER in mail
    assert "FAKE-WHOIS netname for %s" % ATTACKER in mail
    assert "Failed password" not in mail
    stop(d)
    assert "sshd: stopped on" in read(mailbox)
