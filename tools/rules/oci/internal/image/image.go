// Package image assembles, reads and exports OCI images with go-containerregistry.
package image

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the default creation time of images and history entries: builds are reproducible.
var Epoch = time.Unix(0, 0).UTC()

// Spec is what an image adds to its base: rules_oci's oci_image attributes.
type Spec struct {
	Layers       []string // layer tarballs, in order: uncompressed (gzipped here) or gzipped
	Entrypoint   []string
	Cmd          []string
	Env          []string // K=V; a key set here replaces the base's
	User         string
	Workdir      string
	ExposedPorts []string
	Labels       map[string]string
	Healthcheck  []string // Docker HEALTHCHECK test; without a leading CMD, CMD-SHELL or NONE, CMD is assumed
	// StopSignal is what the runtime sends to stop the container (Docker, containerd's CRI for
	// Kubernetes); empty: the base's, else SIGTERM.
	StopSignal string
	// Healthcheck timing; zero values: every 10s, timeout 3s, no start period, 3 retries.
	HealthInterval, HealthTimeout, HealthStartPeriod time.Duration
	HealthRetries                                    int

	Created  time.Time // zero: Epoch
	OS, Arch string    // empty: linux, amd64
}

// healthcheckTest returns the config's Healthcheck.Test for args.
func healthcheckTest(args []string) []string {
	if len(args) > 0 {
		switch args[0] {
		case "CMD", "CMD-SHELL", "NONE":
			return args
		}
	}
	return append([]string{"CMD"}, args...)
}

// Build returns base (or an empty image) with spec's layers and config applied.
func Build(base v1.Image, spec Spec) (v1.Image, error) {
	created := spec.Created
	if created.IsZero() {
		created = Epoch
	}
	stamp := v1.Time{Time: created.UTC()}
	img := base
	if img == nil {
		img = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	for _, path := range spec.Layers {
		layer, err := tarball.LayerFromFile(path,
			tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression),
			tarball.WithCompressedCaching)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", path, err)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     layer,
			History:   v1.History{Created: stamp, CreatedBy: "ocitool image", Comment: baseName(path)},
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
	cf.Created, cf.OS, cf.Architecture = stamp, cmp.Or(spec.OS, "linux"), cmp.Or(spec.Arch, "amd64")
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
	if spec.StopSignal != "" {
		c.StopSignal = spec.StopSignal
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
			Test:        healthcheckTest(spec.Healthcheck),
			Interval:    cmp.Or(spec.HealthInterval, 10*time.Second),
			Timeout:     cmp.Or(spec.HealthTimeout, 3*time.Second),
			StartPeriod: spec.HealthStartPeriod,
			Retries:     cmp.Or(spec.HealthRetries, 3),
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

// Write stores img as the only image of a new OCI image layout at dir. dir must be absent, empty,
// or an OCI image layout (which is replaced).
func Write(dir string, img v1.Image) error {
	if err := clearLayout(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}

func clearLayout(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("%s: not empty and not an OCI image layout; refusing to overwrite it", dir)
	}
	for _, name := range []string{"index.json", "oci-layout", "blobs"} {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// Read returns the one image of the OCI image layout at dir.
//
// go-containerregistry's layout package (v0.22.1 on) refuses blobs that are symlinks, and Bazel's
// sandboxes and runfiles hand a tree artifact over as a tree of symlinks; so the layout is read
// here, following symlinks, and made a v1.Image by go-containerregistry's partial package.
func Read(dir string) (v1.Image, error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	index, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", dir, err)
	}
	if len(index.Manifests) != 1 {
		return nil, fmt.Errorf("%s: want one image, found %d", dir, len(index.Manifests))
	}
	desc := index.Manifests[0]
	if !desc.MediaType.IsImage() {
		return nil, fmt.Errorf("%s: %s is a %s, not an image manifest", dir, desc.Digest, desc.MediaType)
	}
	img := &layoutImage{dir: dir, mediaType: desc.MediaType}
	if img.rawManifest, err = img.blob(desc.Digest); err != nil {
		return nil, err
	}
	if img.manifest, err = v1.ParseManifest(bytes.NewReader(img.rawManifest)); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	if img.rawConfig, err = img.blob(img.manifest.Config.Digest); err != nil {
		return nil, err
	}
	return partial.CompressedToImage(img)
}

// layoutImage is an image of an OCI image layout (partial.CompressedImageCore).
type layoutImage struct {
	dir                    string
	mediaType              types.MediaType
	rawManifest, rawConfig []byte
	manifest               *v1.Manifest
}

func (i *layoutImage) blobPath(h v1.Hash) string {
	return filepath.Join(i.dir, "blobs", h.Algorithm, h.Hex)
}

// blob reads a (small) blob and checks its digest.
func (i *layoutImage) blob(h v1.Hash) ([]byte, error) {
	data, err := os.ReadFile(i.blobPath(h))
	if err != nil {
		return nil, err
	}
	if got, _, err := v1.SHA256(bytes.NewReader(data)); err != nil || got != h {
		return nil, fmt.Errorf("%s: blob %s has digest %s", i.dir, h, got)
	}
	return data, nil
}

func (i *layoutImage) RawManifest() ([]byte, error)        { return i.rawManifest, nil }
func (i *layoutImage) RawConfigFile() ([]byte, error)      { return i.rawConfig, nil }
func (i *layoutImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }

func (i *layoutImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, desc := range i.manifest.Layers {
		if desc.Digest == h {
			return &layoutLayer{path: i.blobPath(h), desc: desc}, nil
		}
	}
	return nil, fmt.Errorf("%s: no layer %s in the manifest", i.dir, h)
}

// layoutLayer is one layer blob of a layout (partial.CompressedLayer).
type layoutLayer struct {
	path string
	desc v1.Descriptor
}

func (l *layoutLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *layoutLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *layoutLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *layoutLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }

// WriteDockerArchive writes a `docker load` tarball of img tagged with tags.
//
// go-containerregistry lists an image's tags in map order; the archive is copied through once to
// sort them in manifest.json, so the same image and tags always give the same bytes.
func WriteDockerArchive(out string, img v1.Image, tags []string) error {
	if len(tags) == 0 {
		return errors.New("at least one --tag is needed")
	}
	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return err
		}
		refs[tag] = img
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.MultiRefWrite(refs, pw)) }()
	err = sortRepoTags(f, pr)
	pr.CloseWithError(err) // unblocks the writer if copying failed
	return errors.Join(err, f.Close())
}

// sortRepoTags copies the docker-archive r to w, sorting the RepoTags of manifest.json.
func sortRepoTags(w io.Writer, r io.Reader) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		var body io.Reader = tr
		if h.Name == "manifest.json" {
			var m tarball.Manifest
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				return fmt.Errorf("manifest.json: %w", err)
			}
			for i := range m {
				slices.Sort(m[i].RepoTags)
			}
			data, err := json.Marshal(m)
			if err != nil {
				return err
			}
			h.Size, body = int64(len(data)), bytes.NewReader(data)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, body); err != nil {
			return err
		}
	}
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

// Report is what Inspect tells about an image. Config keeps the image config's own key names
// (Entrypoint, Cmd, Env, User, WorkingDir, ExposedPorts, Labels, Healthcheck, StopSignal).
type Report struct {
	Digest           string        `json:"digest"`
	ConfigDigest     string        `json:"config_digest"`
	MediaType        string        `json:"media_type"`
	Created          string        `json:"created"`
	OS               string        `json:"os"`
	Architecture     string        `json:"architecture"`
	Config           v1.Config     `json:"config"`
	History          []v1.History  `json:"history"`
	CompressedSize   int64         `json:"compressed_size"`
	UncompressedSize int64         `json:"uncompressed_size"` // of the layer tarballs
	Layers           []LayerReport `json:"layers"`
}

// LayerReport lists one layer's files.
type LayerReport struct {
	Digest           string `json:"digest"`
	DiffID           string `json:"diff_id"`
	MediaType        string `json:"media_type"`
	CompressedSize   int64  `json:"compressed_size"`
	UncompressedSize int64  `json:"uncompressed_size"`
	Files            []File `json:"files"`
}

var typeNames = map[byte]string{
	tar.TypeReg: "file", tar.TypeDir: "dir", tar.TypeSymlink: "symlink", tar.TypeLink: "hardlink",
	tar.TypeChar: "char", tar.TypeBlock: "block", tar.TypeFifo: "fifo",
}

// Inspect reads img's config and every layer's file list.
func Inspect(img v1.Image) (*Report, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	mediaType, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	report := &Report{
		Digest: digest.String(), ConfigDigest: configDigest.String(), MediaType: string(mediaType),
		Created: cf.Created.UTC().Format(time.RFC3339), OS: cf.OS, Architecture: cf.Architecture,
		Config: cf.Config, History: cf.History, Layers: []LayerReport{},
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, layer := range layers {
		lr, err := inspectLayer(layer)
		if err != nil {
			return nil, err
		}
		report.CompressedSize += lr.CompressedSize
		report.UncompressedSize += lr.UncompressedSize
		report.Layers = append(report.Layers, *lr)
	}
	return report, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func inspectLayer(layer v1.Layer) (*LayerReport, error) {
	digest, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	diffID, err := layer.DiffID()
	if err != nil {
		return nil, err
	}
	mediaType, err := layer.MediaType()
	if err != nil {
		return nil, err
	}
	size, err := layer.Size()
	if err != nil {
		return nil, err
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	lr := &LayerReport{
		Digest: digest.String(), DiffID: diffID.String(), MediaType: string(mediaType), CompressedSize: size,
		Files: []File{},
	}
	counter := &countingReader{r: rc}
	tr := tar.NewReader(counter)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", digest, err)
		}
		kind, ok := typeNames[h.Typeflag]
		if !ok {
			kind = string(h.Typeflag)
		}
		lr.Files = append(lr.Files, File{
			Path: h.Name, Type: kind, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Size: h.Size, Linkname: h.Linkname,
		})
	}
	// The end-of-archive blocks and padding after them.
	if _, err := io.Copy(io.Discard, counter); err != nil {
		return nil, err
	}
	lr.UncompressedSize = counter.n
	return lr, nil
}
