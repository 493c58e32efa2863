#!/usr/bin/env python3
"""Resolves the Debian package sets of tools/rules/debian/packages.json into packages.lock.json.

    python3 tools/rules/debian/lock.py            # or: tools/bazel run //tools/rules/debian:lock
    python3 tools/rules/debian/lock.py --why NAME  # also print, per set, the chain that pulled
                                                   # NAME in

The mirror is never written anywhere: it comes from $DEBIAN_MIRROR, else from the machine's apt
sources (mirror.sh beside this file says how; tools/bazel and the repository rules run it too).

Trust chain: InRelease is checked against /usr/share/keyrings/debian-archive-keyring.gpg with gpgv
(or sqv, which Debian's apt now uses) when one of them and the keyring exist; Packages.xz is checked
against InRelease's SHA256 list; each .deb is later checked against the sha256 in the lock by
Bazel's ctx.download. The lock says whether the InRelease signature was verified.

Resolution, per set: the closure of Depends + Pre-Depends of its roots. For each dependency, an
alternative group is already satisfied when one alternative is excluded, already in the set, or in
a set this one layers on (`layers_on`); otherwise the first alternative that exists is taken, a real
package before a virtual one (among providers: one already chosen, else the first by name). An
excluded package therefore satisfies every dependency on it, and its own dependencies come in only
if something else needs them. Versions in dependencies are checked: a lock that cannot satisfy them
fails with the reason. A set may name its own "suite" (packages.json): it is then resolved against
that suite's index, and whatever its lower layers (from the top-level suite) provide is checked
against the versions they really have.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LOCK_NAME = "packages.lock.json"
INPUT_NAME = "packages.json"
TIMEOUT_S = 60


class LockError(Exception):
    """An error reported as one line, without a traceback."""


# --- Where things are -------------------------------------------------------------------------


def workspace_dir() -> Path:
    """tools/rules/debian in the source tree, also under `bazel run` (which sets the variable)."""
    root = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if root:
        return Path(root) / "tools" / "rules" / "debian"
    return HERE


def find_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror's URL, as mirror.sh finds it: $DEBIAN_MIRROR, else the apt sources in
    etc_apt. LockError with mirror.sh's one line when there is none."""
    result = subprocess.run(  # noqa: S603 (our own script)
        [HERE / "mirror.sh", etc_apt], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise LockError(result.stderr.strip() or f"mirror.sh failed ({result.returncode})")
    return result.stdout.strip()


def fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (mirror URL)
            return response.read()
    except urllib.error.HTTPError as error:
        raise LockError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise LockError(f"cannot reach the Debian mirror ({url}): {reason}") from None


# --- InRelease --------------------------------------------------------------------------------


def verify_inrelease(signed: bytes) -> tuple[str, bool]:
    """Returns (the release text, whether its signature was checked against Debian's keyring)."""
    tool = shutil.which("gpgv") or shutil.which("sqv")
    if tool and Path(KEYRING).is_file():
        with tempfile.TemporaryDirectory() as tmp:
            src, out = Path(tmp) / "InRelease", Path(tmp) / "Release"
            src.write_bytes(signed)
            if Path(tool).name == "gpgv":
                cmd = [tool, "--quiet", "--keyring", KEYRING, "--output", str(out), str(src)]
            else:
                cmd = [tool, "--keyring", KEYRING, "--cleartext", "--output", str(out), str(src)]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
            if result.returncode != 0:
                detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise LockError(f"InRelease: bad signature ({Path(tool).name}: {detail})")
            return out.read_text(encoding="utf-8"), True
    return _cleartext_body(signed.decode("utf-8")), False


def _cleartext_body(text: str) -> str:
    """The signed text of an OpenPGP cleartext message, unverified."""
    lines = text.splitlines()
    try:
        start = lines.index("-----BEGIN PGP SIGNED MESSAGE-----")
        end = lines.index("-----BEGIN PGP SIGNATURE-----")
    except ValueError:
        return text
    body = lines[start + 1 : end]
    while body and body[0].strip():  # armor headers (Hash: ...)
        body = body[1:]
    return "\n".join(line.removeprefix("- ") for line in body[1:]) + "\n"


def release_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line[:1].isspace() and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def expected_sha256(release: dict[str, str], path: str) -> tuple[str, int]:
    for line in release.get("SHA256", "").splitlines():
        words = line.split()
        if len(words) == 3 and words[2] == path:
            return words[0], int(words[1])
    raise LockError(f"InRelease lists no SHA256 for {path}")


# --- Packages ---------------------------------------------------------------------------------


@dataclass
class Package:
    name: str
    version: str
    arch: str
    filename: str
    sha256: str
    size: int
    depends: list[list[tuple[str, str, str]]] = field(default_factory=list)
    provides: list[tuple[str, str]] = field(default_factory=list)

    def entry(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "arch": self.arch,
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
        }


_RELATION = re.compile(
    r"^([a-z0-9][a-z0-9+.\-]*)(?::[a-z0-9]+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?"
)


def parse_relations(value: str) -> list[list[tuple[str, str, str]]]:
    """`a (>= 1) | b, c` -> [[(a, >=, 1), (b, '', '')], [(c, '', '')]]."""
    groups: list[list[tuple[str, str, str]]] = []
    for group in value.split(","):
        alternatives = []
        for alt in group.split("|"):
            match = _RELATION.match(alt.strip())
            if match:
                alternatives.append((match[1], match[2] or "", match[3] or ""))
        if alternatives:
            groups.append(alternatives)
    return groups


def parse_packages(text: str, arch: str) -> dict[str, Package]:
    packages: dict[str, Package] = {}
    for stanza in text.split("\n\n"):
        fields = release_fields(stanza)
        if "Package" not in fields or fields.get("Architecture") not in (arch, "all"):
            continue
        depends = fields.get("Pre-Depends", "") + "," + fields.get("Depends", "")
        pkg = Package(
            name=fields["Package"],
            version=fields["Version"],
            arch=fields["Architecture"],
            filename=fields["Filename"],
            sha256=fields["SHA256"],
            size=int(fields["Size"]),
            depends=parse_relations(depends),
            provides=[(n, v) for [(n, _, v)] in parse_relations(fields.get("Provides", ""))],
        )
        old = packages.get(pkg.name)
        if old is None or version_compare(pkg.version, old.version) > 0:
            packages[pkg.name] = pkg
    return packages


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _lead(pattern: str, text: str) -> str:
    match = re.match(pattern, text)
    return match[0] if match else ""


def _compare_part(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or Debian revision."""
    while a or b:
        da, db = _lead(r"[^0-9]*", a), _lead(r"[^0-9]*", b)
        for i in range(max(len(da), len(db))):
            ca = _order(da[i]) if i < len(da) else 0
            cb = _order(db[i]) if i < len(db) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(da) :], b[len(db) :]
        na, nb = _lead(r"[0-9]*", a), _lead(r"[0-9]*", b)
        if int(na or 0) != int(nb or 0):
            return -1 if int(na or 0) < int(nb or 0) else 1
        a, b = a[len(na) :], b[len(nb) :]
    return 0


def version_compare(a: str, b: str) -> int:
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch), upstream, revision

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def satisfies(version: str, op: str, wanted: str) -> bool:
    if not op:
        return True
    c = version_compare(version, wanted)
    return {
        "<<": c < 0,
        "<=": c <= 0,
        "=": c == 0,
        ">=": c >= 0,
        ">>": c > 0,
        "<": c <= 0,
        ">": c >= 0,
    }[op]


# --- Resolution -------------------------------------------------------------------------------


class Resolver:
    def __init__(self, packages: dict[str, Package]) -> None:
        self.packages = packages
        self.providers: dict[str, list[tuple[str, str]]] = {}
        for pkg in packages.values():
            for virtual, version in pkg.provides:
                self.providers.setdefault(virtual, []).append((pkg.name, version))
        for names in self.providers.values():
            names.sort()

    def _candidates(self, name: str, op: str, version: str) -> list[str]:
        """Packages that satisfy `name (op version)`, a real package first."""
        found = []
        real = self.packages.get(name)
        if real and satisfies(real.version, op, version):
            found.append(name)
        for provider, provided in self.providers.get(name, []):
            if not op or (provided and satisfies(provided, op, version)):
                found.append(provider)
        return found

    def resolve(
        self,
        set_name: str,
        roots: list[str],
        excludes: set[str],
        below: dict[str, str] | set[str],
    ) -> tuple[dict[str, Package], dict[str, str]]:
        """The closure of `roots`, minus excludes and what `below` (lower layers) has.

        `below` maps each package of the lower layers to its locked version (a set: versions
        unchecked). A lower layer may come from another suite (a set's own "suite"), so a
        dependency it satisfies is checked against the version it really has, and LockError says
        so when it is too old. Returns the packages and, for each, the package that pulled it in
        ("" for a root).
        """
        below_versions = below if isinstance(below, dict) else {}
        chosen: dict[str, Package] = {}
        parent: dict[str, str] = {}
        queue: list[str] = []
        for root in roots:
            if root not in self.packages:
                raise LockError(f"set {set_name}: root {root} is not in the suite")
            if root in excludes:
                raise LockError(f"set {set_name}: {root} is both a root and excluded")
            if root not in below and root not in chosen:
                chosen[root] = self.packages[root]
                parent[root] = ""
                queue.append(root)
        while queue:
            pkg = self.packages[queue.pop(0)]
            for group in pkg.depends:
                for name, op, version in group:
                    lower = below_versions.get(name)
                    if lower and op and not satisfies(lower, op, version) and len(group) == 1:
                        raise LockError(
                            f"set {set_name}: {pkg.name} needs {name} ({op} {version}); a lower"
                            f" layer has {lower}"
                        )
                options = [(alt, self._candidates(*alt)) for alt in group]
                if any(
                    alt[0] in excludes
                    or any(c in excludes or c in below or c in chosen for c in cs)
                    for alt, cs in options
                ):
                    continue
                pick = next((cs[0] for _, cs in options if cs), None)
                if pick is None:
                    wanted = " | ".join(f"{n} ({o} {v})" if o else n for n, o, v in group)
                    raise LockError(f"set {set_name}: {pkg.name} needs {wanted}: not in the suite")
                chosen[pick] = self.packages[pick]
                parent[pick] = pkg.name
                queue.append(pick)
        return chosen, parent


def why(name: str, parent: dict[str, str]) -> str:
    chain = [name]
    while parent.get(chain[-1]):
        chain.append(parent[chain[-1]])
    return " <- ".join(chain)


# --- Main -------------------------------------------------------------------------------------


def canonical_sha256(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def set_order(sets: dict[str, dict[str, Any]]) -> list[str]:
    """Set names with every set after the sets it layers on."""
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in path:
            raise LockError(f"sets layer on each other in a cycle: {' -> '.join((*path, name))}")
        if name not in sets:
            raise LockError(f"set {path[-1]} layers on unknown set {name}")
        for lower in sets[name].get("layers_on", []):
            visit(str(lower), (*path, name))
        done.append(name)

    for name in sorted(sets):
        visit(name, ())
    return done


@dataclass
class Suite:
    """One suite's verified package index."""

    name: str
    packages: dict[str, Package]
    resolver: Resolver
    release: dict[str, Any]


def load_suite(mirror: str, suite: str, arch: str, component: str) -> Suite:
    """Fetches and verifies `suite`'s InRelease and Packages.xz. LockError on any mismatch."""
    signed = fetch(f"{mirror}/dists/{suite}/InRelease")
    release_text, verified = verify_inrelease(signed)
    release = release_fields(release_text)
    index = f"{component}/binary-{arch}/Packages.xz"
    want_sha, want_size = expected_sha256(release, index)
    data = fetch(f"{mirror}/dists/{suite}/{index}")
    got_sha = hashlib.sha256(data).hexdigest()
    if got_sha != want_sha or len(data) != want_size:
        raise LockError(
            f"{suite} {index}: sha256 {got_sha} ({len(data)} bytes) is not InRelease's {want_sha}"
        )
    packages = parse_packages(lzma.decompress(data).decode("utf-8"), arch)
    return Suite(
        name=suite,
        packages=packages,
        resolver=Resolver(packages),
        release={
            "codename": release.get("Codename", ""),
            "version": release.get("Version", ""),
            "date": release.get("Date", ""),
            "packages_xz_sha256": got_sha,
            "inrelease_signature_verified": verified,
        },
    )


def lock(config: dict[str, Any], mirror: str, why_names: list[str]) -> dict[str, Any]:
    """packages.json's sets resolved: each against the top-level suite, or its own "suite"."""
    suite, arch = str(config["suite"]), str(config["arch"])
    component = str(config.get("component", "main"))
    suites: dict[str, Suite] = {}
    for name in [
        suite,
        *sorted({str(s["suite"]) for s in config["sets"].values() if "suite" in s}),
    ]:
        if name not in suites:
            suites[name] = load_suite(mirror, name, arch, component)

    sets: dict[str, dict[str, Any]] = config["sets"]
    closures: dict[str, dict[str, str]] = {}
    out_sets: dict[str, Any] = {}
    for name in set_order(sets):
        spec = sets[name]
        source = suites[str(spec.get("suite", suite))]
        layers_on = sorted(str(s) for s in spec.get("layers_on", []))
        below: dict[str, str] = {}
        for lower in layers_on:
            below |= closures[lower]
        excludes = {str(e) for e in spec.get("excludes", [])}
        unknown = sorted(
            e for e in excludes if e not in source.packages and e not in source.resolver.providers
        )
        if unknown:
            raise LockError(f"set {name}: excludes {', '.join(unknown)}: not in {source.name}")
        roots = [str(r) for r in spec["roots"]]
        chosen, parent = source.resolver.resolve(name, roots, excludes, below)
        closures[name] = below | {n: p.version for n, p in chosen.items()}
        for wanted in why_names:
            if wanted in chosen:
                print(f"{name}: {why(wanted, parent)}", file=sys.stderr)
        out_sets[name] = {
            **({"suite": source.name} if source.name != suite else {}),
            "layers_on": layers_on,
            "packages": [chosen[n].entry() for n in sorted(chosen)],
        }
    return {
        "comment": (
            "Generated by tools/rules/debian/lock.py from packages.json: do not edit by hand."
        ),
        "suite": suite,
        "arch": arch,
        "component": component,
        "release": suites[suite].release,
        **(
            {"other_releases": {n: s.release for n, s in sorted(suites.items()) if n != suite}}
            if len(suites) > 1
            else {}
        ),
        "input_sha256": canonical_sha256(config),
        "sets": {name: out_sets[name] for name in sorted(out_sets)},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--why", action="append", default=[], metavar="PACKAGE")
    args = parser.parse_args(argv)
    directory = workspace_dir()
    try:
        try:
            config = json.loads((directory / INPUT_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise LockError(f"{directory / INPUT_NAME}: {error}") from None
        result = lock(config, find_mirror(), args.why)
    except LockError as error:
        print(f"lock.py: error: {error}", file=sys.stderr)
        return 1
    target = directory / LOCK_NAME
    target.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    verified = result["release"]["inrelease_signature_verified"]
    print(
        f"wrote {target}: "
        + ", ".join(f"{n} {len(s['packages'])}" for n, s in result["sets"].items())
        + f" packages; InRelease signature {'verified' if verified else 'NOT verified'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
