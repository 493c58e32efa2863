"""Offline checks of packages.lock.json against packages.json, and of lock.py's resolver.

Run by `tools/bazel test //tools/rules/debian:lock_test`, or
`python3 tools/rules/debian/lock_test.py`.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

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


class LockMatchesInput(unittest.TestCase):
    def test_lock_is_from_this_input(self) -> None:
        self.assertEqual(
            LOCK["input_sha256"],
            lock.canonical_sha256(CONFIG),
            f"packages.json changed since the lock was written: {REGENERATE}",
        )

    def test_suite_and_sets(self) -> None:
        for key in ("suite", "arch", "component"):
            self.assertEqual(LOCK[key], CONFIG[key], key)
        self.assertEqual(sorted(LOCK["sets"]), sorted(CONFIG["sets"]))
        self.assertEqual(list(LOCK["sets"]), sorted(LOCK["sets"]), "sets must be sorted")

    def test_roots_present(self) -> None:
        for name, spec in CONFIG["sets"].items():
            have = {p["name"] for p in LOCK["sets"][name]["packages"]} | lower_closure(name)
            for root in spec["roots"]:
                self.assertIn(root, have, f"set {name}: root {root} missing from the lock")

    def test_no_excluded_package(self) -> None:
        for name, spec in CONFIG["sets"].items():
            have = {p["name"] for p in LOCK["sets"][name]["packages"]}
            for excluded in spec.get("excludes", []):
                self.assertNotIn(excluded, have, f"set {name}: {excluded} is excluded")

    def test_layers(self) -> None:
        for name, spec in CONFIG["sets"].items():
            self.assertEqual(LOCK["sets"][name]["layers_on"], sorted(spec.get("layers_on", [])))
            have = {p["name"] for p in LOCK["sets"][name]["packages"]}
            both = have & lower_closure(name)
            self.assertFalse(both, f"set {name} repeats packages of the sets below it: {both}")

    def test_entries(self) -> None:
        for name, entry in LOCK["sets"].items():
            packages = entry["packages"]
            self.assertTrue(packages, f"set {name} is empty")
            names = [p["name"] for p in packages]
            self.assertEqual(names, sorted(set(names)), f"set {name}: not sorted or repeated")
            for p in packages:
                where = f"set {name}, {p.get('name')}"
                self.assertEqual(list(p), ENTRY_KEYS, where)
                self.assertRegex(p["sha256"], r"^[0-9a-f]{64}$", where)
                self.assertRegex(p["filename"], r"^pool/main/[a-z0-9+.~_/-]+\.deb$", where)
                self.assertIn(f"/{p['name']}_", p["filename"], where)
                self.assertIn(p["arch"], (LOCK["arch"], "all"), where)
                self.assertTrue(p["version"], where)
                self.assertIsInstance(p["size"], int, where)
                self.assertGreater(p["size"], 0, where)

    def test_no_hosts_or_urls(self) -> None:
        self.assertNotRegex(LOCK_TEXT, r"[a-zA-Z][a-zA-Z0-9+.-]*://", "a URL in the lock")
        self.assertNotRegex(
            LOCK_TEXT.lower(), r"\b[a-z0-9-]+(\.[a-z0-9-]+)*\.(org|com|net|io|edu)\b", "a host"
        )
        try:
            mirror = lock.find_mirror()  # this machine's, whatever it is called
        except lock.LockError:
            return  # no mirror here: none to leak
        host = urlsplit(mirror).hostname
        if host:
            self.assertNotIn(host, LOCK_TEXT, "the lock names the mirror of this machine")

    def test_release_provenance(self) -> None:
        release = LOCK["release"]
        self.assertEqual(release["codename"], CONFIG["suite"])
        self.assertRegex(release["packages_xz_sha256"], r"^[0-9a-f]{64}$")
        self.assertIsInstance(release["inrelease_signature_verified"], bool)


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


class Resolver(unittest.TestCase):
    def setUp(self) -> None:
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
        self.resolver = lock.Resolver(lock.parse_packages(index, "amd64"))

    def names(self, excludes: set[str], below: set[str]) -> list[str]:
        chosen, _ = self.resolver.resolve("t", ["app"], excludes, below)
        return sorted(chosen)

    def test_closure(self) -> None:
        self.assertEqual(
            self.names(set(), set()),
            ["app", "conf", "gawk", "helper", "libc", "libfoo", "perl", "tool"],
        )
        self.assertEqual(self.resolver.packages["libfoo"].version, "2.1")

    def test_excluded_package_satisfies_its_group_and_drops_its_deps(self) -> None:
        self.assertEqual(
            self.names({"conf", "awk"}, set()), ["app", "helper", "libc", "libfoo", "tool"]
        )

    def test_lower_layers_are_left_out(self) -> None:
        self.assertEqual(self.names({"conf", "awk"}, {"libc", "tool"}), ["app", "libfoo"])

    def test_a_lower_layer_is_checked_at_the_version_it_has(self) -> None:
        # A set from another suite (say sid) on a lower layer from the top-level one (trixie):
        # the lower layer's libfoo 1.0 does not satisfy app's libfoo (>= 2), whatever this
        # suite's own libfoo is.
        with self.assertRaisesRegex(
            lock.LockError, r"app needs libfoo \(>= 2\); a lower layer has 1.0"
        ):
            self.resolver.resolve("t", ["app"], {"conf", "awk"}, {"libfoo": "1.0"})
        chosen, _ = self.resolver.resolve("t", ["app"], {"conf", "awk"}, {"libfoo": "2.0"})
        self.assertNotIn("libfoo", chosen)

    def test_unsatisfiable_version(self) -> None:
        index = "\n\n".join([stanza("app", depends="lib (>= 3)"), stanza("lib", "2")])
        resolver = lock.Resolver(lock.parse_packages(index, "amd64"))
        with self.assertRaisesRegex(lock.LockError, r"app needs lib \(>= 3\)"):
            resolver.resolve("t", ["app"], set(), set())


class Versions(unittest.TestCase):
    def test_dpkg_order(self) -> None:
        ordered = ["1.0~rc1", "1.0", "1.0-1", "1.0-1+b1", "1.0a", "1.1", "1:0.9", "2:0"]
        for a, b in itertools.pairwise(ordered):
            self.assertEqual(lock.version_compare(a, b), -1, f"{a} < {b}")
            self.assertEqual(lock.version_compare(b, a), 1, f"{b} > {a}")
        self.assertEqual(lock.version_compare("5:8.0.2-3", "5:8.0.2-3"), 0)

    def test_relations(self) -> None:
        self.assertEqual(
            lock.parse_relations("a (>= 1.2), b:any | c (<< 3~), d"),
            [[("a", ">=", "1.2")], [("b", "", ""), ("c", "<<", "3~")], [("d", "", "")]],
        )


class Mirror(unittest.TestCase):
    """find_mirror runs mirror.sh (tested on its own by //tools/rules/debian:mirror_test)."""

    def test_environment_wins(self) -> None:
        with mock.patch.dict(os.environ, {"DEBIAN_MIRROR": "http://127.0.0.1/debian/"}):
            self.assertEqual(lock.find_mirror(), "http://127.0.0.1/debian")

    def test_apt_sources(self) -> None:
        with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ):
            os.environ.pop("DEBIAN_MIRROR", None)
            Path(tmp, "sources.list").write_text(
                "deb [arch=amd64] http://127.0.0.2/debian sid main\n"
            )
            self.assertEqual(lock.find_mirror(Path(tmp)), "http://127.0.0.2/debian")

    def test_none_is_one_line(self) -> None:
        with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ):
            os.environ.pop("DEBIAN_MIRROR", None)
            with self.assertRaisesRegex(
                lock.LockError, r"^found no Debian mirror in .*set DEBIAN_MIRROR"
            ):
                lock.find_mirror(Path(tmp))

    def test_workspace_dir_under_bazel_run(self) -> None:
        workspace = HERE.parents[2]
        with mock.patch.dict(os.environ, {"BUILD_WORKSPACE_DIRECTORY": str(workspace)}):
            self.assertTrue((lock.workspace_dir() / lock.INPUT_NAME).is_file())


class InRelease(unittest.TestCase):
    def test_cleartext_body(self) -> None:
        signed = (
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: x\n- -dashed\n"
            "-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n"
        )
        self.assertEqual(lock._cleartext_body(signed), "Suite: x\n-dashed\n")


if __name__ == "__main__":
    unittest.main()
