"""Structure test of one OCI image, from its config and layer listing (`ocitool inspect`).

Plays the part of container-structure-test, which no registry reachable here carries: checks the
entrypoint, that the user is not root, that no file is setuid or setgid, and which paths must or
must not exist in the image's final filesystem.
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
    parser.add_argument("--entrypoint", required=True, help="JSON array")
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


class ImageStructureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        out = subprocess.run(
            [ARGS.ocitool, "inspect", "--image", ARGS.image], check=True, capture_output=True
        ).stdout
        cls.image = json.loads(out)
        cls.config = cls.image["config"]
        cls.files = final_filesystem(cls.image["layers"])

    def test_entrypoint(self) -> None:
        self.assertEqual(self.config.get("Entrypoint"), json.loads(ARGS.entrypoint))

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

    def test_forbidden_files_absent(self) -> None:
        present = [p for p in ARGS.forbid_file if p in self.files]
        self.assertEqual(present, [])


if __name__ == "__main__":
    ARGS = parse_args(sys.argv[1:])
    unittest.main(argv=[sys.argv[0], "-v"])
