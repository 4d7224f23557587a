# test_check.py - `mxjail check -c DIR` on small configuration trees written per test.
#
# A good tree prints "configuration OK" and exits 0.  A broken one exits 1 and names, for
# every problem, the file:line that holds it; a filter that cannot be loaded or compiled is
# reported under the jail that uses it ("jail [NAME]: ...") together with that jail
# section's file:line.  The shipped etc/ and Debian's stock tree (MXJAIL_F2B_ROOT, skipped
# when absent) must check clean.
#
# Interface: pytest (env MXJAIL_BIN, MXJAIL_SRCDIR, optional MXJAIL_F2B_ROOT).

import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get('MXJAIL_SRCDIR') or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get('MXJAIL_BIN', 'mxjail')
F2B_ROOT = os.environ.get('MXJAIL_F2B_ROOT', '')

GOOD_FILTER = """\
[Definition]
failregex = ^\\S+ login failed from <HOST>$
ignoreregex =
"""

BROKEN_FILTER = """\
[Definition]
failregex = ^\\S+ login failed from <HOST>$
            ^\\S+ bad (unclosed from <HOST>$
"""

JAIL_CONF = """\
[DEFAULT]
enabled = false
logpath = /dev/null

[good]
enabled = true
filter = good

[off]
# disabled jails are not loaded, so a missing filter here is fine
filter = nosuch-disabled
"""


def write_tree(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    return str(root)


def check(confdir):
    p = subprocess.run([BIN, 'check', '-c', confdir], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def base(**extra):
    files = {'jail.conf': JAIL_CONF, 'filter.d/good.conf': GOOD_FILTER}
    files.update(extra)
    return files


def test_good_tree(tmp_path):
    rc, out, err = check(write_tree(tmp_path, base()))
    assert (rc, out, err) == (0, 'configuration OK\n', '')


def test_missing_filter_names_jail(tmp_path):
    d = write_tree(tmp_path, base(**{'jail.local': '[mail]\nenabled = true\n'
                                                   'filter = nosuch[mode=x]\n'}))
    rc, out, err = check(d)
    assert rc == 1 and 'configuration OK' not in out
    lines = err.splitlines()
    assert any(l.startswith('error: jail [mail]: ') and 'nosuch' in l for l in lines), err
    # the jail section header is line 1 of jail.local
    assert 'error: %s/jail.local:1: jail [mail]: ' % d in err, err
    assert 'jail [good]' not in err and 'nosuch-disabled' not in err, err


def test_broken_regex_names_file_line_and_jail(tmp_path):
    d = write_tree(tmp_path, base(**{
        'filter.d/broken.conf': BROKEN_FILTER,
        'jail.d/broken.conf': '# a jail with a bad filter\n\n[brk]\nenabled = true\n'
                              'filter = broken\n'}))
    rc, out, err = check(d)
    assert rc == 1, err
    assert 'error: jail [brk]: %s/filter.d/broken.conf:3: ' % d in err, err
    assert 'error: %s/jail.d/broken.conf:3: jail [brk]: ' % d in err, err
    assert 'jail [good]' not in err, err


def test_malformed_jail_local_line(tmp_path):
    d = write_tree(tmp_path, base(**{'jail.local': '[good]\nenabled = true\n'
                                                   'this is not an option\n'}))
    rc, out, err = check(d)
    assert rc == 1 and out == ''
    assert 'error: %s/jail.local:3: ' % d in err, err


def test_errors_are_all_reported(tmp_path):
    d = write_tree(tmp_path, base(**{
        'filter.d/broken.conf': BROKEN_FILTER,
        'jail.local': '[a]\nenabled = true\nfilter = broken\n\n[b]\nenabled = true\n'
                      'filter = missing\n\noops\n'}))
    rc, out, err = check(d)
    assert rc == 1
    assert 'jail.local:9: ' in err, err
    assert 'error: jail [a]: %s/filter.d/broken.conf:3: ' % d in err, err
    assert 'error: %s/jail.local:1: jail [a]: ' % d in err, err
    assert 'error: jail [b]: ' in err and 'missing' in err, err
    assert 'error: %s/jail.local:5: jail [b]: ' % d in err, err


def test_shipped_configuration():
    rc, out, err = check(os.path.join(SRCDIR, 'etc'))
    assert (rc, out) == (0, 'configuration OK\n'), err


@pytest.mark.skipif(not F2B_ROOT or not os.path.isdir(os.path.join(F2B_ROOT, 'etc/fail2ban')),
                    reason='MXJAIL_F2B_ROOT not set (setup.sh unpacks fail2ban 1.0.2)')
def test_debian_stock_configuration():
    rc, out, err = check(os.path.join(F2B_ROOT, 'etc/fail2ban'))
    assert (rc, out) == (0, 'configuration OK\n'), err
