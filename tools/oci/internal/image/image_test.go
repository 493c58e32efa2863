package image

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
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

func TestBuildIsReproducibleAndInheritsBase(t *testing.T) {
	baseLayer, appLayer := layerFile(t, "etc/passwd", "root"), layerFile(t, "app", "binary")
	base, err := Build(nil, Spec{Layers: []string{baseLayer}, Env: []string{"PATH=/bin", "A=1"}, User: "65532"})
	if err != nil {
		t.Fatal(err)
	}
	baseDir := filepath.Join(t.TempDir(), "base")
	if err := Write(baseDir, base); err != nil {
		t.Fatal(err)
	}
	build := func() (string, *Report) {
		b, err := Read(baseDir)
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
		reread, err := Read(dir)
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
	if !slices.Equal(c.Env, []string{"PATH=/bin", "A=2"}) || c.User != "65532" || len(report.Layers) != 2 {
		t.Errorf("base not inherited or env not merged: env=%v user=%q layers=%d", c.Env, c.User, len(report.Layers))
	}
	if c.Healthcheck == nil || c.Healthcheck.Test[1] != "/app" {
		t.Errorf("healthcheck: %+v", c.Healthcheck)
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
	if err := WriteDockerArchive(out, img, nil); err == nil {
		t.Error("want an error without tags")
	}
}
