// Package blob reads and writes govulncheck's extract format ("govulncheck-extract" 0.1.0): a
// header line, then what govulncheck knows of one Go binary (Go version, platform, packages and
// symbols, modules). `govulncheck -mode=binary` scans such a blob as it scans the binary itself.
package blob

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Header is the first JSON value of a blob.
type Header struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// The only version of the format govulncheck 1.x writes and reads.
var header = Header{Name: "govulncheck-extract", Version: "0.1.0"}

// Module is a Go module as the blob names it (golang.org/x/tools/go/packages.Module's fields).
type Module struct {
	Path    string
	Version string
}

// Symbol is one function or method in the binary.
type Symbol struct {
	Pkg  string `json:"pkg,omitempty"`
	Name string `json:"name,omitempty"`
}

// Blob is the body. Fields govulncheck may add later are kept as they are in Rest.
type Blob struct {
	Modules    []Module
	PkgSymbols []Symbol
	GoVersion  string
	Rest       map[string]json.RawMessage
}

// Read parses a blob as `govulncheck -mode=extract` prints it.
func Read(r io.Reader) (*Blob, error) {
	dec := json.NewDecoder(r)
	var h Header
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("blob header: %w", err)
	}
	if h != header {
		return nil, fmt.Errorf("blob header %+v, want %+v", h, header)
	}
	var body map[string]json.RawMessage
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("blob body: %w", err)
	}
	b := &Blob{Rest: body}
	for key, dst := range map[string]any{"modules": &b.Modules, "pkgSymbols": &b.PkgSymbols, "goVersion": &b.GoVersion} {
		if raw, ok := body[key]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, fmt.Errorf("blob %s: %w", key, err)
			}
			delete(body, key)
		}
	}
	return b, nil
}

// Write prints the blob in the format Read (and govulncheck) reads.
func (b *Blob) Write(w io.Writer) error {
	body := map[string]any{}
	for k, v := range b.Rest {
		body[k] = v
	}
	body["modules"] = b.Modules
	body["pkgSymbols"] = b.PkgSymbols
	body["goVersion"] = b.GoVersion
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(header); err != nil {
		return err
	}
	if err := enc.Encode(body); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ReadBuildList parses `go list -m -json all` output: the modules a Go workspace builds with.
// Main modules (the workspace's own, with no version) are left out.
func ReadBuildList(r io.Reader) ([]Module, error) {
	var modules []Module
	dec := json.NewDecoder(r)
	for dec.More() {
		var m struct {
			Path, Version string
			Main          bool
		}
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("build list: %w", err)
		}
		if !m.Main {
			modules = append(modules, Module{Path: m.Path, Version: m.Version})
		}
	}
	return modules, nil
}

// ModulesOf returns the modules of the build list that provide at least one of the blob's
// packages (the longest module path that is the package path or a prefix of it), sorted by path.
// Packages of no listed module (the standard library, the workspace's own) match none.
func ModulesOf(b *Blob, buildList []Module) []Module {
	used := map[string]Module{}
	for _, s := range b.PkgSymbols {
		var best *Module
		for i, m := range buildList {
			if (s.Pkg == m.Path || strings.HasPrefix(s.Pkg, m.Path+"/")) && (best == nil || len(m.Path) > len(best.Path)) {
				best = &buildList[i]
			}
		}
		if best != nil {
			used[best.Path] = *best
		}
	}
	modules := make([]Module, 0, len(used))
	for _, m := range used {
		modules = append(modules, m)
	}
	sort.Slice(modules, func(i, j int) bool { return modules[i].Path < modules[j].Path })
	return modules
}
