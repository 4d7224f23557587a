"""Every annotated sample log of Debian's fail2ban 1.0.2, run through Debian's
own filter.d by mxjail, must agree with its failJSON annotations (100%)."""
import os

import pytest

import f2bsamples

ROOT = f2bsamples.f2b_root()
BIN = os.environ.get("MXJAIL_BIN", "mxjail")
pytestmark = pytest.mark.skipif(ROOT is None, reason="MXJAIL_F2B_ROOT not set (setup.sh unpacks it)")


def filters():
    if ROOT is None:
        return []
    d = os.path.join(ROOT, "etc/fail2ban/filter.d")
    return sorted(f[:-5] for f in os.listdir(d)
                  if f.endswith(".conf") and not f.endswith("common.conf") and not f.startswith("."))


@pytest.mark.parametrize("name", filters())
def test_sample(name, summary):
    logs = os.path.join(ROOT, "usr/lib/python3/dist-packages/fail2ban/tests/files/logs")
    assert os.path.isfile(os.path.join(logs, name)), "no sample log for filter " + name
    passed, failed, msgs = f2bsamples.check_filter(BIN, os.path.join(ROOT, "etc/fail2ban"),
                                                   name, [logs])
    summary.append("debian filter %-24s %d passed, %d failed" % (name + ":", passed, failed))
    assert failed == 0, "\n".join(msgs[:20])
