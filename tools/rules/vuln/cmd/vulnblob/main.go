// Command vulnblob describes a Go binary built by Bazel for govulncheck and for the image SBOMs:
// what `govulncheck -mode=extract` finds in it (Go version, packages, symbols) plus the modules
// those packages come from, taken from the workspace's build list. `go build` writes that module
// list into a binary; rules_go does not, and without it `govulncheck -mode=binary` would check the
// standard library only.
//
// rules_go also strips its binaries (-s -w in fastbuild), which leaves govulncheck no symbol
// table to name the functions inside; their names are still in the Go line table (.gopclntab,
// which the runtime needs), and vulnblob reads them from there. What stripping does lose is the
// inline tree, so a function inlined at every call site is not seen (docs/images.md,
// "Supply chain").
//
//	usage: vulnblob -govulncheck PATH -build-list FILE -out BLOB BINARY
package main

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"

	"cacheplatform/tools/rules/vuln/blob"
)

func run(govulncheck, buildListFile, out, binary string) error {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(govulncheck, "-mode=extract", binary)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("govulncheck -mode=extract %s: %v\n%s", binary, err, stderr.Bytes())
	}
	b, err := blob.Read(&stdout)
	if err != nil {
		return err
	}
	if len(b.PkgSymbols) == 0 {
		if b.PkgSymbols, err = lineTableSymbols(binary); err != nil {
			return err
		}
	}
	listFile, err := os.Open(buildListFile)
	if err != nil {
		return err
	}
	defer listFile.Close()
	buildList, err := blob.ReadBuildList(listFile)
	if err != nil {
		return err
	}
	// A binary `go build` made names its own modules: those are the truth.
	if len(b.Modules) == 0 {
		b.Modules = blob.ModulesOf(b, buildList)
	}
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// lineTableSymbols names every function of an ELF Go binary from its line table.
func lineTableSymbols(binary string) ([]blob.Symbol, error) {
	f, err := elf.Open(binary)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pclntab, text := f.Section(".gopclntab"), f.Section(".text")
	if pclntab == nil || text == nil {
		return nil, fmt.Errorf("%s: no .gopclntab or .text section: not a Go ELF binary?", binary)
	}
	data, err := pclntab.Data()
	if err != nil {
		return nil, err
	}
	table, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the line table: %w", binary, err)
	}
	seen := map[blob.Symbol]bool{}
	for _, fn := range table.Funcs {
		if fn.Func == nil {
			continue
		}
		s, err := symbol(fn.Sym)
		if err != nil {
			return nil, err
		}
		seen[s] = true
	}
	symbols := make([]blob.Symbol, 0, len(seen))
	for s := range seen {
		symbols = append(symbols, s)
	}
	sort.Slice(symbols, func(i, j int) bool {
		return symbols[i].Pkg+"."+symbols[i].Name < symbols[j].Pkg+"."+symbols[j].Name
	})
	return symbols, nil
}

// symbol names a function as govulncheck's extract does: package path, and "Recv.Method" with
// the receiver's pointer marks dropped.
func symbol(s *gosym.Sym) (blob.Symbol, error) {
	name := s.BaseName()
	if recv := s.ReceiverName(); recv != "" {
		name = strings.Trim(recv, "(*)") + "." + name
	}
	pkg, err := url.PathUnescape(s.PackageName())
	if err != nil {
		return blob.Symbol{}, fmt.Errorf("function %s: %w", s.Name, err)
	}
	return blob.Symbol{Pkg: pkg, Name: name}, nil
}

func main() {
	govulncheck := flag.String("govulncheck", "", "the govulncheck binary")
	buildList := flag.String("build-list", "", "`go list -m -json all` of the workspace")
	out := flag.String("out", "", "where to write the blob")
	flag.Parse()
	if *govulncheck == "" || *buildList == "" || *out == "" || flag.NArg() != 1 {
		log.Fatal("usage: vulnblob -govulncheck PATH -build-list FILE -out BLOB BINARY")
	}
	if err := run(*govulncheck, *buildList, *out, flag.Arg(0)); err != nil {
		log.Fatal(err)
	}
}
