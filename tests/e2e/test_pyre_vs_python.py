"""test_pyre_vs_python - checks filters/pyre against Python's own re module.

Drives the test-only tool tests/tools/pyrecheck (pattern -> pyre -> PCRE2) and
compares with Python 3's re on the same patterns and subjects:
  * every failregex/ignoreregex/prefregex/datepattern of every filter (and
    every mode) in $MXJAIL_F2B_ROOT/etc/fail2ban/filter.d, resolved by
    fail2ban's own reader and tag expansion, must translate and compile
    exactly when Python compiles it, and find the same match span as Python
    on every line of fail2ban's sample log for that filter;
  * a list of odd constructs, and a few thousand random token strings (fixed
    seed), must be accepted or refused as Python does and match the same
    spans (one known difference: lookbehind alternatives of unequal width).
Skips cleanly when the fail2ban tree or the tool is absent.
"""
import glob
import os
import re
import subprocess
import sys
import warnings

import pytest

F2B_ROOT = os.environ.get("MXJAIL_F2B_ROOT", "")
SEP = "\x1f"


def find_tool():
    cand = [os.environ.get("MXJAIL_PYRECHECK", "")]
    b = os.environ.get("MXJAIL_BIN", "")
    if b:
        cand.append(os.path.join(os.path.dirname(b), "tests", "tools", "pyrecheck"))
    for c in cand:
        if c and os.access(c, os.X_OK):
            return c
    return None


TOOL = find_tool()
needs_tool = pytest.mark.skipif(TOOL is None, reason="pyrecheck not built (tests/tools)")


def run_tool(lines, raw=False):
    """Feeds lines (pattern, [subjects]) to pyrecheck; returns parsed results."""
    text = "".join(" ".join(f.encode("utf-8", "surrogatepass").hex() for f in [p] + list(s)) + "\n"
                   for p, s in lines)
    args = [TOOL, "-x"] + (["-r"] if raw else [])
    out = subprocess.run(args, input=text.encode(),
                         stdout=subprocess.PIPE, check=True, timeout=600).stdout
    res = []
    for ln in out.decode("utf-8", "replace").split("\n")[:-1]:
        f = ln.split("\t")
        if f[0] == "OK":
            res.append(("OK", f[2], f[3:]))
        else:
            res.append(("ERR", "\t".join(f[1:]), []))
    assert len(res) == len(lines)
    return res


def py_result(pattern, subjects, flags=0):
    """Python's verdict: (ok, [span strings]) with byte offsets."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            r = re.compile(pattern, flags)
        except (re.error, OverflowError, ValueError, RecursionError) as e:
            return False, str(e)
    spans = []
    for s in subjects:
        m = r.search(s)
        if m is None:
            spans.append("N")
        else:
            b0 = len(s[:m.start()].encode())
            b1 = len(s[:m.end()].encode())
            spans.append("M:%d:%d" % (b0, b1))
    return True, spans


# --- fail2ban's filters -----------------------------------------------------

def filter_regexes():
    """Yields (filter, kind, python_regex_before_glob2loc, final_python_regex)."""
    sys.path.insert(0, os.path.join(F2B_ROOT, "usr/lib/python3/dist-packages"))
    from fail2ban.client.filterreader import FilterReader
    from fail2ban.server.failregex import Regex, R_GLOB2LOCFLAGS
    from fail2ban.server.datetemplate import DatePatternRegex
    import logging
    logging.getLogger("fail2ban").setLevel(logging.CRITICAL)
    base = os.path.join(F2B_ROOT, "etc/fail2ban")
    out = []
    for path in sorted(glob.glob(os.path.join(base, "filter.d", "*.conf"))):
        name = os.path.basename(path)[:-5]
        with open(path, encoding="utf-8") as fh:
            modes = set(re.findall(r"^mdre-([A-Za-z0-9_]+)\s*=", fh.read(), re.M))
        for mode in [None] + sorted(modes):
            opts = {"mode": mode} if mode else {}
            fr = FilterReader(name, "j", opts, basedir=base)
            try:
                fr.read()
                fr.getOptions({})
                cmds = fr.convert()
            except Exception:
                continue  # common/include files, not filters
            vals = []
            for c in cmds:
                if c[0] == "multi-set" and c[2] in ("addfailregex", "addignoreregex"):
                    vals += [(c[2], v) for v in c[3]]
                elif c[0] == "set" and c[2] in ("addfailregex", "addignoreregex",
                                                "prefregex", "datepattern"):
                    vals.append((c[2], c[3]))
            for kind, v in vals:
                if kind == "datepattern":
                    try:
                        rx = DatePatternRegex(v).regex
                    except Exception:
                        continue  # special names like {^LN-BEG} alone
                    out.append((name, kind, rx, rx))
                else:
                    rx = Regex._resolveHostTag(v)
                    out.append((name, kind, rx, R_GLOB2LOCFLAGS[0].sub(R_GLOB2LOCFLAGS[1], rx)))
    return out


def sample_lines(name):
    p = os.path.join(F2B_ROOT, "usr/lib/python3/dist-packages/fail2ban/tests/files/logs", name)
    if not os.path.exists(p):
        return []
    lines = []
    with open(p, "rb") as fh:
        for raw in fh:
            try:
                s = raw.decode("utf-8").rstrip("\n")
            except UnicodeDecodeError:
                continue
            if s.startswith("#"):
                continue
            lines.append(s)
    return lines[:400]


@needs_tool
@pytest.mark.skipif(not F2B_ROOT or not os.path.isdir(F2B_ROOT),
                    reason="MXJAIL_F2B_ROOT not set: fail2ban tree absent")
def test_every_filter_regex_translates_and_matches_like_python():
    items = filter_regexes()
    assert len(items) > 200, "expected hundreds of regexes, got %d" % len(items)
    samples = {}
    fr_lines, dp_lines, meta = [], [], []
    for name, kind, rx, final in items:
        subj = samples.setdefault(name, sample_lines(name))
        if kind == "datepattern":
            dp_lines.append((rx, subj))
        else:
            fr_lines.append((rx, subj))
        meta.append((name, kind, final, subj))
    res = run_tool(fr_lines) + run_tool(dp_lines, raw=True)
    meta = [m for m in meta if m[1] != "datepattern"] + [m for m in meta if m[1] == "datepattern"]
    failures, compared = [], 0
    for (name, kind, final, subj), (st, msg, spans) in zip(meta, res):
        ok, py = py_result(final, subj)
        if not ok:
            continue  # fail2ban itself could not load it
        if st != "OK":
            failures.append("%s %s: refused: %s" % (name, kind, msg))
            continue
        for s, a, b in zip(subj, spans, py):
            compared += 1
            if a != b:
                failures.append("%s %s: %r: pcre %s python %s" % (name, kind, s, a, b))
    print("%d regexes, %d subject comparisons, %d failures" % (len(res), compared, len(failures)))
    assert not failures, "\n".join(failures[:40])


# --- constructs ---------------------------------------------------------------

SUBJ = ["", "a", "A", "ab", "aB", "abc", "aaa", "a\nb", "a\n", "x-y", "x]y", "(x)",
        "{1}", "a{,3}", "aaaa", "LOGIN", "login", "Login ok", "é", "É", "ÉTÉ",
        "ß", "١٢٣", "12345", "a b\tc", "foo bar", "foo\n", "user=abc id=7",
        "[::1]:22", "192.0.2.1", "\x0b", "\x07", "\\", "a.b", "#x", " x ",
        "abcabc", "xyzzy", "été", "\u2003", "١", "é!", "\u00e9t\u00e9 ok", "AbC", "k\u212a"]

CONSTRUCTS = [
    # named groups and references
    r"(?P<n>a)(?P=n)", r"(?P<n>\w+) (?P=n)", r"(?P<x1_y>a|b)+", r"(a)\1", r"(a)(b)\2\1",
    r"(a)\10", r"(a)\1(?P<q>b)(?P=q)", r"(?P=n)(?P<n>a)", r"(?P<n>a(?P=n))",
    r"(?P<n>a)(?P<n>b)", r"(?P<1n>a)", r"(?P<>a)", r"(?P<n", r"(?P>n)", r"(?<n>a)",
    r"(?'n'a)", r"\1(a)", r"(a\1)", r"(?P<é>a)",
    # global and local flags
    r"(?i)login", r"(?i)(?s)a.b", r"(?s)a.b", r"(?m)^b", r"(?m)a$", r"a$", r"^a",
    r"(?x) a b c ", r"(?x)a # comment\nb", r"(?x)a\ b", r"(?x)[ a]", r"(?x)a{1, 2}",
    r"(?x)a\#b", r"(?xi) A B", r"(?a)\w+", r"(?a)\d", r"(?u)\w+", r"(?au)a", r"(?L)a",
    r"^(?i)a", r"a(?i)", r"a|(?i)b", r"((?i)login)", r"(?:(?i)login)", r"x((?i)a|b)",
    r"\((?i)a)", r"(?i:LOGIN)", r"(?-i:a)", r"(?i)(?-i:a)A", r"(?i-s:a.b)",
    r"(?s-i:a.b)", r"(?i-i:a)", r"(?-i)a", r"(?i", r"(?-", r"(?-:a)", r"(?q)a",
    r"(?a:\w+)", r"(?a:\d+)", r"(?a:\s)", r"(?a:\bab)", r"(?a:[\w]+)", r"(?a:[\W])",
    r"(?a:\W)", r"(?a:\S)", r"(?a:\D)", r"(?a:[\S])", r"(?a:\B)", r"(?a:[\s\d]+)",
    r"(?a:[^\w])", r"(?a:[^\d])", r"(?a:[\wé])", r"(?a:[x\d])", r"\B", r"(?a)\B",
    r"(?a:\b)", r"(?x:a b)c d", r"(?x)(?-x:a b)", r"(?#comment)a", r"a(?#c)*",
    r"a(?#c\)d)b", r"a{1(?#c)}", r"(?#c)(?i)a", r"(?#", r"(?t)a",
    # escapes
    r"\Z", r"a\Z", r"\Aa", r"\z", r"\G", r"\K", r"\Q", r"\E", r"\p{L}", r"\h", r"\R",
    r"\X", r"\e", r"\cA", r"\o{1}", r"\g<1>", r"\N{EM DASH}", r"\u00e9", r"\u00E9+",
    r"\U000000e9", r"\U00110000", r"\ud800", r"\x41", r"\x4", r"\x{41}", r"\v", r"\a",
    r"\f", r"\0", r"\01", r"\012", r"\0123", r"\101", r"\1010", r"\400", r"\8", r"\\",
    r"\.", r"\-", r"\]", r"\}", r"\é", r"\ ", "\\", r"\b", r"\bab\b", r"\Ba", r"\d+",
    r"\D", r"\s", r"\S+", r"\w+", r"\W", r"\b*", r"\Z?",
    # character classes
    r"[a]", r"[]a]", r"[^]a]", r"[]", r"[^]", r"[a-]", r"[-a]", r"[a-c]", r"[c-a]",
    r"[\d-z]", r"[a-\d]", r"[\w-]", r"[(]", r"[)]", r"[[]", r"[[:alpha:]]",
    r"[[:alpha:]]+", r"[a\]]", r"[\b]", r"[\A]", r"[\Z]", r"[\8]", r"[\0]", r"[\101]",
    r"[\1]", r"[\400]", r"[\x41-\x43]", r"[\u00e9]", r"[é-ê]", r"[^\s]", r"[\S]",
    r"[a-z&&[^b]]", r"[--a]", r"[a--]", r"[.]", r"[$^]", r"[\^a]", r"[a^]", r"[{]",
    r"[\]-a]", r"[]-a]", r"[\v]", r"[#]", r"[ ]",
    # quantifiers
    r"a{,3}", r"a{,}", r"a{2}", r"a{2,}", r"a{1,2}", r"a{2,1}", r"a{", r"a{1", r"a{x}",
    r"a{1,2", r"a{}", r"{", r"{1}", r"x{1}{2}", r"a**", r"a*?", r"a*+", r"a++",
    r"a?+", r"a{1,2}?", r"a{1,2}+", r"a*??", r"a+++", r"*a", r"+", r"?", r"^*",
    r"(?:)*", r"()*", r"a{,2}?", r"a{ 1}", r"a{1 }", r"a{01,002}", r"a{65535}",
    r"a{65536}", r"a{99999999999}", r"(?=a)*", r"a|*", r"(*FAIL)", r"(*UTF)a",
    # groups and conditionals
    r"(a)?(?(1)b|c)", r"(?P<n>a)?(?(n)b|c)", r"(?(1)a|b)(x)", r"(?(2)a|b)(x)",
    r"(?(1)a|b|c)(x)", r"(?(0)a)", r"(?(x)a)", r"(?(1a)a)(x)", r"(a)(?(01)b)",
    r"(?(R)a)", r"(?(DEFINE)a)", r"(?|a)", r"(?R)", r"(?1)(a)", r"(?&n)", r"(?C1)a",
    r"(?>a+)a", r"(?=ab)a", r"(?!b)a", r"(?<=a)b", r"(?<!a)b", r"(?<=a|bc)d",
    r"(?<=(a))b", r"(a)(?<=\1)b", r"(?<=(a)\1)b", r"(?<", r"(?<x", r"(?", r"(", r")",
    r"a)", r"(a", r"((a)", r"(?:a|b)+c", r"(a|)+", r"a||b", r"|", r"",
    # literals that are special in PCRE2 only
    r"a]", r"a}", r"#a", r"a#", r"\Qa\E", r"$a", r"a.b", "a\tb", "a b",
    r"(?i)straße", r"(?i)ÉTÉ", r"(?i)k", r"(?i)\u212a",
    # fail2ban-style fragments
    r"^\s*(?:\S+ )?(?:kernel: \[ *\d+\.\d+\] )?", r"(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})",
    r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)",
    r"user=(?P<user>\S*)(?: id=(?P<fid>\d+))?", r"\[?(?:(?P<ip4>\d+\.\d+)|(?P<ip6>[0-9a-f:]+))\]?",
]

# Differences by design, all refusals of text Python accepts or the reverse.
KNOWN = {
    r"\N{EM DASH}": "no Unicode name table",
    r"\ud800": "surrogates cannot occur in UTF-8",
    r"(?P<é>a)": "PCRE2 10.42 group names are ASCII",
    r"a{65536}": "PCRE2 repeat limit",
    r"(?t)a": "template flag refused",
    r"(?<=a|bc)d": "PCRE2 accepts alternatives of different fixed width",
}


@needs_tool
def test_constructs_agree_with_python():
    res = run_tool([(p, SUBJ) for p in CONSTRUCTS])
    res_raw = run_tool([(p, SUBJ) for p in CONSTRUCTS], raw=True)
    bad, agree = [], 0
    for p, (st, msg, spans), (rst, rmsg, rspans) in zip(CONSTRUCTS, res, res_raw):
        ok, py = py_result(p, SUBJ)
        if p in KNOWN:
            if (st == "OK") == ok:
                bad.append("%r: expected a known difference (%s)" % (p, KNOWN[p]))
            continue
        if (rst == "OK") != ok:
            bad.append("%r raw: pyre %s %s, python %s" % (p, rst, rmsg, py if not ok else "OK"))
            continue
        if ok:
            for s, a, b in zip(SUBJ, rspans, py):
                if a != b:
                    bad.append("%r on %r: pcre %s python %s (%s)" % (p, s, a, b, rmsg))
        if rst == "ERR" and "PCRE2:" in rmsg:
            bad.append("%r: refused by PCRE2, not by pyre: %s" % (p, rmsg))
        agree += 1
        # with fail2ban's rewrite: compare against the rewritten text
        import re as _re
        f2b = _re.sub(r"(?<!\\)\((?:\?:)?(\(\?[a-z]+)\)", r"\1:", p)
        ok2, py2 = py_result(f2b, SUBJ)
        if (st == "OK") != ok2:
            bad.append("%r f2b: pyre %s %s, python %s" % (p, st, msg, "OK" if ok2 else py2))
        elif ok2 and spans != py2:
            bad.append("%r f2b: spans differ" % p)
    print("%d constructs agree with Python, %d known differences" % (agree, len(KNOWN)))
    assert not bad, "\n".join(bad)


@needs_tool
def test_errors_name_construct_and_position():
    res = run_tool([(r"ab\z", []), (r"x(?P>n)", []), (r"[abc", []), (r"(?<n>a)", []),
                    (r"a**", []), (r"\N{DASH}", []), (r"a(?i)", []), (b"\xff".decode("latin-1"), [])])
    msgs = [m for _, m, _ in res]
    assert msgs[0] == r"bad escape \z at position 2"
    assert "?P>" in msgs[1] and "position 1" in msgs[1]
    assert msgs[2] == "unterminated character set at position 0"
    assert "(?P<name>" in msgs[3]
    assert msgs[4] == "multiple repeat at position 2"
    assert "\\N{" in msgs[5]
    assert msgs[6] == "global flags not at the start of the expression at position 1"
    assert res[7][0] == "OK"  # U+00FF, sent as UTF-8


# --- random patterns ------------------------------------------------------------

RTOKS = ["a", "b", "é", "x", ".", "^", "$", "*", "+", "?", "{", "}", "{1}", "{,2}",
         "{1,}", "{2,1}", ",", "1", "0", "(", ")", "(?:", "(?P<n>", "(?P=n)", "(?i)",
         "(?s)", "(?x)", "(?a)", "(?i:", "(?-i:", "(?a:", "(?#c)", "|", "[", "]", "[^",
         "-", "\\", "\\d", "\\w", "\\s", "\\b", "\\B", "\\Z", "\\A", "\\1", "\\2", "\\0",
         "\\12", "\\x41", "\\u00e9", "\\n", "\\v", " ", "#", "\n", "(?=", "(?!", "(?<=",
         "(?<!", "(?(1)", "(?(n)", "(?>", "\\W", "\\S", "\\D", "\\-", "\\]", "\\[", ":",
         "\\.", "k", "K", "ß", "\t", "(?:a|b)", "[ab]", "(a)", "\\w+", ".*", ".+?"]
RSUBJ = ["", "a", "ab", "aab", "ba", "a\nb", "é", "É", "a b", "a1", "1", "{1}", "A",
         "abé!", "k", "K", "\u212a", "a-b", "]", "[", "x", "aaaa", "#", " ", "\x0b", "ß"]


@needs_tool
def test_random_patterns_agree_with_python():
    import random
    rnd = random.Random(20240601)
    pats = sorted({"".join(rnd.choice(RTOKS) for _ in range(rnd.randint(1, 7)))
                   for _ in range(6000)})
    res = run_tool([(p, RSUBJ) for p in pats], raw=True)
    bad, both_ok = [], 0
    for p, (st, msg, spans) in zip(pats, res):
        ok, py = py_result(p, RSUBJ)
        if ok != (st == "OK"):
            if not ok and "look-behind requires fixed-width" in py:
                continue  # known: PCRE2 takes different-width alternatives
            bad.append("%r: pyre %s %s, python %s" % (p, st, msg, "OK" if ok else py))
        elif ok:
            both_ok += 1
            if spans != py:
                bad.append("%r: spans pcre %s python %s" % (p, spans, py))
    print("%d random patterns, %d accepted by both with equal spans" % (len(pats), both_ok))
    assert both_ok > 500
    assert not bad, "\n".join(bad[:30])
