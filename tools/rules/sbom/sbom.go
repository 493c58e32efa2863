// Package sbom builds the CycloneDX SBOM of an image from what Bazel put into it: Debian packages
// (the sets of tools/rules/debian/packages.lock.json the image stacks), Python wheels (the dist-info
// directories of the wheels layer), and Go binaries (their module lists, cmd/vulnblob's blobs).
package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"cacheplatform/tools/rules/vuln/blob"
)

// DebianPackage is one package of a set of the Debian lock file.
type DebianPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	SHA256  string `json:"sha256"`
}

// DebianLock is the part of tools/rules/debian/packages.lock.json an SBOM needs.
type DebianLock struct {
	Suite   string `json:"suite"`
	Release struct {
		Version string `json:"version"`
	} `json:"release"`
	Sets map[string]struct {
		Packages []DebianPackage `json:"packages"`
	} `json:"sets"`
}

// GoBinary is a Go program in the image: its path there, the file, and its blob.
type GoBinary struct {
	Path, File, Blob string
}

// Inputs is everything that went into one image.
type Inputs struct {
	Image        string
	DebianLock   *DebianLock
	DebianSets   []string
	PythonWheels []string // "name==version"
	GoBinaries   []GoBinary
}

// purl formats a package URL; versions are escaped (Debian's may hold ':' and '+').
func purl(kind, namespace, name, version string, qualifiers ...string) string {
	p := "pkg:" + kind + "/"
	if namespace != "" {
		p += namespace + "/"
	}
	p += name + "@" + url.PathEscape(version)
	if len(qualifiers) > 0 {
		p += "?" + strings.Join(qualifiers, "&")
	}
	return p
}

func property(name, value string) *[]cdx.Property {
	return &[]cdx.Property{{Name: "cacheplatform:" + name, Value: value}}
}

// Build returns the SBOM of the image.
func Build(in Inputs) (*cdx.BOM, error) {
	bom := cdx.NewBOM()
	bom.Metadata = &cdx.Metadata{Component: &cdx.Component{Type: cdx.ComponentTypeContainer, Name: in.Image, BOMRef: in.Image}}
	var components []cdx.Component
	var dependencies []cdx.Dependency
	for _, set := range in.DebianSets {
		packages, ok := in.DebianLock.Sets[set]
		if !ok {
			return nil, fmt.Errorf("no set %q in the Debian lock", set)
		}
		distro := "distro=debian-" + strings.SplitN(in.DebianLock.Release.Version, ".", 2)[0]
		for _, p := range packages.Packages {
			ref := purl("deb", "debian", p.Name, p.Version, "arch="+p.Arch, distro)
			components = append(components, cdx.Component{
				BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: p.Name, Version: p.Version, PackageURL: ref,
				Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: p.SHA256}}, // of the .deb
				Properties: property("debian-set", set),
			})
		}
	}
	for _, wheel := range in.PythonWheels {
		name, version, ok := strings.Cut(wheel, "==")
		if !ok {
			return nil, fmt.Errorf("wheel %q is not name==version", wheel)
		}
		ref := purl("pypi", "", strings.ToLower(strings.ReplaceAll(name, "_", "-")), version)
		components = append(components, cdx.Component{
			BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: name, Version: version, PackageURL: ref,
		})
	}
	for _, bin := range in.GoBinaries {
		comps, dep, err := goBinary(bin)
		if err != nil {
			return nil, err
		}
		components = append(components, comps...)
		dependencies = append(dependencies, dep)
	}
	components = dedupe(components)
	bom.Components = &components
	if len(dependencies) > 0 {
		bom.Dependencies = &dependencies
	}
	return bom, nil
}

// goBinary describes one Go program: itself (with its hash), the Go standard library it was built
// with, and its modules, which it depends on.
func goBinary(bin GoBinary) ([]cdx.Component, cdx.Dependency, error) {
	data, err := os.ReadFile(bin.File)
	if err != nil {
		return nil, cdx.Dependency{}, err
	}
	f, err := os.Open(bin.Blob)
	if err != nil {
		return nil, cdx.Dependency{}, err
	}
	defer f.Close()
	b, err := blob.Read(f)
	if err != nil {
		return nil, cdx.Dependency{}, fmt.Errorf("%s: %w", bin.Blob, err)
	}
	sum := sha256.Sum256(data)
	self := cdx.Component{
		BOMRef: "file:" + bin.Path, Type: cdx.ComponentTypeApplication, Name: bin.Path,
		Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: hex.EncodeToString(sum[:])}},
		Properties: property("path", bin.Path),
	}
	stdlib := purl("golang", "", "stdlib", b.GoVersion)
	comps := []cdx.Component{self, {BOMRef: stdlib, Type: cdx.ComponentTypeLibrary, Name: "stdlib", Version: b.GoVersion, PackageURL: stdlib}}
	deps := []string{stdlib}
	for _, m := range b.Modules {
		ref := purl("golang", "", m.Path, m.Version)
		comps = append(comps, cdx.Component{BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: m.Path, Version: m.Version, PackageURL: ref})
		deps = append(deps, ref)
	}
	return comps, cdx.Dependency{Ref: self.BOMRef, Dependencies: &deps}, nil
}

// dedupe keeps the first component of each bom-ref (two Go binaries share modules), sorted.
func dedupe(components []cdx.Component) []cdx.Component {
	seen := map[string]bool{}
	var out []cdx.Component
	for _, c := range components {
		if !seen[c.BOMRef] {
			seen[c.BOMRef] = true
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].BOMRef < out[j].BOMRef })
	return out
}

// ReadDebianLock reads tools/rules/debian/packages.lock.json.
func ReadDebianLock(path string) (*DebianLock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lock DebianLock
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &lock, nil
}
