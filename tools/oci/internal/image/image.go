// Package image assembles, reads and exports OCI images with go-containerregistry.
package image

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the creation time of every image and history entry: builds are reproducible.
var Epoch = v1.Time{Time: time.Unix(0, 0).UTC()}

// Spec is what an image adds to its base: rules_oci's oci_image attributes.
type Spec struct {
	Layers       []string // uncompressed layer tarballs, in order
	Entrypoint   []string
	Cmd          []string
	Env          []string // K=V; a key set here replaces the base's
	User         string
	Workdir      string
	ExposedPorts []string
	Labels       map[string]string
	Healthcheck  []string
}

// Build returns base (or an empty image) with spec's layers and config applied.
func Build(base v1.Image, spec Spec) (v1.Image, error) {
	img := base
	if img == nil {
		img = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	for _, path := range spec.Layers {
		layer, err := tarball.LayerFromFile(path,
			tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression))
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", path, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     layer,
			History:   v1.History{Created: Epoch, CreatedBy: "ocitool layer", Comment: baseName(path)},
			MediaType: types.OCILayer,
		})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created, cf.OS, cf.Architecture = Epoch, "linux", "amd64"
	c := &cf.Config
	if spec.Entrypoint != nil {
		c.Entrypoint = spec.Entrypoint
	}
	if spec.Cmd != nil {
		c.Cmd = spec.Cmd
	}
	c.Env = mergeEnv(c.Env, spec.Env)
	if spec.User != "" {
		c.User = spec.User
	}
	if spec.Workdir != "" {
		c.WorkingDir = spec.Workdir
	}
	for _, port := range spec.ExposedPorts {
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		c.ExposedPorts[port] = struct{}{}
	}
	for k, v := range spec.Labels {
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		c.Labels[k] = v
	}
	if spec.Healthcheck != nil {
		c.Healthcheck = &v1.HealthConfig{
			Test: spec.Healthcheck, Interval: 10 * time.Second, Timeout: 3 * time.Second, Retries: 3,
		}
	}
	return mutate.ConfigFile(img, cf)
}

func baseName(path string) string {
	return path[strings.LastIndex(path, "/")+1:]
}

func mergeEnv(base, overrides []string) []string {
	merged := map[string]string{}
	var order []string
	for _, kv := range append(slices.Clone(base), overrides...) {
		k, _, _ := strings.Cut(kv, "=")
		if _, seen := merged[k]; !seen {
			order = append(order, k)
		}
		merged[k] = kv
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, merged[k])
	}
	return out
}

// Write stores img as the only image of a new OCI image layout at dir.
func Write(dir string, img v1.Image) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}

// Read returns the one image of the OCI image layout at dir.
func Read(dir string) (v1.Image, error) {
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(manifest.Manifests) != 1 {
		return nil, fmt.Errorf("%s: want one image, found %d", dir, len(manifest.Manifests))
	}
	return index.Image(manifest.Manifests[0].Digest)
}

// WriteDockerArchive writes a `docker load` tarball of img tagged with tags.
func WriteDockerArchive(out string, img v1.Image, tags []string) error {
	if len(tags) == 0 {
		return errors.New("at least one tag is needed")
	}
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return err
		}
		refs[tag] = img
	}
	return tarball.MultiRefWriteToFile(out, refs)
}

// File is one entry of a layer, as Inspect lists it.
type File struct {
	Path     string `json:"path"`
	Type     string `json:"type"`
	Mode     int64  `json:"mode"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Size     int64  `json:"size"`
	Linkname string `json:"linkname,omitempty"`
}

// Report is what Inspect tells about an image.
type Report struct {
	Digest           string        `json:"digest"`
	Config           v1.Config     `json:"config"`
	CompressedSize   int64         `json:"compressed_size"`
	UncompressedSize int64         `json:"uncompressed_size"`
	Layers           []LayerReport `json:"layers"`
}

// LayerReport lists one layer's files.
type LayerReport struct {
	Digest string `json:"digest"`
	Files  []File `json:"files"`
}

var typeNames = map[byte]string{
	tar.TypeReg: "file", tar.TypeDir: "dir", tar.TypeSymlink: "symlink", tar.TypeLink: "hardlink",
}

// Inspect reads img's config and every layer's file list.
func Inspect(img v1.Image) (*Report, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	report := &Report{Digest: digest.String(), Config: cf.Config}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, layer := range layers {
		lr, err := inspectLayer(layer)
		if err != nil {
			return nil, err
		}
		size, err := layer.Size()
		if err != nil {
			return nil, err
		}
		report.CompressedSize += size
		for _, f := range lr.Files {
			report.UncompressedSize += f.Size
		}
		report.Layers = append(report.Layers, *lr)
	}
	return report, nil
}

func inspectLayer(layer v1.Layer) (*LayerReport, error) {
	digest, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	lr := &LayerReport{Digest: digest.String(), Files: []File{}}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return lr, nil
		}
		if err != nil {
			return nil, err
		}
		kind, ok := typeNames[h.Typeflag]
		if !ok {
			kind = string(h.Typeflag)
		}
		lr.Files = append(lr.Files, File{
			Path: h.Name, Type: kind, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Size: h.Size, Linkname: h.Linkname,
		})
	}
}
