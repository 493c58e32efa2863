"""Offline checks of packages.lock.json against packages.json, and of lock.py's resolver.

Run by `tools/bazel test //tools/rules/debian:lock_test`, or `python3 -m pytest
tools/rules/debian/lock_test.py` where pytest is installed.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import lock

CONFIG = json.loads((HERE / "packages.json").read_text(encoding="utf-8"))
LOCK_TEXT = (HERE / "packages.lock.json").read_text(encoding="utf-8")
LOCK = json.loads(LOCK_TEXT)
ENTRY_KEYS = ["name", "version", "arch", "filename", "sha256", "size"]
REGENERATE = "regenerate it: tools/bazel run //tools/rules/debian:lock"


def lower_closure(name: str) -> set[str]:
    """Every package of the sets that set `name` layers on, transitively."""
    names: set[str] = set()
    for lower in LOCK["sets"][name]["layers_on"]:
        names |= {p["name"] for p in LOCK["sets"][lower]["packages"]} | lower_closure(lower)
    return names


def test_lock_is_from_this_input() -> None:
    assert LOCK["input_sha256"] == lock.canonical_sha256(CONFIG), (
        f"packages.json changed since the lock was written: {REGENERATE}"
    )


def test_suite_and_sets() -> None:
    for key in ("suite", "arch", "component"):
        assert LOCK[key] == CONFIG[key], key
    assert sorted(LOCK["sets"]) == sorted(CONFIG["sets"])
    assert list(LOCK["sets"]) == sorted(LOCK["sets"]), "sets must be sorted"


def test_roots_present() -> None:
    for name, spec in CONFIG["sets"].items():
        have = {p["name"] for p in LOCK["sets"][name]["packages"]} | lower_closure(name)
        for root in spec["roots"]:
            assert root in have, f"set {name}: root {root} missing from the lock"


def test_no_excluded_package() -> None:
    for name, spec in CONFIG["sets"].items():
        have = {p["name"] for p in LOCK["sets"][name]["packages"]}
        for excluded in spec.get("excludes", []):
            assert excluded not in have, f"set {name}: {excluded} is excluded"


def test_layers() -> None:
    for name, spec in CONFIG["sets"].items():
        assert LOCK["sets"][name]["layers_on"] == sorted(spec.get("layers_on", []))
        have = {p["name"] for p in LOCK["sets"][name]["packages"]}
        both = have & lower_closure(name)
        assert not both, f"set {name} repeats packages of the sets below it: {both}"


def test_entries() -> None:
    for name, entry in LOCK["sets"].items():
        packages = entry["packages"]
        assert packages, f"set {name} is empty"
        names = [p["name"] for p in packages]
        assert names == sorted(set(names)), f"set {name}: not sorted or repeated"
        for p in packages:
            where = f"set {name}, {p.get('name')}"
            assert list(p) == ENTRY_KEYS, where
            assert re.search(r"^[0-9a-f]{64}$", p["sha256"]), where
            assert re.search(r"^pool/main/[a-z0-9+.~_/-]+\.deb$", p["filename"]), where
            assert f"/{p['name']}_" in p["filename"], where
            assert p["arch"] in (LOCK["arch"], "all"), where
            assert p["version"], where
            assert isinstance(p["size"], int), where
            assert p["size"] > 0, where


def test_no_hosts_or_urls() -> None:
    assert not re.search(r"[a-zA-Z][a-zA-Z0-9+.-]*://", LOCK_TEXT), "a URL in the lock"
    assert not re.search(
        r"\b[a-z0-9-]+(\.[a-z0-9-]+)*\.(org|com|net|io|edu)\b", LOCK_TEXT.lower()
    ), "a host"
    try:
        mirror = lock.find_mirror()  # this machine's, whatever it is called
    except lock.LockError:
        return  # no mirror here: none to leak
    host = urlsplit(mirror).hostname
    if host:
        assert host not in LOCK_TEXT, "the lock names the mirror of this machine"


def test_release_provenance() -> None:
    release = LOCK["release"]
    assert release["codename"] == CONFIG["suite"]
    assert re.search(r"^[0-9a-f]{64}$", release["packages_xz_sha256"])
    assert isinstance(release["inrelease_signature_verified"], bool)


def stanza(name: str, version: str = "1", depends: str = "", provides: str = "") -> str:
    lines = [
        f"Package: {name}",
        f"Version: {version}",
        "Architecture: amd64",
        f"Filename: pool/main/x/{name}/{name}_{version}_amd64.deb",
        f"SHA256: {'0' * 64}",
        "Size: 1",
    ]
    if depends:
        lines.append(f"Depends: {depends}")
    if provides:
        lines.append(f"Provides: {provides}")
    return "\n".join(lines)


@pytest.fixture
def resolver() -> lock.Resolver:
    """A resolver over a small index: alternatives, Provides, versions, an older duplicate."""
    index = "\n\n".join(
        [
            stanza("app", depends="libfoo (>= 2), tool | other, conf | conf-2.0, awk"),
            stanza("libfoo", "2.1", depends="libc"),
            stanza("libfoo", "1.0", depends="libc"),  # an older duplicate: ignored
            stanza("libc"),
            stanza("tool", depends="helper"),
            stanza("helper"),
            stanza("conf", depends="perl"),
            stanza("cdebconf", provides="conf-2.0"),
            stanza("perl"),
            stanza("mawk", provides="awk"),
            stanza("gawk", provides="awk"),
        ]
    )
    return lock.Resolver(lock.parse_packages(index, "amd64"))


def names(resolver: lock.Resolver, excludes: set[str], below: set[str]) -> list[str]:
    """What resolving app chooses, by name."""
    chosen, _ = resolver.resolve("t", ["app"], excludes, below)
    return sorted(chosen)


def test_closure(resolver: lock.Resolver) -> None:
    assert names(resolver, set(), set()) == [
        "app",
        "conf",
        "gawk",
        "helper",
        "libc",
        "libfoo",
        "perl",
        "tool",
    ]
    assert resolver.packages["libfoo"].version == "2.1"


def test_excluded_package_satisfies_its_group_and_drops_its_deps(resolver: lock.Resolver) -> None:
    assert names(resolver, {"conf", "awk"}, set()) == ["app", "helper", "libc", "libfoo", "tool"]


def test_lower_layers_are_left_out(resolver: lock.Resolver) -> None:
    assert names(resolver, {"conf", "awk"}, {"libc", "tool"}) == ["app", "libfoo"]


def test_a_lower_layer_is_checked_at_the_version_it_has(resolver: lock.Resolver) -> None:
    # A set from another suite (say sid) on a lower layer from the top-level one (trixie):
    # the lower layer's libfoo 1.0 does not satisfy app's libfoo (>= 2), whatever this
    # suite's own libfoo is.
    with pytest.raises(lock.LockError, match=r"app needs libfoo \(>= 2\); a lower layer has 1.0"):
        resolver.resolve("t", ["app"], {"conf", "awk"}, {"libfoo": "1.0"})
    chosen, _ = resolver.resolve("t", ["app"], {"conf", "awk"}, {"libfoo": "2.0"})
    assert "libfoo" not in chosen


def test_unsatisfiable_version() -> None:
    index = "\n\n".join([stanza("app", depends="lib (>= 3)"), stanza("lib", "2")])
    resolver = lock.Resolver(lock.parse_packages(index, "amd64"))
    with pytest.raises(lock.LockError, match=r"app needs lib \(>= 3\)"):
        resolver.resolve("t", ["app"], set(), set())


@pytest.mark.parametrize(
    ("a", "b"),
    list(
        itertools.pairwise(["1.0~rc1", "1.0", "1.0-1", "1.0-1+b1", "1.0a", "1.1", "1:0.9", "2:0"])
    ),
)
def test_dpkg_order(a: str, b: str) -> None:
    assert lock.version_compare(a, b) == -1, f"{a} < {b}"
    assert lock.version_compare(b, a) == 1, f"{b} > {a}"


def test_equal_versions() -> None:
    assert lock.version_compare("5:8.0.2-3", "5:8.0.2-3") == 0


def test_relations() -> None:
    assert lock.parse_relations("a (>= 1.2), b:any | c (<< 3~), d") == [
        [("a", ">=", "1.2")],
        [("b", "", ""), ("c", "<<", "3~")],
        [("d", "", "")],
    ]


# find_mirror runs mirror.sh (tested on its own by //tools/rules/debian:mirror_test).
def test_mirror_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBIAN_MIRROR", "http://127.0.0.1/debian/")
    assert lock.find_mirror() == "http://127.0.0.1/debian"


def test_mirror_from_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://127.0.0.2/debian sid main\n")
    assert lock.find_mirror(tmp_path) == "http://127.0.0.2/debian"


def test_no_mirror_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    with pytest.raises(lock.LockError, match=r"^found no Debian mirror in .*set DEBIAN_MIRROR"):
        lock.find_mirror(tmp_path)


def test_workspace_dir_under_bazel_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(HERE.parents[2]))
    assert (lock.workspace_dir() / lock.INPUT_NAME).is_file()


def test_cleartext_body() -> None:
    signed = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: x\n- -dashed\n"
        "-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n"
    )
    assert lock._cleartext_body(signed) == "Suite: x\n-dashed\n"
