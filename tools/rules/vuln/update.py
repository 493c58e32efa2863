"""Pins the newest golang.org/x/vulndb snapshot in vulndb.lock.json (module version and hash).

`tools/bazel run //tools/rules/vuln:update`: asks the Go module proxy (the machine's GOPROXY) for
the
module's latest version, downloads it with the go command (which checks it against the checksum
database) and writes the version and its go.sum hash. The next build re-indexes the database.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MODULE = "golang.org/x/vulndb"


def go_json(*args: str) -> dict:
    """Runs a go command that prints one JSON object, in an empty scratch module."""
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "go.mod").write_text("module scratch\n")
        out = subprocess.run(
            ["go", *args],
            cwd=scratch,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return json.loads(out)


def main() -> int:
    lock = Path(os.environ["BUILD_WORKSPACE_DIRECTORY"], "tools/rules/vuln/vulndb.lock.json")
    version = go_json("list", "-m", "-json", f"{MODULE}@latest")["Version"]
    download = go_json("mod", "download", "-json", f"{MODULE}@{version}")
    pinned = {"module": MODULE, "version": version, "sum": download["Sum"]}
    old = json.loads(lock.read_text())
    lock.write_text(json.dumps(pinned, indent=2) + "\n")
    print(f"{MODULE}: {old['version']} -> {version} ({download['Sum']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
