"""The Rakefile's PORT and HOSTS lines."""

import pytest

from submitter.rakefile import DEFAULT_PORT, Host, parse_rakefile

from tests.rakefile_helpers import only_error


# --- PORT ---------------------------------------------------------------------------

@pytest.mark.parametrize("line", ["PORT = 7000", "PORT=7000", "PORT\t=  7000", "PORT =7000"])
def test_port_accepts_optional_blanks_around_equals(line):
    assert parse_rakefile(line + "\n").port == 7000


def test_port_defaults_to_6238():
    assert parse_rakefile("").port == DEFAULT_PORT == 6238


@pytest.mark.parametrize("value", ["0", "65536", "abc", "", "-1", "1.5", "7000 7001", "9" * 5000])
def test_port_outside_1_to_65535_is_an_error_naming_the_value(value):
    line, message = only_error(f"PORT = {value}\n")
    assert line == 1
    assert message.startswith("PORT must be an integer 1..65535, got \"")
    assert value[:20] in message


@pytest.mark.parametrize("value, port", [("06238", 6238), ("041801", 41801), ("0" * 5000 + "7", 7)])
def test_port_with_leading_zeros_is_read_as_decimal(value, port):
    assert parse_rakefile(f"PORT = {value}\nHOSTS = h:{value}\n").port == port
    assert parse_rakefile(f"HOSTS = h:{value}\n").hosts[0].port == port


def test_port_extremes_are_accepted():
    assert parse_rakefile("PORT = 1").port == 1
    assert parse_rakefile("PORT = 65535").port == 65535


def test_port_twice_is_an_error():
    assert only_error("PORT = 1\nPORT = 2\n") == (2, "duplicate PORT (first on line 1)")


def test_port_without_equals_is_an_error():
    assert only_error("PORT 6238\n") == (1, 'expected "PORT = ...", got "PORT 6238"')


# --- HOSTS --------------------------------------------------------------------------

def test_hosts_after_port_get_that_port():
    rakefile = parse_rakefile("PORT = 7000\nHOSTS = a b:7001\n")
    assert [h.endpoint for h in rakefile.hosts] == ["tcp://a:7000", "tcp://b:7001"]


def test_hosts_before_port_get_the_port_resolved_after_the_whole_file():
    rakefile = parse_rakefile("HOSTS = a b:7001\nactionset1:\n\techo x\nPORT = 7000\n")
    assert [(h.host, h.port) for h in rakefile.hosts] == [("a", 7000), ("b", 7001)]


def test_hosts_without_port_get_6238():
    assert parse_rakefile("HOSTS = a\n").hosts == (Host("a", 6238, 1),)


def test_host_with_explicit_port_keeps_it():
    assert parse_rakefile("PORT = 1\nHOSTS = 10.0.0.1:7001\n").hosts[0].endpoint == "tcp://10.0.0.1:7001"


def test_ipv6_in_brackets_with_and_without_port():
    hosts = parse_rakefile("PORT = 7000\nHOSTS = [::1]:7001 [fe80::2]\n").hosts
    assert [(h.host, h.port, h.is_ipv6) for h in hosts] == [("::1", 7001, True), ("fe80::2", 7000, True)]
    assert [h.endpoint for h in hosts] == ["tcp://[::1]:7001", "tcp://[fe80::2]:7000"]


def test_ipv6_with_an_interface_scope_is_accepted_in_brackets():
    assert parse_rakefile("HOSTS = [fe80::1%eth0]:5\n").hosts[0].endpoint == "tcp://[fe80::1%eth0]:5"


def test_ipv6_with_an_odd_scope_is_an_error():
    line, message = only_error("HOSTS = [fe80::1%a/b]\n")
    assert line == 1 and "is not an IPv6 address" in message


def test_hostnames_and_ipv4_are_not_ipv6():
    assert not Host("localhost", 1, 1).is_ipv6
    assert not Host("127.0.0.1", 1, 1).is_ipv6


def test_bare_ipv6_is_an_error_suggesting_brackets():
    line, message = only_error("HOSTS = ::1\n")
    assert line == 1 and '"::1"' in message and "[::1]" in message and "brackets" in message


@pytest.mark.parametrize("entry, named", [
    ("h:abc", '"abc"'), ("h:0", '"0"'), ("h:65536", '"65536"'), ("h:", '""'), ("[::1]:x", '"x"'),
])
def test_bad_host_port_is_an_error_naming_it(entry, named):
    line, message = only_error(f"HOSTS = good {entry}\n")
    assert line == 1 and message.startswith(f"bad port {named}") and entry in message


@pytest.mark.parametrize("entry", ["[::1", "[nothost]:1", "a:b:c", ":6238", "a/b", "tcp://h:1", "-h", "_h"])
def test_bad_host_is_an_error_naming_it(entry):
    line, message = only_error(f"HOSTS = {entry}\n")
    assert line == 1
    assert entry.strip("[]:").split(":")[0].split("]")[0] in message


def test_duplicate_host_is_dropped_with_a_warning():
    rakefile = parse_rakefile("HOSTS = a a:6238 b A [::1] [0::1]:6238 a:7000\n")
    assert [h.endpoint for h in rakefile.hosts] == ["tcp://a:6238", "tcp://b:6238", "tcp://[::1]:6238",
                                                     "tcp://a:7000"]
    assert [w.message for w in rakefile.warnings] == [
        'duplicate host "a:6238" dropped', 'duplicate host "A:6238" dropped', 'duplicate host "[0::1]:6238" dropped']
    assert {w.line for w in rakefile.warnings} == {1}


def test_duplicate_host_is_found_after_late_port_resolution():
    rakefile = parse_rakefile("HOSTS = a a:7000\nPORT = 7000\n")
    assert len(rakefile.hosts) == 1 and len(rakefile.warnings) == 1


def test_hosts_with_no_entries_is_an_error():
    assert only_error("HOSTS =   \n") == (1, "HOSTS lists no host")


def test_hosts_twice_is_an_error():
    assert only_error("HOSTS = a\nHOSTS = b\n") == (2, "duplicate HOSTS (first on line 1)")


def test_no_hosts_line_means_no_hosts_even_with_remote_actions():
    rakefile = parse_rakefile("actionset1:\n\tremote-echo x\n")
    assert rakefile.hosts == () and rakefile.has_remote
