package layer

import (
	"archive/tar"
	"bytes"
	"io"
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

func TestDeterministicAndLastWins(t *testing.T) {
	build := func(modTime time.Time) []byte {
		b := New(nil)
		b.ModTime = modTime
		for _, in := range [][]byte{
			tarOf(t, tar.Header{Typeflag: tar.TypeReg, Name: "./app", Mode: 0o644}, tar.Header{Typeflag: tar.TypeReg, Name: "./b", Mode: 0o644}),
			tarOf(t, tar.Header{Typeflag: tar.TypeReg, Name: "./a", Mode: 0o644}, tar.Header{Typeflag: tar.TypeReg, Name: "app", Mode: 0o755}),
		} {
			if err := b.AddTar(bytes.NewReader(in)); err != nil {
				t.Fatal(err)
			}
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
	if strings.Join(got.order, " ") != "a app b" {
		t.Errorf("entries %q, want a app b", got.order)
	}
	if h := got.headers["app"]; h == nil || h.Mode != 0o755 || got.data["app"] != "content of app" {
		t.Errorf("the later tar did not replace the earlier one's app: %+v", h)
	}
	tr := tar.NewReader(bytes.NewReader(build(time.Unix(1700000000, 0))))
	if h, err := tr.Next(); err != nil || h.ModTime.Unix() != 1700000000 {
		t.Errorf("ModTime not used: %+v, %v", h, err)
	}
}
