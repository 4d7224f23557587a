"""test_report - end-to-end tests of `mxjail report`.

- The 100k-line generated mail log (bench/gen_maillog.py --seed 7, the same
  generator as ../shared/tools/gen_maillog.py) through mxjail's own filters
  (postfix aggressive, dovecot, sshd): every attack kind's line count and
  distinct addresses agree with the generator's ground truth, and so does the
  number of distinct attacking addresses.
- --json is one document with a checked schema; the text report has every
  section; --html is one self-contained file whose SVG charts headless
  Chromium renders (DOM checked through --dump-dom; a screenshot is kept in
  artifacts/ under the build directory for CI).
- GeoIP through a tiny MaxMind-format database written here (mmdb section
  below), --since, ban notices from mxjail's own log, policy lines, bad
  input (NUL bytes, invalid UTF-8, a 1 MB line), and the state database of a
  real `mxjail run` (null firewall backend).
"""
import calendar
import html.parser
import ipaddress
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

# ---------------------------------------------------------------- mmdb
# A tiny MaxMind DB (format 2.0) writer, so the GeoIP path is tested without
# a real database: an IPv6 tree (IPv4 networks at ::a.b.c.d/96+n, where
# libmaxminddb looks them up), 24-bit records, maps of strings and integers.


def mmdb_ctrl(type_, size):
    out = bytearray()
    if size < 29:
        s, extra = size, b""
    elif size < 285:
        s, extra = 29, bytes([size - 29])
    elif size < 65821:
        s, extra = 30, struct.pack(">H", size - 285)
    else:
        s, extra = 31, struct.pack(">I", size - 65821)[1:]
    if type_ <= 7:
        out.append((type_ << 5) | s)
    else:
        out.append(s)
        out.append(type_ - 7)
    return bytes(out) + extra


def mmdb_encode(v):
    if isinstance(v, str):
        b = v.encode()
        return mmdb_ctrl(2, len(b)) + b
    if isinstance(v, dict):
        out = mmdb_ctrl(7, len(v))
        for k, x in v.items():
            out += mmdb_encode(k) + mmdb_encode(x)
        return out
    if isinstance(v, list):
        out = mmdb_ctrl(11, len(v))
        for x in v:
            out += mmdb_encode(x)
        return out
    if isinstance(v, tuple):           # ("u16", n), ("u64", n)
        kind, n = v
        width = {"u16": 2, "u32": 4, "u64": 8}[kind]
        b = n.to_bytes(width, "big").lstrip(b"\0")
        return mmdb_ctrl({"u16": 5, "u32": 6, "u64": 9}[kind], len(b)) + b
    if isinstance(v, int):
        return mmdb_encode(("u32", v))
    raise TypeError(v)


def mmdb_write(path, networks):
    """networks: list of (cidr, data dict)."""
    data = bytearray()
    offsets = []
    for _, d in networks:
        offsets.append(len(data))
        data += mmdb_encode(d)
    nodes = [[None, None]]
    for (cidr, _), off in zip(networks, offsets):
        net = ipaddress.ip_network(cidr)
        if net.version == 4:
            bits, plen = int(net.network_address), 96 + net.prefixlen
        else:
            bits, plen = int(net.network_address), net.prefixlen
        node = 0
        for i in range(plen):
            bit = (bits >> (127 - i)) & 1
            if i == plen - 1:
                nodes[node][bit] = ("data", off)
                break
            nxt = nodes[node][bit]
            if nxt is None:
                nodes.append([None, None])
                nxt = len(nodes) - 1
                nodes[node][bit] = nxt
            node = nxt
    n = len(nodes)
    tree = bytearray()
    for left, right in nodes:
        for rec in (left, right):
            if rec is None:
                val = n
            elif isinstance(rec, tuple):
                val = n + 16 + rec[1]
            else:
                val = rec
            tree += val.to_bytes(3, "big")
    meta = {
        "binary_format_major_version": ("u16", 2),
        "binary_format_minor_version": ("u16", 0),
        "build_epoch": ("u64", 1700000000),
        "database_type": "mxjail-test-Country-ASN",
        "description": {"en": "mxjail test data"},
        "ip_version": ("u16", 6),
        "languages": ["en"],
        "node_count": ("u32", n),
        "record_size": ("u16", 24),
    }
    with open(path, "wb") as f:
        f.write(bytes(tree) + b"\0" * 16 + bytes(data) + b"\xab\xcd\xefMaxMind.com" + mmdb_encode(meta))


# ---------------------------------------------------------------- set-up

BIN = os.environ.get("MXJAIL_BIN", "build/mxjail")
SRC = os.environ.get("MXJAIL_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
ARTIFACTS = os.environ.get("MXJAIL_ARTIFACTS") or os.path.join(os.getcwd(), "artifacts")

pytestmark = pytest.mark.skipif(not os.path.exists(BIN), reason="MXJAIL_BIN not built")

# 2025-03-01 00:00:00 UTC: the generator's year-less dates read as 2025 with
# the clock set a few months later.
T0 = 1740787200
NOW = T0 + 200 * 86400

# generator kind -> the report's kinds. pf_warn_noresolve is a "context" line
# for fail2ban 1.0.2 but mxjail's postfix aggressive mode matches it, as
# fail2ban 1.1 does; dovecot's "unknown user" kind also covers "Password
# mismatch", which the report names apart.
KIND_MAP = {
    "pf_sasl_fail": ["sasl_auth_failed"],
    "pf_lost_after_auth": ["lost_after_auth"],
    "pf_disconnect_authfail": ["auth_disconnect"],
    "pf_relay_denied": ["relay_denied"],
    "pf_nohostname": ["no_rdns"],
    "pf_lost_after_connect": ["lost_after_connect"],
    "pf_warn_noresolve": ["rdns_mismatch"],
    "dc_auth_unknown": ["mail_unknown_user", "mail_password_mismatch"],
    "dc_auth_pam": ["mail_pam_failure"],
    "dc_login_authfail": ["mail_login_failed"],
    "ssh_invalid_user": ["ssh_invalid_user"],
    "ssh_failed_password": ["ssh_failed_password"],
}

JAIL_LOCAL = """[postfix]
enabled = true
mode = aggressive

[dovecot]
enabled = true

[sshd]
enabled = true
"""


def report(args, check=True, timeout=300):
    env = dict(os.environ, TZ="UTC")
    r = subprocess.run([BIN, "report"] + [str(a) for a in args], capture_output=True,
                       text=True, env=env, timeout=timeout)
    if check:
        assert r.returncode == 0, "report %s: rc %d\n%s" % (args, r.returncode, r.stderr)
    return r


def conf_tree(path, local=JAIL_LOCAL):
    shutil.copytree(os.path.join(SRC, "etc"), path,
                    ignore=shutil.ignore_patterns("mxjail.service*"))
    (path / "jail.local").write_text(local)
    return path


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    log, truth = d / "mail.log", d / "truth.json"
    subprocess.run([sys.executable, os.path.join(SRC, "bench", "gen_maillog.py"), "--seed", "7",
                    "-n", "100000", "-o", str(log), "--truth", str(truth)], check=True,
                   timeout=300)
    conf = conf_tree(d / "conf")
    js = json.loads(report(["-c", conf, "--now", NOW, "--json", log]).stdout)
    return {"dir": d, "log": log, "conf": conf, "truth": json.loads(truth.read_text()),
            "json": js}


# ---------------------------------------------------------------- ground truth

def test_counts_match_ground_truth(gen):
    truth, d = gen["truth"], gen["json"]
    kinds = d["kinds"]
    expected_failures = 0
    for kind, t in truth["kinds"].items():
        if kind not in KIND_MAP:
            assert t["class"] != "attack", "attack kind %s has no report kind" % kind
            continue
        ours = [kinds.get(k, {"lines": 0, "distinct_addresses": 0}) for k in KIND_MAP[kind]]
        lines = sum(o["lines"] for o in ours)
        assert lines == t["lines"], "%s: %d lines, truth %d" % (kind, lines, t["lines"])
        expected_failures += t["lines"]
        if len(ours) == 1:
            assert ours[0]["distinct_addresses"] == t["distinct_ips"], kind
        else:
            # the same address may have tried both: between the largest and the sum
            assert max(o["distinct_addresses"] for o in ours) <= t["distinct_ips"] <= \
                sum(o["distinct_addresses"] for o in ours), kind
    mapped = {k for v in KIND_MAP.values() for k in v}
    assert set(kinds) <= mapped, "unexpected kinds %s" % (set(kinds) - mapped)
    assert d["failures"] == expected_failures
    assert d["distinct_addresses"] == truth["distinct_attacker_ips"]
    exp = truth["expected_matched_lines"]["fail2ban-1.0.2"]
    jails = {j["name"]: j for j in d["jails"]}
    assert jails["postfix"]["failures"] == exp["postfix[mode=aggressive]"] + \
        truth["kinds"]["pf_warn_noresolve"]["lines"]
    assert jails["dovecot"]["failures"] == exp["dovecot"]
    assert jails["sshd"]["failures"] == exp["sshd"]


def test_json_schema(gen):
    d = gen["json"]
    for key, typ in (("report_version", int), ("lines", int), ("failures", int),
                     ("distinct_addresses", int), ("distinct_networks", int),
                     ("truncated", bool), ("notes", list), ("kinds", dict), ("jails", list),
                     ("services", dict), ("hourly", list), ("top_addresses", list),
                     ("top_networks", list), ("users", dict), ("relay_spoof", dict),
                     ("policy", dict), ("bans", dict), ("countries", list), ("asns", list),
                     ("sources", list)):
        assert isinstance(d[key], typ), key
    assert d["lines"] == 100000 and d["truncated"] is False
    assert d["sources"] == [str(gen["log"])]
    assert d["first"] <= d["last"] and d["first"] >= T0
    for name, k in d["kinds"].items():
        assert set(k) >= {"label", "service", "lines", "distinct_addresses", "first", "last"}
        assert 0 < k["distinct_addresses"] <= k["lines"] and k["first"] <= k["last"]
    assert sum(d["services"].values()) == d["failures"]
    names = {j["name"] for j in d["jails"]}
    per_jail = {}
    for h in d["hourly"]:
        assert h["hour"] % 3600 == 0 and h["jail"] in names and h["count"] > 0
        per_jail[h["jail"]] = per_jail.get(h["jail"], 0) + h["count"]
    for j in d["jails"]:
        assert per_jail.get(j["name"], 0) == j["failures"]
        assert set(j["bans"]) == {"state", "log", "estimated"}
    tops = d["top_addresses"]
    assert len(tops) == 20
    assert [a["count"] for a in tops] == sorted((a["count"] for a in tops), reverse=True)
    for a in tops:
        assert set(a["kinds"]) <= set(d["kinds"]) and set(a["jails"]) <= names
        assert a["first"] <= a["last"] and a["network"].endswith(("/24", "/64"))
    assert tops[0]["count"] >= d["top_networks"][0]["count"] / d["top_networks"][0]["addresses"]
    for n in d["top_networks"]:
        assert n["network"].endswith(("/24", "/64")) and n["addresses"] >= 1
    users = d["users"]
    assert users["distinct"] > 0 and users["top"]
    assert [u["count"] for u in users["top"]] == sorted((u["count"] for u in users["top"]),
                                                        reverse=True)
    # the generator's dictionary: every ssh and dovecot attempt names one of these
    assert {"admin", "root", "test"} & {u["user"].split("@")[0] for u in users["top"]}
    rs = d["relay_spoof"]
    assert rs["relay_denied"] == d["kinds"]["relay_denied"]["lines"]
    assert 0 < sum(t["count"] for t in rs["top_relay_targets"]) <= rs["relay_denied"]
    assert d["policy"]["state"] is None
    b = d["bans"]
    assert b["total"] == sum(b["by_source"].values()) and b["by_source"]["estimated"] > 0
    assert b["by_source"]["state"] == 0 and b["banned_now"] == 0
    # only estimates here: they make the repeat offenders
    assert b["repeat_offenders"] > 0
    assert b["top_repeat_offenders"][0]["bans"] == 0
    assert b["top_repeat_offenders"][0]["estimated_bans"] >= 2
    if d["geoip"] is None:
        assert d["countries"] == [] and d["asns"] == []


def test_text_sections(gen):
    out = report(["-c", gen["conf"], "--now", NOW, gen["log"]]).stdout
    for heading in ("Attacks by kind", "Jails", "Services", "Attacks per day", "Top addresses",
                    "Top networks", "User names tried", "Relay and spoof attempts",
                    "Greylisting and rate limits", "Bans:"):
        assert heading in out, heading
    assert "sasl_auth_failed" in out
    top = gen["json"]["top_addresses"][0]
    assert top["address"] in out
    if gen["json"]["geoip"] is None:
        # no GeoIP database: no country column
        assert " CC " not in out and "GeoIP" not in out


# ---------------------------------------------------------------- HTML in Chromium

class SvgCounter(html.parser.HTMLParser):
    """Counts rect.bar per svg id, and anything that would fetch."""

    def __init__(self):
        super().__init__()
        self.svg = None
        self.bars = {}
        self.fetching = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svg = a.get("id")
            self.bars.setdefault(self.svg, 0)
        elif tag == "rect" and "bar" in (a.get("class") or "").split() and self.svg:
            self.bars[self.svg] += 1
        if tag in ("script", "link", "img", "iframe") or "src" in a or "href" in a:
            self.fetching.append(tag)

    def handle_endtag(self, tag):
        if tag == "svg":
            self.svg = None


def chromium():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_html_renders_in_chromium(gen, tmp_path):
    page = gen["dir"] / "report.html"
    r = report(["-c", gen["conf"], "--now", NOW, "--html", page, gen["log"]])
    assert r.stdout == ""
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # self-contained: the only URL is the SVG namespace
    assert "https://" not in text and text.count("http://") == text.count(
        "http://www.w3.org/2000/svg")
    own = SvgCounter()
    own.feed(text)
    assert not own.fetching
    d = gen["json"]
    assert own.bars["timeline"] == len(d["hourly"])
    assert own.bars["top-addresses"] == 20
    assert own.bars["services"] == len(d["services"])
    assert own.bars["kinds"] == len(d["kinds"])
    if d["geoip"] is None:
        assert "<th>country</th>" not in text
    browser = chromium()
    if not browser:
        pytest.skip("chromium is not installed (setup.sh installs it)")
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--user-data-dir=%s" % (tmp_path / "chromium")]
    dom = subprocess.run(base + ["--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    seen = SvgCounter()
    seen.feed(dom.stdout)
    for chart in ("timeline", "kinds", "services", "top-addresses", "top-networks",
                  "top-users"):
        assert seen.bars.get(chart, 0) == own.bars[chart] > 0, chart
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "report.png")
    if os.path.exists(shot):
        os.unlink(shot)
    s = subprocess.run(base + ["--screenshot=%s" % shot, "--window-size=1280,2000",
                               page.as_uri()], capture_output=True, text=True, timeout=180)
    assert s.returncode == 0, s.stderr[-2000:]
    assert os.path.getsize(shot) > 10000
    shutil.copy(page, os.path.join(ARTIFACTS, "report.html"))


# ---------------------------------------------------------------- GeoIP

def test_geoip_countries_and_asns(gen, tmp_path):
    db = tmp_path / "test.mmdb"
    mmdb_write(db, [
        ("192.0.2.0/24", {"country": {"iso_code": "NL"}, "autonomous_system_number": 64500,
                          "autonomous_system_organization": "Doc Net <One>"}),
        ("198.51.100.0/24", {"country": {"iso_code": "JP"}}),
        ("2001:db8::/32", {"country": {"iso_code": "DE"}, "autonomous_system_number": 64501,
                           "autonomous_system_organization": "Doc Six"}),
    ])
    d = json.loads(report(["-c", gen["conf"], "--now", NOW, "--geoip", db, "--json", "--top",
                           "100000", gen["log"]]).stdout)
    assert d["geoip"] == str(db)
    countries = {c["country"]: c for c in d["countries"]}
    assert set(countries) == {"NL", "JP", "DE"}
    nets = {n["network"]: n for n in d["top_networks"]}
    assert countries["NL"]["addresses"] == nets["192.0.2.0/24"]["addresses"]
    assert countries["NL"]["count"] == nets["192.0.2.0/24"]["count"]
    assert countries["JP"]["addresses"] == nets["198.51.100.0/24"]["addresses"]
    six = [a for a in d["top_addresses"] if a["address"].startswith("2001:db8:")]
    assert countries["DE"]["addresses"] == len(six)
    for a in d["top_addresses"]:
        want = {"192.0.2.": "NL", "198.51.100.": "JP", "2001:db8:": "DE"}
        cc = next((v for k, v in want.items() if a["address"].startswith(k)), None)
        assert a.get("country") == cc, a
        if cc == "NL":
            assert a["asn"] == 64500 and a["as_org"] == "Doc Net <One>"
    asns = {x["asn"]: x for x in d["asns"]}
    assert asns["AS64501"]["organisation"] == "Doc Six"
    page = tmp_path / "geo.html"
    report(["-c", gen["conf"], "--now", NOW, "--geoip", db, "--html", page, gen["log"]])
    text = page.read_text()
    assert 'id="countries"' in text and "Doc Net &lt;One&gt;" in text
    assert "<th>country</th>" in text
    out = report(["-c", gen["conf"], "--now", NOW, "--geoip", db, gen["log"]]).stdout
    assert "GeoIP: %s" % db in out and " CC " in out and "\nCountries\n" in out
    r = report(["-c", gen["conf"], "--geoip", tmp_path / "missing.mmdb", gen["log"]],
               check=False)
    assert r.returncode != 0 and "missing.mmdb" in r.stderr


# ---------------------------------------------------------------- options, small logs

def test_since_keeps_the_last_day(gen):
    last = calendar.timegm(time.strptime("2025 " + gen["truth"]["last_timestamp"],
                                         "%Y %b %d %H:%M:%S"))
    d = json.loads(report(["-c", gen["conf"], "--now", last + 60, "--since", "1d", "--json",
                           gen["log"]]).stdout)
    assert 0 < d["failures"] < gen["json"]["failures"]
    assert d["skipped_before_since"] + d["failures"] == gen["json"]["failures"]
    assert d["first"] >= last + 60 - 86400
    assert all(h["hour"] >= last + 60 - 86400 - 3600 for h in d["hourly"])
    r = report(["-c", gen["conf"], "--since", "yesterday", gen["log"]], check=False)
    assert r.returncode == 2 and "--since" in r.stderr


def test_ban_notices_policy_lines_and_bad_input(tmp_path):
    # 203.0.113.6 is ignored by the jail: no attack, counted as ignored
    conf = conf_tree(tmp_path / "conf", JAIL_LOCAL + "ignoreip = 127.0.0.1/8 ::1 203.0.113.6\n")
    log = tmp_path / "mixed.log"
    ssh = "Mar  1 10:00:%02d mx1 sshd[42]: Failed password for invalid user %s from %s port 4 ssh2\n"
    with open(log, "wb") as f:
        f.write(b"2025-03-01 10:00:00,123 mxjail[7]: NOTICE  [sshd] Ban 192.0.2.7\n")
        f.write(b"2025-03-01 11:00:00,123 fail2ban.actions        [9]: NOTICE  [sshd] "
                b"Restore Ban 192.0.2.7\n")
        f.write(b"2025-03-01 11:00:00,124 mxjail[7]: NOTICE  [sshd] Increase Ban 192.0.2.7 "
                b"(2 # 1200 s)\n")
        f.write(b"2025-03-01 12:00:00,123 mxjail[7]: NOTICE  [postfix] Ban 2001:db8::5\n")
        f.write(b"2025-03-01 12:00:01,123 mxjail[7]: NOTICE  [postfix] Unban 2001:db8::5\n")
        f.write(b"Mar  1 10:00:00 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from "
                b"unknown[198.51.100.9]: 450 4.2.0 <a@example.org>: Recipient address "
                b"rejected: Greylisted, please retry in 300 seconds; from=<x@example.com> "
                b"to=<a@example.org> proto=ESMTP helo=<x>\n")
        f.write(b"\0\0\0 binary \xff\xfe garbage\n")
        f.write(b"Mar  1 10:00:01 mx1 sshd[42]: " + b"A" * (1 << 20) + b"\n")
        f.write((ssh % (2, "r\u00f6ot", "203.0.113.5")).encode())
        f.write(b"Mar  1 10:00:03 mx1 sshd[42]: Failed password for invalid user \xff\x01x "
                b"from 203.0.113.5 port 4 ssh2\r\n")
        f.write((ssh % (4, "admin", "203.0.113.6")).encode())
    d = json.loads(report(["-c", conf, "--now", NOW, "--jail", "sshd", "--json", log]).stdout)
    assert d["failures"] == 2 and d["distinct_addresses"] == 3   # .5 and two banned
    assert d["kinds"]["ssh_failed_password"]["lines"] == 2
    assert d["jails"][0]["name"] == "sshd" and d["jails"][0]["ignored"] == 1
    assert d["bans"]["by_source"]["log"] == 3
    assert d["bans"]["repeat_offenders"] == 1
    # 203.0.113.5 was banned once; the estimate over the log is the same ban
    assert d["bans"]["repeat_offenders"] == 1
    assert d["bans"]["top_repeat_offenders"][0]["address"] == "192.0.2.7"
    assert d["bans"]["top_repeat_offenders"][0]["bans"] == 2
    assert d["policy"]["log"]["greylisted"] == 1
    users = {u["user"] for u in d["users"]["top"]}
    assert "admin" not in users and "r\u00f6ot" in users
    assert all(0x20 <= ord(c) for u in users for c in u)
    # the text and HTML formats take the same garbage
    assert "Bans: " in report(["-c", conf, "--now", NOW, "--jail", "sshd", log]).stdout
    report(["-c", conf, "--now", NOW, "--jail", "sshd", "--html", tmp_path / "x.html", log])
    assert "\xff" not in (tmp_path / "x.html").read_text(errors="replace").replace("\ufffd", "")


def test_logs_are_read_oldest_first(tmp_path):
    conf = conf_tree(tmp_path / "conf")
    line = "Mar  1 10:00:%02d mx1 sshd[42]: Failed password for root from 192.0.2.%d port 4 ssh2\n"
    old, new = tmp_path / "auth.log.1", tmp_path / "auth.log"
    old.write_text("".join(line % (i, 10) for i in range(5)))
    new.write_text("".join(line % (30 + i, 10) for i in range(5)))
    os.utime(old, (T0, T0))
    d = json.loads(report(["-c", conf, "--now", NOW, "--jail", "sshd", "--json", new, old]).stdout)
    assert d["sources"] == [str(old), str(new)]
    assert d["failures"] == 10 and d["lines"] == 10
    # maxretry 5 within findtime: one estimated ban per file's burst, none doubled
    assert d["bans"]["by_source"]["estimated"] == 1


def test_audit_findings(gen, tmp_path):
    d = json.loads(report(["-c", gen["conf"], "--now", NOW, "--audit", "--json", "--top", "1",
                           gen["log"]]).stdout)
    a = d["audit"]
    assert isinstance(a["score"], int) and 0 <= a["score"] <= 100
    assert isinstance(a["findings"], list)
    for f in a["findings"]:
        assert {"id", "severity", "why", "fix"} <= set(f)
    assert gen["json"]["audit"] is None
    out = report(["-c", gen["conf"], "--now", NOW, "--audit", "--top", "1", gen["log"]]).stdout
    assert "What the audit flags (mxjail audit)" in out and "score: " in out
    page = tmp_path / "audit.html"
    report(["-c", gen["conf"], "--now", NOW, "--audit", "--top", "1", "--html", page, gen["log"]])
    assert '<pre id="audit">' in page.read_text()


def test_usage_errors(tmp_path):
    conf = conf_tree(tmp_path / "conf")
    for args in (["--json", "--html", tmp_path / "x"], ["--top", "0"], ["--now", "soon"],
                 ["--jail", "nosuchjail", "/dev/null"]):
        r = report(["-c", conf] + args, check=False)
        assert r.returncode != 0, args
    r = report(["-c", conf, "--now", NOW, "--json", tmp_path / "missing.log"], check=False)
    assert r.returncode == 1 and "missing.log" in r.stderr
    json.loads(r.stdout)
    # no log and an empty state directory: an empty report, not an error
    d = json.loads(report(["-c", conf, "--state", tmp_path / "none", "--json"]).stdout)
    assert d["failures"] == 0 and any("no state database" in n for n in d["notes"])
    # a database the store cannot use is reported, never moved aside or changed
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "mxjail.sqlite3").write_bytes(b"not a database\0" * 100)
    d = json.loads(report(["-c", conf, "--state", bad, "--json"]).stdout)
    assert any("cannot be read (left untouched)" in n for n in d["notes"])
    assert os.listdir(bad) == ["mxjail.sqlite3"]
    assert (bad / "mxjail.sqlite3").read_bytes() == b"not a database\0" * 100


# ---------------------------------------------------------------- state of a real daemon

def _ssh_line(addr, t):
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(t))
    return "%s mx sshd[4242]: Failed password for root from %s port 52144 ssh2\n" % (stamp, addr)


def test_state_of_a_running_daemon(tmp_path):
    conf = conf_tree(tmp_path / "conf", "")
    state, sock = tmp_path / "state", tmp_path / "run" / "mxjail.sock"
    authlog, out = tmp_path / "auth.log", tmp_path / "mxjail.log"
    authlog.write_text("")
    (conf / "jail.local").write_text(
        "[sshd]\nenabled = true\nlogpath = %s\nbackend = polling\nmaxretry = 3\n"
        "findtime = 10m\nbantime = 1h\n" % authlog)
    # the policy service too, for its greylist and rate-limit state
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    (conf / "mxjail.conf").write_text(
        "[policy]\nenabled = yes\nlisten = inet:127.0.0.1:%d\nchecks = ratelimit greylist\n"
        "[greylist]\ndelay = 300\nwhitelist_clients =\nwhitelist_recipients =\n"
        "[ratelimit]\nc = client_address: 1 requests / 1h\n" % port)
    proc = subprocess.Popen([BIN, "run", "-f", "-c", conf, "--state", state, "--socket", sock,
                             "--logtarget", out, "--loglevel", "INFO", "--backend", "null"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def cli(*args):
        return subprocess.run([BIN] + [str(a) for a in args] + ["--socket", sock],
                              capture_output=True, text=True, timeout=20)

    def wait(fn, what):
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                raise AssertionError("mxjail run exited: %s" % proc.stderr.read())
            if fn():
                return
            time.sleep(0.05)
        raise AssertionError("timed out: " + what)

    try:
        wait(lambda: cli("ping").returncode == 0, "daemon answers")
        assert cli("ban", "sshd", "192.0.2.7").returncode == 0
        assert cli("unban", "sshd", "192.0.2.7").returncode == 0
        assert cli("ban", "sshd", "192.0.2.7").returncode == 0
        assert cli("ban", "sshd", "198.51.100.23").returncode == 0
        # banned and unbanned, never in the log: only the store's history has it
        assert cli("ban", "sshd", "198.51.100.99").returncode == 0
        assert cli("unban", "sshd", "198.51.100.99").returncode == 0
        now = time.time()
        with open(authlog, "a") as f:
            f.write("".join(_ssh_line("203.0.113.5", now) for _ in range(3)))
        wait(lambda: "203.0.113.5" in cli("banned").stdout, "log ban")
        replies = []
        for client in ("10.7.7.7", "10.7.7.7", "10.8.8.8"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(("request=smtpd_access_policy\nprotocol_state=RCPT\n"
                           "protocol_name=ESMTP\nclient_address=%s\nclient_name=unknown\n"
                           "helo_name=h.example\nsender=s@remote.example\n"
                           "recipient=r@example.test\nrecipient_count=0\n\n" % client).encode())
                c.settimeout(10)
                buf = b""
                while not buf.endswith(b"\n\n"):
                    d = c.recv(4096)
                    if not d:
                        break
                    buf += d
                replies.append(buf.decode())
        assert all(r.startswith("action=DEFER_IF_PERMIT") for r in replies), replies
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stderr.close()
    before = {n: (state / n).read_bytes() for n in os.listdir(state)}
    d = json.loads(report(["-c", conf, "--state", state, "--json"]).stdout)
    # read in place and through copies: the daemon's files are left as they were
    assert {n: (state / n).read_bytes() for n in os.listdir(state)} == before
    b = d["bans"]
    assert b["banned_now"] == 3
    assert b["by_source"]["state"] == 5
    assert b["repeat_offenders"] == 1
    rep = b["top_repeat_offenders"][0]
    assert rep["address"] == "192.0.2.7" and rep["bans"] == 2 and rep["banned_now"] is True
    # two triplets wait out the delay; one client went over its rate limit once
    pol = d["policy"]["state"]
    assert pol["greylist_triplets"] == 2 and pol["greylist_waiting"] == 2, pol
    assert pol["ratelimit_keys"] == 2 and pol["ratelimit_exceeded"] == 1, pol
    # the evidence of the log ban is counted as failures when no log is given
    assert d["kinds"]["ssh_failed_password"]["lines"] == 3
    assert d["users"]["top"][0]["user"] == "root"
    # the daemon's own log: its "NOTICE [sshd] Ban" lines are logged bans
    d = json.loads(report(["-c", conf, "--jail", "sshd", "--json", out]).stdout)
    assert d["bans"]["by_source"]["log"] == 5
    # the log and the state together: failures from the log only (the evidence
    # repeats it), every ban from the state, 192.0.2.7's history though it is
    # not in the log, and 198.51.100.99's though it is neither in the log nor
    # banned now
    d = json.loads(report(["-c", conf, "--state", state, "--json", authlog]).stdout)
    assert d["failures"] == 3 and d["distinct_addresses"] == 4
    assert d["bans"]["by_source"]["state"] == 5 and d["bans"]["banned_now"] == 3
    ended = [a for a in d["top_addresses"] if a["address"] == "198.51.100.99"]
    assert ended and ended[0]["bans"] == 1 and ended[0]["jails"] == ["sshd"], d["top_addresses"]
    assert any("5 bans in its history" in n for n in d["notes"]), d["notes"]
    # 203.0.113.5 was banned once; the estimate over the log is the same ban
    assert d["bans"]["repeat_offenders"] == 1
    assert d["bans"]["top_repeat_offenders"][0]["address"] == "192.0.2.7"
