package layer

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
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

func entries(t *testing.T, b *Builder) map[string]*tar.Header {
	t.Helper()
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		t.Fatal(err)
	}
	out := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

func TestExcluded(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"usr/share/doc", true},
		{"usr/share/doc/x/copyright", true},
		{"usr/share/docs", false},
		{"usr/bin/x", false},
		{"etc/a.conf", true},
	} {
		if got := Excluded(tc.path, []string{"usr/share/doc/**", "etc/*.conf"}); got != tc.want {
			t.Errorf("Excluded(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestAddTarNormalises(t *testing.T) {
	in := tarOf(t,
		tar.Header{Typeflag: tar.TypeDir, Name: "./usr/", Mode: 0o755},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/sudo", Mode: 0o4755, Uid: 0},
		tar.Header{Typeflag: tar.TypeReg, Name: "./usr/share/doc/x/README", Mode: 0o644},
		tar.Header{Typeflag: tar.TypeSymlink, Name: "./usr/bin/editor", Linkname: "vi", Mode: 0o777},
		tar.Header{Typeflag: tar.TypeLink, Name: "./usr/bin/sudoedit", Linkname: "./usr/bin/sudo"},
		tar.Header{Typeflag: tar.TypeReg, Name: "./var/lib/x", Mode: 0o644, Uid: 100, Gid: 101},
	)
	b := New([]string{"usr/share/doc/**"})
	if err := b.AddTar(bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	got := entries(t, b)
	for _, tc := range []struct {
		name     string
		present  bool
		mode     int64
		typeflag byte
	}{
		{"usr/bin/sudo", true, 0o755, tar.TypeReg},
		{"usr/bin/sudoedit", true, 0o755, tar.TypeReg}, // hard link became a file, setuid dropped
		{"usr/bin/editor", true, 0o777, tar.TypeSymlink},
		{"usr/share/doc/x/README", false, 0, 0},
		{"var/", true, 0o755, tar.TypeDir}, // parent created
	} {
		h, ok := got[tc.name]
		if ok != tc.present {
			t.Errorf("%s present = %v, want %v", tc.name, ok, tc.present)
			continue
		}
		if ok && (h.Mode != tc.mode || h.Typeflag != tc.typeflag) {
			t.Errorf("%s: mode %o type %q, want %o %q", tc.name, h.Mode, h.Typeflag, tc.mode, tc.typeflag)
		}
		if ok && h.ModTime.Unix() != 0 {
			t.Errorf("%s: mtime %v, want the epoch", tc.name, h.ModTime)
		}
	}
	if h := got["var/lib/x"]; h.Uid != 100 || h.Gid != 101 {
		t.Errorf("numeric owner not kept: %d:%d", h.Uid, h.Gid)
	}
}

func TestDeterministicAndLastWins(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app")
	if err := os.WriteFile(src, []byte("v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := func() []byte {
		b := New(nil)
		if err := b.AddTar(bytes.NewReader(tarOf(t, tar.Header{Typeflag: tar.TypeReg, Name: "app", Mode: 0o644}))); err != nil {
			t.Fatal(err)
		}
		if err := b.AddFile("/app", src, 0); err != nil {
			t.Fatal(err)
		}
		b.AddDir("/home/nonroot", 0o750, 65532, 65532)
		var buf bytes.Buffer
		if err := b.Write(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	first, second := build(), build()
	if !bytes.Equal(first, second) {
		t.Fatal("two builds from the same inputs differ")
	}
	b := New(nil)
	if err := b.AddTar(bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	got := entries(t, b)
	if got["app"].Mode != 0o755 || got["app"].Size != 2 {
		t.Errorf("the later --file did not replace the tar's entry: %+v", got["app"])
	}
	if h := got["home/nonroot/"]; h.Uid != 65532 || h.Mode != 0o750 {
		t.Errorf("dir owner/mode: %+v", h)
	}
}

func TestAddManifestRejectsMalformedLines(t *testing.T) {
	err := New(nil).AddManifest(bytes.NewReader([]byte("no-tab-here\n")))
	if err == nil {
		t.Fatal("want an error for a line without a tab")
	}
}
