"""pytest_main's arguments: the files and options it is given, no cache, --test_filter as -k."""

from tools.rules.python.pytest_main import pytest_args


def test_files_and_options_pass_through_without_a_cache() -> None:
    assert pytest_args(["a_test.py", "-x"], "") == ["a_test.py", "-x", "-p", "no:cacheprovider"]


def test_the_test_filter_becomes_a_k_expression_of_alternatives() -> None:
    args = pytest_args(["a_test.py"], "sigterm, slow_clients,")
    assert args[-2:] == ["-k", "sigterm or slow_clients"]


def test_a_single_filter_is_one_k_pattern() -> None:
    assert pytest_args([], "sigterm")[-2:] == ["-k", "sigterm"]
