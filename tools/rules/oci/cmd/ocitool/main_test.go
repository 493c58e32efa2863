package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"cacheplatform/tools/rules/oci/internal/image"
)

// ocitool runs one command in-process and returns its stdout; it fails the test on a non-zero exit.
func ocitool(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("ocitool %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

func write(t *testing.T, path string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// tarFile writes a tar of entries at path; a regular file's data is "data of NAME".
func tarFile(t *testing.T, path string, entries ...tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		data := []byte("data of " + h.Name)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return write(t, path, buf.Bytes(), 0o644)
}

// packageTar is what `dpkg-deb --fsys-tarfile` gives for a small package.
func packageTar(t *testing.T, path string) string {
	t.Helper()
	return tarFile(t, path,
		tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeDir, Name: "./usr/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeDir, Name: "./usr/bin/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/su", Mode: 0o4755, Uname: "root", Gname: "root"},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/chage", Mode: 0o2755, Gid: 42, Gname: "shadow"},
		tar.Header{Typeflag: tar.TypeLink, Name: "./usr/bin/su2", Linkname: "./usr/bin/su"},
		tar.Header{Typeflag: tar.TypeSymlink, Name: "./usr/bin/sg", Linkname: "newgrp", Mode: 0o777},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/share/doc/login/copyright", Mode: 0o644},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/share/man/man1/su.1.gz", Mode: 0o644},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/share/locale/de/LC_MESSAGES/shadow.mo", Mode: 0o644},
	)
}

// appTar is what pkg_tar gives for an app's files, directories and symlinks: a layer as it is.
func appTar(t *testing.T, path string) string {
	t.Helper()
	return tarFile(t, path,
		tar.Header{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeReg, Name: "app/server", Mode: 0o755, Uid: 1001, Gid: 1001},
		tar.Header{Typeflag: tar.TypeDir, Name: "app/site-packages/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeDir, Name: "app/site-packages/flask/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeReg, Name: "app/site-packages/flask/__init__.py", Mode: 0o644},
		tar.Header{Typeflag: tar.TypeDir, Name: "data/", Mode: 0o750, Uid: 1001, Gid: 1001},
		tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644},
		tar.Header{Typeflag: tar.TypeDir, Name: "home/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeDir, Name: "home/nonroot/", Mode: 0o700, Uid: 1001, Gid: 1001},
		tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/local/bin/server", Linkname: "/app/server", Mode: 0o777},
	)
}

func TestMainFlow(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	dir := t.TempDir()
	pkg := packageTar(t, filepath.Join(dir, "login.tar"))
	appLayer := appTar(t, filepath.Join(dir, "app.tar"))

	build := func(out string) string {
		baseLayer := filepath.Join(out, "base.tar")
		ocitool(t, "layer", "--out", baseLayer, "--tar", pkg,
			"--exclude", "usr/share/doc/**", "--exclude", "usr/share/man/**", "--exclude", "usr/share/locale/**")
		baseDir, imgDir := filepath.Join(out, "base"), filepath.Join(out, "img")
		ocitool(t, "image", "--out", baseDir, "--layer", baseLayer, "--env", "PATH=/usr/bin:/bin", "--env", "LANG=C.UTF-8",
			"--user", "1001:1001", "--label", "org.opencontainers.image.vendor=cache-platform")
		digest := ocitool(t, "image", "--out", imgDir, "--base", baseDir, "--layer", appLayer,
			"--entrypoint", `["/app/server"]`, "--cmd", `["--port","8080"]`, "--env", "PATH=/app:/usr/bin:/bin",
			"--env", "PYTHONPATH=/app/site-packages", "--workdir", "/app", "--exposed-port", "8080/tcp",
			"--label", "org.opencontainers.image.title=server", "--healthcheck", `["CMD","/app/server","-probe"]`,
			"--stop-signal", "SIGQUIT")
		if got := ocitool(t, "digest", "--image", imgDir); got != digest {
			t.Errorf("digest prints %q, image printed %q", got, digest)
		}
		ocitool(t, "docker-archive", "--image", imgDir, "--tag", "cache-platform/server:dev", "--tag", "cache-platform/server:latest",
			"--out", filepath.Join(out, "image.tar"))
		return strings.TrimSpace(digest)
	}
	first, second := t.TempDir(), t.TempDir()
	d1, d2 := build(first), build(second)
	if d1 != d2 || !strings.HasPrefix(d1, "sha256:") {
		t.Fatalf("two builds give %q and %q", d1, d2)
	}
	for _, f := range []string{"base.tar", "image.tar", "img/index.json"} {
		a, errA := os.ReadFile(filepath.Join(first, f))
		b, errB := os.ReadFile(filepath.Join(second, f))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds (%v, %v)", f, errA, errB)
		}
	}

	var report image.Report
	if err := json.Unmarshal([]byte(ocitool(t, "inspect", "--image", filepath.Join(first, "img"))), &report); err != nil {
		t.Fatal(err)
	}
	if report.Digest != d1 || len(report.Layers) != 2 || report.CompressedSize <= 0 || report.UncompressedSize <= report.CompressedSize {
		t.Errorf("report: digest %s layers %d sizes %d/%d", report.Digest, len(report.Layers), report.CompressedSize, report.UncompressedSize)
	}
	c := report.Config
	for _, check := range []struct {
		what string
		ok   bool
	}{
		{"entrypoint", slices.Equal(c.Entrypoint, []string{"/app/server"})},
		{"cmd", slices.Equal(c.Cmd, []string{"--port", "8080"})},
		{"env merged with the base's", slices.Equal(c.Env, []string{"PATH=/app:/usr/bin:/bin", "LANG=C.UTF-8", "PYTHONPATH=/app/site-packages"})},
		{"user inherited", c.User == "1001:1001"},
		{"workdir", c.WorkingDir == "/app"},
		{"port", len(c.ExposedPorts) == 1},
		{"labels merged", c.Labels["org.opencontainers.image.vendor"] == "cache-platform" && c.Labels["org.opencontainers.image.title"] == "server"},
		{"healthcheck", c.Healthcheck != nil && slices.Equal(c.Healthcheck.Test, []string{"CMD", "/app/server", "-probe"})},
		{"stop signal", c.StopSignal == "SIGQUIT"},
		{"created", report.Created == "1970-01-01T00:00:00Z"},
	} {
		if !check.ok {
			t.Errorf("%s: config %+v", check.what, c)
		}
	}

	files := map[string]image.File{}
	for _, l := range report.Layers {
		for _, f := range l.Files {
			files[strings.TrimSuffix(f.Path, "/")] = f
		}
	}
	for path, want := range map[string]string{
		"usr/bin/su":                          "file 755 0:0",
		"usr/bin/su2":                         "hardlink 755 0:0 usr/bin/su",
		"usr/bin/chage":                       "file 755 0:42",
		"usr/bin/sg":                          "symlink 777 0:0 newgrp",
		"etc/passwd":                          "file 644 0:0",
		"app":                                 "dir 755 0:0",
		"app/server":                          "file 755 1001:1001",
		"data":                                "dir 750 1001:1001",
		"home":                                "dir 755 0:0",
		"home/nonroot":                        "dir 700 1001:1001",
		"usr/local/bin/server":                "symlink 777 0:0 /app/server",
		"app/site-packages/flask/__init__.py": "file 644 0:0",
		"usr/share/doc/login/copyright":       "",
		"usr/share/man/man1/su.1.gz":          "",
		"usr/share/locale":                    "",
	} {
		f, ok := files[path]
		got := ""
		if ok {
			got = strings.TrimSpace(strings.Join([]string{f.Type, strconv.FormatInt(f.Mode, 8), strconv.Itoa(f.UID) + ":" + strconv.Itoa(f.GID), f.Linkname}, " "))
		}
		if got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}

	for _, tag := range []string{"cache-platform/server:dev", "cache-platform/server:latest"} {
		ref, err := name.NewTag(tag)
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := tarball.ImageFromPath(filepath.Join(first, "image.tar"), &ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := loaded.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != report.ConfigDigest {
			t.Errorf("%s: config %s in the docker-archive, %s in the layout", tag, got, report.ConfigDigest)
		}
	}
}

func TestSourceDateEpoch(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	layerTar := filepath.Join(dir, "l.tar")
	ocitool(t, "layer", "--out", layerTar, "--tar", tarFile(t, filepath.Join(dir, "in.tar"), tar.Header{Typeflag: tar.TypeDir, Name: "x/", Mode: 0o755}))
	ocitool(t, "image", "--out", filepath.Join(dir, "img"), "--layer", layerTar)
	if h, err := tar.NewReader(mustOpen(t, layerTar)).Next(); err != nil || h.ModTime.Unix() != 1700000000 {
		t.Errorf("layer entry: %+v, %v; want dated SOURCE_DATE_EPOCH", h, err)
	}
	var report image.Report
	if err := json.Unmarshal([]byte(ocitool(t, "inspect", "--image", filepath.Join(dir, "img"))), &report); err != nil {
		t.Fatal(err)
	}
	if report.Created != "2023-11-14T22:13:20Z" {
		t.Errorf("created %s", report.Created)
	}
	ocitool(t, "image", "--out", filepath.Join(dir, "img2"), "--created", "2024-01-01T00:00:00Z")
	if err := json.Unmarshal([]byte(ocitool(t, "inspect", "--image", filepath.Join(dir, "img2"))), &report); err != nil {
		t.Fatal(err)
	}
	if report.Created != "2024-01-01T00:00:00Z" || len(report.Layers) != 0 {
		t.Errorf("created %s, %d layers", report.Created, len(report.Layers))
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	src := write(t, filepath.Join(dir, "f"), []byte("x"), 0o644)
	out := filepath.Join(dir, "out.tar")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "no command"},
		{[]string{"build"}, 2, "unknown command"},
		{[]string{"layer"}, 2, "--out is required"},
		{[]string{"layer", "--out", out, "extra"}, 2, "unexpected argument"},
		{[]string{"layer", "--out", out, "--nope"}, 2, "not defined"},
		{[]string{"layer", "--out", out, "--file", "a=b"}, 2, "not defined"}, // files are pkg_tar's now
		{[]string{"layer", "--out", out, "--exclude", "[x"}, 2, "exclude"},
		{[]string{"layer", "--out", out, "--tar", filepath.Join(dir, "missing")}, 1, "missing"},
		{[]string{"layer", "--out", out, "--tar", src}, 1, src},
		{[]string{"image", "--out", filepath.Join(dir, "i"), "--entrypoint", "/app"}, 2, "JSON array"},
		{[]string{"image", "--out", filepath.Join(dir, "i"), "--healthcheck", "[]"}, 2, "JSON array"},
		{[]string{"image", "--out", filepath.Join(dir, "i"), "--env", "NOVALUE"}, 2, "K=V"},
		{[]string{"image", "--out", filepath.Join(dir, "i"), "--exposed-port", "http"}, 2, "PORT"},
		{[]string{"image", "--out", filepath.Join(dir, "i"), "--stop-signal", "QUIT"}, 2, "--stop-signal"},
		{[]string{"image", "--out", filepath.Join(dir, "i"), "--created", "yesterday"}, 2, "RFC 3339"},
		{[]string{"image", "--out", filepath.Join(dir, "i"), "--base", dir}, 1, "--base"},
		{[]string{"image", "--out", dir}, 1, "not an OCI image layout"},
		{[]string{"docker-archive", "--image", dir, "--out", out}, 2, "--tag is required"},
		{[]string{"inspect"}, 2, "--image is required"},
		{[]string{"digest", "--image", filepath.Join(dir, "nothing")}, 1, "--image"},
		{[]string{"digest", "-h"}, 0, ""},
		{[]string{"push", "--image", dir}, 2, "--repository is required"},
		{[]string{"push", "--image", dir, "--repository", "Upper/Case"}, 2, "--repository"},
		{[]string{"push", "--image", dir, "--repository", "127.0.0.1:5000/x", "--tag", "a:b"}, 2, "--tag"},
		{[]string{"push", "--image", dir, "--repository", "127.0.0.1:5000/x"}, 1, "--image"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		msg := stderr.String()
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("ocitool %q: exit %d, %q; want %d, %q", tc.args, code, msg, tc.code, tc.msg)
		}
		if code != 0 && strings.Count(strings.TrimSpace(msg), "\n") != 0 {
			t.Errorf("ocitool %q: error is not one line: %q", tc.args, msg)
		}
	}
}

func mustOpen(t *testing.T, path string) io.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestPush pushes to an in-memory registry on loopback and reads back, by the printed digest and by
// each tag, the very manifest the layout holds.
func TestPush(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials of the machine's
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	dir := t.TempDir()
	layerTar := tarFile(t, filepath.Join(dir, "l.tar"), tar.Header{Typeflag: tar.TypeReg, Name: "app/x", Mode: 0o644})
	imgDir := filepath.Join(dir, "img")
	digest := strings.TrimSpace(ocitool(t, "image", "--out", imgDir, "--layer", layerTar))
	repo := strings.TrimPrefix(srv.URL, "http://") + "/cache-platform/x"

	got := strings.TrimSpace(ocitool(t, "push", "--image", imgDir, "--repository", repo, "--tag", "dev", "--tag", "v1"))
	if want := repo + "@" + digest; got != want {
		t.Fatalf("push printed %q, want %q", got, want)
	}
	local, err := image.Read(imgDir)
	if err != nil {
		t.Fatal(err)
	}
	wantManifest, err := local.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{got, repo + ":dev", repo + ":v1"} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(r)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if desc.Digest.String() != digest || !bytes.Equal(desc.Manifest, wantManifest) {
			t.Errorf("%s: digest %s, want %s (manifest equal: %v)", ref, desc.Digest, digest, bytes.Equal(desc.Manifest, wantManifest))
		}
	}
	// A registry that does not answer is an error naming what was pushed, on one line.
	srv.Close()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"push", "--image", imgDir, "--repository", repo}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "push "+repo) {
		t.Errorf("push to a closed registry: exit %d, %q", code, stderr.String())
	}
}
