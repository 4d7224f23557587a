# test_check.py - `mxjail check -c DIR` on small configuration trees written per test.
#
# A good tree prints "configuration OK" and exits 0.  A broken one exits 1 and names, for
# every problem, the file:line that holds it; a filter that cannot be loaded or compiled is
# reported under the jail that uses it ("jail [NAME]: ...") together with that jail
# section's file:line.  Jails with backend = policy need no filter or log but must name
# known policy checks in policyevents.  mxjail.conf's [mxjail] metrics, [cluster], [policy],
# [greylist], [ratelimit] and [spoof] go through the daemon's own parsers; their errors
# name mxjail.conf and the line of the key (or section).  The shipped etc/ and Debian's
# stock tree (MXJAIL_F2B_ROOT, skipped when absent) must check clean.
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


POLICY_JAIL = """\
[spoofers]
enabled = true
backend = policy
filter = %(__name__)s
policyevents = spoof, ratelimit
maxretry = 3
"""

GOOD_MXJAIL = """\
[mxjail]
metrics = 127.0.0.1:9191

[cluster]
redis = redis://127.0.0.1:6399/2
node = a
share = bans, greylist

[policy]
enabled = yes
listen = inet:127.0.0.1:10023 unix:/run/mxjail/policy
idle_timeout = 300

[greylist]
delay = 60

[ratelimit]
sasl = sasl_username: 100 messages / 1h
"""


def test_policy_jail_needs_no_filter(tmp_path):
    # filter = %(__name__)s names no file: a policy jail must not load it
    d = write_tree(tmp_path, base(**{'jail.local': POLICY_JAIL, 'mxjail.conf': GOOD_MXJAIL}))
    rc, out, err = check(d)
    assert (rc, out, err) == (0, 'configuration OK\n', '')


def test_policy_jail_without_service_warns(tmp_path):
    d = write_tree(tmp_path, base(**{'jail.local': POLICY_JAIL}))
    rc, out, err = check(d)
    assert (rc, out) == (0, 'configuration OK\n'), err
    assert 'warning: %s/jail.local:1: jail [spoofers]: ' % d in err, err
    assert '[policy] enabled' in err, err


def test_policy_jail_unknown_event(tmp_path):
    d = write_tree(tmp_path, base(**{
        'jail.local': POLICY_JAIL.replace('spoof, ratelimit', 'spoof, bounces'),
        'mxjail.conf': GOOD_MXJAIL}))
    rc, out, err = check(d)
    assert rc == 1 and out == '', err
    assert 'error: %s/jail.local:1: jail [spoofers]: policyevents: ' % d in err, err
    assert "'bounces'" in err and 'spoof' not in err.split("'bounces'")[1], err


def test_enabled_jail_without_filter(tmp_path):
    d = write_tree(tmp_path, base(**{'jail.local': '\n[nof]\nenabled = true\nfilter =\n'}))
    rc, out, err = check(d)
    assert rc == 1, err
    assert 'error: %s/jail.local:2: jail [nof]: no filter' % d in err, err


def test_bad_jail_option(tmp_path):
    d = write_tree(tmp_path, base(**{'jail.local': '[good]\nmaxretry = lots\n'}))
    rc, out, err = check(d)
    assert rc == 1, err
    assert 'jail [good]: maxretry' in err and "'lots'" in err, err


def mxjail_conf_errors(tmp_path, text):
    d = write_tree(tmp_path, base(**{'mxjail.conf': text}))
    rc, out, err = check(d)
    assert rc == 1 and out == '', err
    return d, err


def test_metrics_errors(tmp_path):
    d, err = mxjail_conf_errors(tmp_path, '[mxjail]\n# public without a token\n'
                                          'metrics = 0.0.0.0:9191\n')
    assert 'error: %s/mxjail.conf:3: ' % d in err and 'metrics_token' in err, err
    ok = write_tree(tmp_path / 'tok', base(**{
        'mxjail.conf': '[mxjail]\nmetrics = 0.0.0.0:9191\nmetrics_token = s3cret\n'}))
    assert check(ok)[:2] == (0, 'configuration OK\n')
    d, err = mxjail_conf_errors(tmp_path / 'bad', '[mxjail]\nmetrics = nowhere:port\n')
    assert 'error: %s/mxjail.conf:2: ' % d in err and 'metrics' in err, err


def test_filter_thread_value(tmp_path):
    bad = write_tree(tmp_path, base(**{'mxjail.conf': '[mxjail]\n\nfilter_thread = maybe\n'}))
    rc, out, err = check(bad)
    assert rc == 0 and out == 'configuration OK\n', err
    assert ('warning: %s/mxjail.conf:3: mxjail.conf [mxjail] filter_thread = maybe: expected '
            'auto, yes or no' % bad) in err, err
    for v in ('auto', 'yes', 'no'):
        ok = write_tree(tmp_path / v, base(**{'mxjail.conf': '[mxjail]\nfilter_thread = %s\n' % v}))
        assert check(ok) == (0, 'configuration OK\n', ''), v


def test_cluster_errors(tmp_path):
    d, err = mxjail_conf_errors(tmp_path, '[cluster]\nredis = redis://127.0.0.1:6379\n'
                                          'node = a\nshare = bans, everything\n')
    assert 'error: %s/mxjail.conf:4: mxjail.conf [cluster] share: ' % d in err, err
    d, err = mxjail_conf_errors(tmp_path / 'q', '[cluster]\nredis = redis://127.0.0.1:6379\n'
                                                '\nqueue = 3\n')
    assert 'error: %s/mxjail.conf:4: mxjail.conf [cluster] queue: ' % d in err, err


def test_cluster_warnings(tmp_path):
    # keys without redis = URL, and a fallback jail that does not exist: run starts
    d = write_tree(tmp_path, base(**{'mxjail.conf': '[cluster]\nnode = a\n'}))
    rc, out, err = check(d)
    assert (rc, out) == (0, 'configuration OK\n'), err
    assert 'warning: %s/mxjail.conf:1: ' % d in err and 'redis' in err, err
    d = write_tree(tmp_path / 'fb', base(**{
        'mxjail.conf': '[cluster]\nredis = unix:/run/redis.sock\nfallback_jail = nosuch\n'}))
    rc, out, err = check(d)
    assert (rc, out) == (0, 'configuration OK\n'), err
    assert 'warning: %s/mxjail.conf:3: ' % d in err and 'nosuch' in err, err


def test_policy_section_errors(tmp_path):
    d, err = mxjail_conf_errors(tmp_path, GOOD_MXJAIL.replace(
        'sasl_username: 100 messages / 1h', 'lots'))
    assert 'error: %s/mxjail.conf:18: mxjail.conf [ratelimit] sasl: ' % d in err, err
    d, err = mxjail_conf_errors(tmp_path / 'l', GOOD_MXJAIL.replace(
        'inet:127.0.0.1:10023 unix', 'tcp:10023 unix'))
    assert 'error: %s/mxjail.conf:11: ' % d in err and "'tcp:10023'" in err, err
    d, err = mxjail_conf_errors(tmp_path / 't', GOOD_MXJAIL.replace(
        'idle_timeout = 300', 'idle_timeout = soon'))
    assert 'error: %s/mxjail.conf:12: ' % d in err and 'idle_timeout' in err, err


def test_shipped_configuration():
    rc, out, err = check(os.path.join(SRCDIR, 'etc'))
    assert (rc, out) == (0, 'configuration OK\n'), err


@pytest.mark.skipif(not F2B_ROOT or not os.path.isdir(os.path.join(F2B_ROOT, 'etc/fail2ban')),
                    reason='MXJAIL_F2B_ROOT not set (setup.sh unpacks fail2ban 1.0.2)')
def test_debian_stock_configuration():
    rc, out, err = check(os.path.join(F2B_ROOT, 'etc/fail2ban'))
    assert (rc, out) == (0, 'configuration OK\n'), err
