"""pytest glue for the end-to-end tests: per-test summary lines (e.g. the
`N passed, M failed` line of each sample-log filter) are printed at the end."""
import pytest

SUMMARY = []


@pytest.fixture
def summary():
    return SUMMARY


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.write_line("")
        for line in SUMMARY:
            terminalreporter.write_line(line)
