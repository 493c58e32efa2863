// Command vulnblob describes a Go binary built by Bazel for govulncheck and for the image SBOMs:
// what `govulncheck -mode=extract` finds in it (Go version, packages, symbols) plus the modules
// those packages come from, taken from the workspace's build list. `go build` writes that module
// list into a binary; rules_go does not, and without it `govulncheck -mode=binary` would check the
// standard library only.
//
//	usage: vulnblob -govulncheck PATH -build-list FILE -out BLOB BINARY
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"

	"cacheplatform/tools/vuln/blob"
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
	if len(b.Modules) > 0 {
		return fmt.Errorf("%s already names its modules (not a rules_go binary?): nothing to add", binary)
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
	b.Modules = blob.ModulesOf(b, buildList)
	var buf bytes.Buffer
	if err := b.Write(&buf); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
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
