package layer

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func tarOf(t *testing.T, entries ...tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		data := []byte{}
		if h.Typeflag == tar.TypeReg {
			data = []byte("content of " + h.Name)
			h.Size = int64(len(data))
		}
		if h.ModTime.IsZero() && h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type listed struct {
	order   []string
	headers map[string]*tar.Header
	data    map[string]string
}

func list(t *testing.T, b *Builder) listed {
	t.Helper()
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		t.Fatal(err)
	}
	out := listed{headers: map[string]*tar.Header{}, data: map[string]string{}}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out.order = append(out.order, h.Name)
		out.headers[h.Name] = h
		out.data[h.Name] = string(data)
	}
}

func TestExcluded(t *testing.T) {
	patterns := []string{"usr/share/doc/**", "usr/share/man", "etc/*.conf", "**/__pycache__/**", "**/*.pyc", "./opt/x/"}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"usr/share/doc", true},
		{"usr/share/doc/x/copyright", true},
		{"./usr/share/doc/x/copyright", true},
		{"usr/share/docs", false},
		{"usr/share/man/man1/ls.1.gz", true}, // a pattern drops everything below what it matches
		{"usr/share/manx", false},
		{"usr/bin/x", false},
		{"etc/a.conf", true},
		{"etc/sub/a.conf", false},
		{"app/site-packages/flask/__pycache__/app.cpython-313.pyc", true},
		{"__pycache__", true},
		{"a/b/c.pyc", true},
		{"a/b/c.py", false},
		{"opt/x/y", true},
		{"opt/xy", false},
		{"", false},
	} {
		if got := Excluded(tc.path, patterns); got != tc.want {
			t.Errorf("Excluded(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	if err := ValidatePattern("usr/[a"); err == nil {
		t.Error("want an error for a malformed pattern")
	}
}

func TestAddTar(t *testing.T) {
	in := tarOf(t,
		tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeDir, Name: "./usr/", Mode: 0o755, Uname: "builder", Gname: "builder", Uid: 1000, Gid: 1000},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/sudo", Mode: 0o4755},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/wall", Mode: 0o2755, Gid: 5},
		tar.Header{Typeflag: tar.TypeDir, Name: "./var/mail/", Mode: 0o2775, Gid: 8},
		tar.Header{Typeflag: tar.TypeDir, Name: "./tmp/", Mode: 0o1777},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/share/doc/x/README", Mode: 0o644},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/share/man/man1/a.1.gz", Mode: 0o644},
		tar.Header{Typeflag: tar.TypeSymlink, Name: "./usr/bin/editor", Linkname: "vi", Mode: 0o777},
		tar.Header{Typeflag: tar.TypeLink, Name: "./usr/bin/sudoedit", Linkname: "./usr/bin/sudo"},
		// A hard link whose target is excluded becomes the file.
		tar.Header{Typeflag: tar.TypeLink, Name: "./usr/bin/a-doc", Linkname: "./usr/share/doc/x/README"},
		// A hard link that sorts before its target: the data moves to the link.
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/zz", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeLink, Name: "./usr/bin/aa", Linkname: "usr/bin/zz"},
		tar.Header{Typeflag: tar.TypeReg, Name: "./var/lib/x", Mode: 0o644, Uid: 100, Gid: 101},
		tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "x"}},
	)
	b := New([]string{"usr/share/doc/**", "usr/share/man/**"})
	if err := b.AddTar(bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	got := list(t, b)
	for _, tc := range []struct {
		name     string
		present  bool
		typeflag byte
		mode     int64
		uid, gid int
		linkname string
		data     string
	}{
		{name: "usr/", present: true, typeflag: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000},
		{name: "usr/bin/", present: true, typeflag: tar.TypeDir, mode: 0o755}, // parent created
		{name: "usr/bin/sudo", present: true, typeflag: tar.TypeReg, mode: 0o755, data: "content of ./usr/bin/sudo"},
		{name: "usr/bin/sudoedit", present: true, typeflag: tar.TypeLink, mode: 0o755, linkname: "usr/bin/sudo"},
		{name: "usr/bin/wall", present: true, typeflag: tar.TypeReg, mode: 0o755, gid: 5, data: "content of ./usr/bin/wall"},
		{name: "var/mail/", present: true, typeflag: tar.TypeDir, mode: 0o775, gid: 8},
		{name: "tmp/", present: true, typeflag: tar.TypeDir, mode: 0o1777}, // sticky bit kept
		{name: "usr/bin/editor", present: true, typeflag: tar.TypeSymlink, mode: 0o777, linkname: "vi"},
		{name: "usr/bin/a-doc", present: true, typeflag: tar.TypeReg, mode: 0o644, data: "content of ./usr/share/doc/x/README"},
		{name: "usr/bin/aa", present: true, typeflag: tar.TypeReg, mode: 0o755, data: "content of ./usr/bin/zz"},
		{name: "usr/bin/zz", present: true, typeflag: tar.TypeLink, mode: 0o755, linkname: "usr/bin/aa"},
		{name: "var/lib/x", present: true, typeflag: tar.TypeReg, mode: 0o644, uid: 100, gid: 101, data: "content of ./var/lib/x"},
		{name: "usr/share/doc/x/README", present: false},
		{name: "usr/share/doc/", present: false},
		{name: "usr/share/man/", present: false},
		{name: "pax_global_header", present: false},
		{name: "./", present: false},
	} {
		h, ok := got.headers[tc.name]
		if ok != tc.present {
			t.Errorf("%s present = %v, want %v", tc.name, ok, tc.present)
			continue
		}
		if !ok {
			continue
		}
		if h.Typeflag != tc.typeflag || h.Mode != tc.mode || h.Uid != tc.uid || h.Gid != tc.gid || h.Linkname != tc.linkname {
			t.Errorf("%s: type %q mode %o owner %d:%d link %q; want %q %o %d:%d %q",
				tc.name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, tc.typeflag, tc.mode, tc.uid, tc.gid, tc.linkname)
		}
		if got.data[tc.name] != tc.data {
			t.Errorf("%s: data %q, want %q", tc.name, got.data[tc.name], tc.data)
		}
		if h.ModTime.Unix() != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v uname %q gname %q, want the epoch and no names", tc.name, h.ModTime, h.Uname, h.Gname)
		}
	}
	for i := 1; i < len(got.order); i++ {
		if got.order[i-1] >= got.order[i] {
			t.Errorf("entries not sorted: %q before %q", got.order[i-1], got.order[i])
		}
	}
}

func TestAddTarErrors(t *testing.T) {
	for name, in := range map[string][]byte{
		"dangling hard link": tarOf(t, tar.Header{Typeflag: tar.TypeLink, Name: "a", Linkname: "b"}),
		"not a tar":          []byte(strings.Repeat("x", 1024)),
	} {
		if err := New(nil).AddTar(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestTarsMergeInOrder(t *testing.T) {
	first := tarOf(t,
		tar.Header{Typeflag: tar.TypeDir, Name: "./etc/", Mode: 0o700},
		tar.Header{Typeflag: tar.TypeReg, Name: "./etc/a", Mode: 0o600},
		tar.Header{Typeflag: tar.TypeReg, Name: "./bin/sh", Mode: 0o755},
	)
	second := tarOf(t,
		tar.Header{Typeflag: tar.TypeDir, Name: "./etc/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeSymlink, Name: "./bin/sh", Linkname: "dash"},
	)
	b := New(nil)
	for _, in := range [][]byte{first, second} {
		if err := b.AddTar(bytes.NewReader(in)); err != nil {
			t.Fatal(err)
		}
	}
	got := list(t, b)
	want := []string{"bin/", "bin/sh", "etc/", "etc/a"}
	if strings.Join(got.order, " ") != strings.Join(want, " ") {
		t.Errorf("entries %q, want %q (directories deduplicated)", got.order, want)
	}
	if h := got.headers["etc/"]; h.Mode != 0o755 {
		t.Errorf("etc/: mode %o, want the later tar's 0755", h.Mode)
	}
	if h := got.headers["bin/sh"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "dash" {
		t.Errorf("bin/sh: %+v, want the later tar's symlink", h)
	}
}

func TestFilesDirsSymlinks(t *testing.T) {
	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "app"), filepath.Join(dir, "data.json")
	if err := os.WriteFile(exe, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := New([]string{"opt/skip/**"})
	for _, f := range []struct {
		dst, src string
		mode     int64
		uid, gid int
	}{
		{"/app/server", exe, 0, 0, 0},
		{"app/data.json", plain, 0, 1001, 1001},
		{"etc/app.conf", plain, 0o640, 0, 0},
		{"opt/skip/x", plain, 0, 0, 0},
	} {
		if err := b.AddFile(f.dst, f.src, f.mode, f.uid, f.gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddFile("x", dir, 0, 0, 0); err == nil {
		t.Error("want an error adding a directory as a file")
	}
	b.AddDir("/home/nonroot", 0o750, 1001, 1001)
	b.AddSymlink("usr/bin/python3", "python3.13")
	got := list(t, b)
	for _, tc := range []struct {
		name     string
		typeflag byte
		mode     int64
		uid      int
	}{
		{"app/", tar.TypeDir, 0o755, 0},
		{"app/server", tar.TypeReg, 0o755, 0},
		{"app/data.json", tar.TypeReg, 0o644, 1001},
		{"etc/app.conf", tar.TypeReg, 0o640, 0},
		{"home/", tar.TypeDir, 0o755, 0},
		{"home/nonroot/", tar.TypeDir, 0o750, 1001},
		{"usr/bin/", tar.TypeDir, 0o755, 0},
		{"usr/bin/python3", tar.TypeSymlink, 0o777, 0},
	} {
		h, ok := got.headers[tc.name]
		if !ok {
			t.Errorf("%s missing", tc.name)
			continue
		}
		if h.Typeflag != tc.typeflag || h.Mode != tc.mode || h.Uid != tc.uid {
			t.Errorf("%s: type %q mode %o uid %d, want %q %o %d", tc.name, h.Typeflag, h.Mode, h.Uid, tc.typeflag, tc.mode, tc.uid)
		}
	}
	if _, ok := got.headers["opt/skip/x"]; ok {
		t.Error("excluded --file added")
	}
	if got.headers["usr/bin/python3"].Linkname != "python3.13" {
		t.Errorf("symlink target %q", got.headers["usr/bin/python3"].Linkname)
	}
}

func TestDeterministicAndLastWins(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app")
	if err := os.WriteFile(src, []byte("v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "manifest")
	if err := os.WriteFile(manifest, []byte("app/b.py\t"+src+"\n\napp/a.py\t"+src+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(modTime time.Time) []byte {
		b := New(nil)
		b.ModTime = modTime
		if err := b.AddTar(bytes.NewReader(tarOf(t, tar.Header{Typeflag: tar.TypeReg, Name: "app", Mode: 0o644}))); err != nil {
			t.Fatal(err)
		}
		if err := b.AddFile("/app", src, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(manifest)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := b.AddManifest(f); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := b.Write(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	first, second := build(time.Time{}), build(time.Time{})
	if !bytes.Equal(first, second) {
		t.Fatal("two builds from the same inputs differ")
	}
	b := New(nil)
	if err := b.AddTar(bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	got := list(t, b)
	if h := got.headers["app"]; h == nil || h.Mode != 0o755 || h.Size != 2 {
		t.Errorf("the later --file did not replace the tar's entry: %+v", h)
	}
	if h := got.headers["app/a.py"]; h == nil || h.Mode != 0o755 {
		t.Errorf("manifest file: %+v", h)
	}
	tr := tar.NewReader(bytes.NewReader(build(time.Unix(1700000000, 0))))
	if h, err := tr.Next(); err != nil || h.ModTime.Unix() != 1700000000 {
		t.Errorf("ModTime not used: %+v, %v", h, err)
	}
}

func TestAddManifestErrors(t *testing.T) {
	for name, text := range map[string]string{
		"no tab":         "no-tab-here\n",
		"missing source": "app/x\t/nonexistent/file\n",
		"empty dst":      "\t/etc/hostname\n",
	} {
		if err := New(nil).AddManifest(strings.NewReader(text)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{{"0755", 0o755, true}, {"644", 0o644, true}, {"4755", 0o4755, true}, {"9", 0, false}, {"", 0, false}, {"17777", 0, false}} {
		got, err := ParseMode(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseMode(%q) = %o, %v", tc.in, got, err)
		}
	}
	for _, tc := range []struct {
		in       string
		uid, gid int
		ok       bool
	}{{"1001:1001", 1001, 1001, true}, {"0:0", 0, 0, true}, {"1000", 0, 0, false}, {"a:b", 0, 0, false}, {"-1:0", 0, 0, false}} {
		uid, gid, err := ParseOwner(tc.in)
		if (err == nil) != tc.ok || uid != tc.uid || gid != tc.gid {
			t.Errorf("ParseOwner(%q) = %d, %d, %v", tc.in, uid, gid, err)
		}
	}
}
