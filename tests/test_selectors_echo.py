"""multiplexing/selectors_echo.py, the course's Python selectors server: what
it guarantees, checked with the same properties as the C servers.

It is a teaching sketch (the `sketch` trait of scripts/variants.txt), so the
C suite's whole matrix does not apply: it has no -v log, no descriptor
accounting of its own, and nothing to say about SIGSTOP or forks. What it
does promise is the echo itself: byte-exact whatever the sizes and the
splits, many clients at once, a slow reader held back without losing a
byte (the short write the course's version drops), the rest echoed after a
half-close, a reset or a vanished peer survived, --max-clients, and the
readiness line, -q and the SIGTERM summary that compare.sh relies on.
"""
import signal

import harness
import test_echo
import test_server_cli

VARIANT = next(harness.EchoVariant(*entry) for entry in harness.read_variants()
               if entry[1] == "multiplexing/selectors_echo.py")


def test_selectors_echo_is_raced_but_not_in_the_c_matrix():
    assert VARIANT.traits.get("sketch") and VARIANT.traits.get("concurrent"), VARIANT.traits
    assert VARIANT.name not in [entry[0] for entry in harness.ECHO_VARIANTS]


def test_selectors_echo_sizes():
    test_echo.echo_sizes(VARIANT)
test_selectors_echo_sizes.time_limit = 60


def test_selectors_echo_split_sends():
    test_echo.split_sends(VARIANT)
test_selectors_echo_split_sends.time_limit = 60


def test_selectors_echo_concurrent_clients():
    test_echo.concurrent_clients(VARIANT)
test_selectors_echo_concurrent_clients.time_limit = 60


def test_selectors_echo_slow_reader_loses_nothing():
    """The short write: bytes send() did not take stay buffered, reading stops, nothing is lost."""
    test_echo.slow_reader(VARIANT)
test_selectors_echo_slow_reader_loses_nothing.time_limit = 90


def test_selectors_echo_half_close():
    test_echo.half_close(VARIANT)
test_selectors_echo_half_close.time_limit = 60


def test_selectors_echo_reset_mid_transfer():
    test_echo.reset_mid_transfer(VARIANT)
test_selectors_echo_reset_mid_transfer.time_limit = 60


def test_selectors_echo_no_sigpipe():
    test_echo.no_sigpipe(VARIANT)
test_selectors_echo_no_sigpipe.time_limit = 60


def test_selectors_echo_max_clients_refused():
    test_echo.max_clients_refused(VARIANT)
test_selectors_echo_max_clients_refused.time_limit = 60


def test_selectors_echo_simultaneous_sends():
    test_echo.simultaneous_sends(VARIANT)
test_selectors_echo_simultaneous_sends.time_limit = 30


def test_selectors_echo_readiness_and_log():
    test_server_cli.readiness_line(VARIANT)
    test_server_cli.quiet_log(VARIANT)
    test_server_cli.event_log(VARIANT)
test_selectors_echo_readiness_and_log.time_limit = 30


def test_selectors_echo_sigterm_summary():
    test_server_cli.stop_with_summary(VARIANT, signal.SIGTERM)
test_selectors_echo_sigterm_summary.time_limit = 30


def test_selectors_echo_refuses_bad_options():
    for argv in (["--no-such-option"], ["-p", "99999"], ["--max-clients", "0"], ["stray"]):
        result = test_server_cli.run(VARIANT, *argv)
        assert result.returncode == 2, "%s: exit %d" % (argv, result.returncode)
        assert result.stderr.strip(), "%s says why" % argv
