package image

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func layerFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// symlinkTree mirrors dir as a tree of symlinks, the way Bazel's sandboxes and runfiles hand over
// a tree artifact.
func symlinkTree(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "linked")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := must(filepath.Rel(dir, path))
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(out, rel), 0o755)
		}
		return os.Symlink(path, filepath.Join(out, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildIsReproducibleAndInheritsBase(t *testing.T) {
	baseLayer, appLayer := layerFile(t, "etc/passwd", "root"), layerFile(t, "app", "binary")
	base, err := Build(nil, Spec{Layers: []string{baseLayer}, Env: []string{"PATH=/bin", "A=1"}, User: "1001"})
	if err != nil {
		t.Fatal(err)
	}
	baseDir := filepath.Join(t.TempDir(), "base")
	if err := Write(baseDir, base); err != nil {
		t.Fatal(err)
	}
	linkedBase := symlinkTree(t, baseDir)
	build := func() (string, *Report) {
		b, err := Read(linkedBase)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Build(b, Spec{
			Layers: []string{appLayer}, Entrypoint: []string{"/app"}, Env: []string{"A=2"},
			ExposedPorts: []string{"8080/tcp"}, Labels: map[string]string{"k": "v"},
			Healthcheck: []string{"CMD", "/app", "-probe", "http://127.0.0.1:8080/healthz"},
		})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "img")
		if err := Write(dir, img); err != nil {
			t.Fatal(err)
		}
		reread, err := Read(symlinkTree(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		report, err := Inspect(reread)
		if err != nil {
			t.Fatal(err)
		}
		return report.Digest, report
	}
	first, report := build()
	second, _ := build()
	if first != second {
		t.Fatalf("digests differ: %s vs %s", first, second)
	}
	c := report.Config
	if !slices.Equal(c.Env, []string{"PATH=/bin", "A=2"}) || c.User != "1001" || len(report.Layers) != 2 {
		t.Errorf("base not inherited or env not merged: env=%v user=%q layers=%d", c.Env, c.User, len(report.Layers))
	}
	if c.Healthcheck == nil || c.Healthcheck.Test[1] != "/app" {
		t.Errorf("healthcheck: %+v", c.Healthcheck)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || c.Labels["k"] != "v" || !slices.Equal(c.Entrypoint, []string{"/app"}) {
		t.Errorf("config: %+v", c)
	}
	baseReport, err := Inspect(base)
	if err != nil {
		t.Fatal(err)
	}
	if report.Layers[0].Digest != baseReport.Layers[0].Digest || report.Layers[0].Files[0].Path != "etc/passwd" {
		t.Errorf("first layer %+v is not the base's %+v", report.Layers[0], baseReport.Layers[0])
	}
	if len(report.History) != 2 || report.Created != "1970-01-01T00:00:00Z" || report.OS != "linux" || report.Architecture != "amd64" {
		t.Errorf("history %+v created %s platform %s/%s", report.History, report.Created, report.OS, report.Architecture)
	}
	// ocitool image appends layers it did not write (pkg_tar's): the history says which step did.
	for _, h := range report.History {
		if h.CreatedBy != "ocitool image" || h.Comment != "layer.tar" {
			t.Errorf("history entry %+v: want created by ocitool image, with the layer file's name", h)
		}
	}
	if report.UncompressedSize != 2*2048 || report.CompressedSize <= 0 {
		t.Errorf("sizes: compressed %d uncompressed %d", report.CompressedSize, report.UncompressedSize)
	}
}

func TestReadErrors(t *testing.T) {
	img := must(Build(nil, Spec{Layers: []string{layerFile(t, "a", "1")}}))
	dir := t.TempDir()
	if err := Write(dir, img); err != nil {
		t.Fatal(err)
	}
	config := must(img.ConfigName())
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", config.Hex), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, t.TempDir()} {
		if _, err := Read(d); err == nil {
			t.Errorf("Read(%s): want an error (corrupt config, no layout)", d)
		}
	}
}

func TestSpecOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  Spec
		check func(*v1.ConfigFile) bool
	}{
		{"healthcheck without CMD", Spec{Healthcheck: []string{"/app", "-probe"}}, func(cf *v1.ConfigFile) bool {
			h := cf.Config.Healthcheck
			return slices.Equal(h.Test, []string{"CMD", "/app", "-probe"}) && h.Interval == 10*time.Second && h.Retries == 3
		}},
		{"healthcheck CMD-SHELL and timing", Spec{Healthcheck: []string{"CMD-SHELL", "true"}, HealthInterval: time.Minute, HealthRetries: 5}, func(cf *v1.ConfigFile) bool {
			h := cf.Config.Healthcheck
			return slices.Equal(h.Test, []string{"CMD-SHELL", "true"}) && h.Interval == time.Minute && h.Retries == 5
		}},
		{"created and platform", Spec{Created: time.Unix(1700000000, 0), OS: "linux", Arch: "arm64"}, func(cf *v1.ConfigFile) bool {
			return cf.Created.Unix() == 1700000000 && cf.Architecture == "arm64"
		}},
		{"defaults", Spec{}, func(cf *v1.ConfigFile) bool {
			return cf.Created.Unix() == 0 && cf.OS == "linux" && cf.Architecture == "amd64" && cf.Config.Healthcheck == nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Build(nil, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cf) {
				t.Errorf("config: %+v", cf)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	for _, tc := range []struct {
		base, overrides, want []string
	}{
		{nil, nil, []string{}},
		{[]string{"PATH=/bin", "A=1"}, []string{"A=2", "B=3"}, []string{"PATH=/bin", "A=2", "B=3"}},
		{[]string{"A=1"}, []string{"A=1=2"}, []string{"A=1=2"}},
	} {
		if got := mergeEnv(tc.base, tc.overrides); !slices.Equal(got, tc.want) {
			t.Errorf("mergeEnv(%q, %q) = %q, want %q", tc.base, tc.overrides, got, tc.want)
		}
	}
}

func TestWriteReplacesOnlyLayouts(t *testing.T) {
	img := must(Build(nil, Spec{Layers: []string{layerFile(t, "a", "1")}}))
	other := must(Build(nil, Spec{Layers: []string{layerFile(t, "b", "2")}}))
	dir := t.TempDir()
	for _, i := range []v1.Image{img, other} {
		if err := Write(dir, i); err != nil {
			t.Fatal(err)
		}
	}
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 3 { // manifest, config, one layer: nothing of the first image left
		t.Errorf("%d blobs after rewriting the layout, want 3", len(blobs))
	}
	if got, err := Read(dir); err != nil {
		t.Fatal(err)
	} else if d1, _ := got.Digest(); d1 != must(other.Digest()) {
		t.Errorf("read back %s", d1)
	}
	notLayout := t.TempDir()
	if err := os.WriteFile(filepath.Join(notLayout, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(notLayout, img); err == nil {
		t.Error("want an error writing over a directory that is not an OCI layout")
	}
}

func TestDockerArchiveLoadsBack(t *testing.T) {
	img, err := Build(nil, Spec{Layers: []string{layerFile(t, "app", "x")}, Entrypoint: []string{"/app"}})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	if err := WriteDockerArchive(out, img, []string{"cache-platform/test:dev"}); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("cache-platform/test:dev")
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.ConfigName()
	got, _ := loaded.ConfigName()
	if want != got {
		t.Errorf("config digest %s after the round trip, want %s", got, want)
	}
	again := filepath.Join(t.TempDir(), "again.tar")
	for _, path := range []string{out, again} {
		if err := WriteDockerArchive(path, img, []string{"cache-platform/test:dev", "cache-platform/test:latest"}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := must(os.ReadFile(out)), must(os.ReadFile(again))
	if !bytes.Equal(a, b) {
		t.Error("two docker-archives of the same image differ")
	}
	latest := must(name.NewTag("cache-platform/test:latest"))
	if loaded, err := tarball.ImageFromPath(again, &latest); err != nil {
		t.Fatal(err)
	} else if got, _ := loaded.ConfigName(); got != must(img.ConfigName()) {
		t.Errorf("config digest %s after the round trip with two tags", got)
	}
	if err := WriteDockerArchive(out, img, nil); err == nil {
		t.Error("want an error without tags")
	}
}
