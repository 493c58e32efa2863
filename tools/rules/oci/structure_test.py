"""Structure test of one OCI image, from its config and layer listing (`ocitool inspect`).

Plays the part of container-structure-test, which no registry reachable here carries: checks that
the entrypoint's and the HEALTHCHECK's programs are in the image, that the user is not root, that no
file is setuid or setgid, and which paths must or must not exist in the image's final filesystem.
"""

import argparse
import json
import stat
import subprocess
import sys
import unittest

ARGS: argparse.Namespace


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ocitool", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--expect-file", action="append", default=[])
    parser.add_argument("--forbid-file", action="append", default=[])
    return parser.parse_args(argv)


def final_filesystem(layers: list[dict]) -> dict[str, dict]:
    """Path -> entry after applying the layers in order (whiteouts remove what lies below)."""
    files: dict[str, dict] = {}
    for layer in layers:
        for entry in layer["files"]:
            path = "/" + entry["path"].lstrip("./").rstrip("/")
            name = path.rsplit("/", 1)[-1]
            if name.startswith(".wh."):
                hidden = path.rsplit("/", 1)[0] + "/" + name[len(".wh.") :]
                files = {
                    p: e for p, e in files.items() if p != hidden and not p.startswith(hidden + "/")
                }
                continue
            files[path] = entry
    return files


CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def resolve(files: dict[str, dict], path: str, hops: int = 40) -> str | None:
    """path with every symlink in it followed, in the image's final filesystem; None if it is
    missing (or the links loop)."""
    parts = [p for p in path.split("/") if p]
    current = ""
    while parts and hops:
        current = f"{current}/{parts.pop(0)}"
        entry = files.get(current)
        if entry is None:
            if parts:  # a directory no tar entry names, only the paths beneath it
                continue
            return None
        if entry.get("type") == "symlink":
            hops -= 1
            target = entry["linkname"]
            base = "" if target.startswith("/") else current.rsplit("/", 1)[0]
            parts = [p for p in f"{base}/{target}".split("/") if p] + parts
            current = ""
            # ".." inside a target: normalised as the kernel would, against the link's directory
            normal: list[str] = []
            for part in parts:
                if part == "..":
                    if normal:
                        normal.pop()
                elif part != ".":
                    normal.append(part)
            parts = normal
    return current if not parts else None


class ImageStructureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        out = subprocess.run(
            [ARGS.ocitool, "inspect", "--image", ARGS.image], check=True, capture_output=True
        ).stdout
        cls.image = json.loads(out)
        cls.config = cls.image["config"]
        cls.files = final_filesystem(cls.image["layers"])

    def assert_runs(self, program: str, what: str) -> None:
        """program (an absolute path: exec form, no shell, no PATH lookup) resolves to an
        executable file of the image."""
        self.assertTrue(program.startswith("/"), f"{what} {program!r}: want an absolute path")
        found = resolve(self.files, program)
        self.assertIsNotNone(found, f"{program} (the {what}) is not in the image")
        entry = self.files[found]
        self.assertEqual(entry.get("type"), "file", f"{found} (the {what}) is not a file")
        self.assertTrue(int(entry["mode"]) & 0o111, f"{found} (the {what}) is not executable")

    def test_entrypoint_runs_a_program_the_image_has(self) -> None:
        entrypoint = self.config.get("Entrypoint") or []
        self.assertTrue(entrypoint, "no entrypoint")
        self.assert_runs(entrypoint[0], "entrypoint")

    def test_healthcheck_runs_a_program_the_image_has(self) -> None:
        # An exec-form HEALTHCHECK (no shell in these images) whose program is missing or not
        # executable leaves the container "unhealthy" for ever, and nothing else shows why.
        test = (self.config.get("Healthcheck") or {}).get("Test") or []
        if not test:
            self.skipTest("the image has no HEALTHCHECK")
        self.assertEqual(test[0], "CMD", f"{test}: want the exec form, CMD and a program path")
        self.assert_runs(test[1], "HEALTHCHECK's program")

    def test_user_is_not_root(self) -> None:
        user = self.config.get("User", "")
        self.assertTrue(user, "no user set: the image would run as root")
        self.assertNotIn(user.split(":")[0], ("0", "root"))

    def test_no_setuid_or_setgid_files(self) -> None:
        flagged = [
            path
            for path, entry in self.files.items()
            if int(entry["mode"]) & (stat.S_ISUID | stat.S_ISGID) and entry.get("type") != "dir"
        ]
        self.assertEqual(flagged, [])

    def test_expected_files_present(self) -> None:
        missing = [p for p in ARGS.expect_file if p not in self.files]
        self.assertEqual(missing, [])

    def test_tls_clients_trust_the_system_bundle(self) -> None:
        # OpenSSL (Python's ssl, curl) looks for CAs at its compiled-in defaults, /usr/lib/ssl's
        # cert.pem and certs/; Go at /etc/ssl/certs/ca-certificates.crt. Every image carries the
        # bundle (the base layer): each default must lead to it, or TLS verification fails.
        for path, want in (
            ("/usr/lib/ssl/cert.pem", CA_BUNDLE),
            ("/usr/lib/ssl/certs/ca-certificates.crt", CA_BUNDLE),
            (CA_BUNDLE, CA_BUNDLE),
        ):
            with self.subTest(path=path):
                resolved = resolve(self.files, path)
                self.assertEqual(resolved, want)
                self.assertEqual(self.files[resolved].get("type"), "file")

    def test_forbidden_files_absent(self) -> None:
        present = [p for p in ARGS.forbid_file if p in self.files]
        self.assertEqual(present, [])


if __name__ == "__main__":
    ARGS = parse_args(sys.argv[1:])
    unittest.main(argv=[sys.argv[0], "-v"])
