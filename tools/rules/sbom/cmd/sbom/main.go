// Command sbom writes the CycloneDX JSON SBOM of one image (package cacheplatform/tools/rules/sbom).
//
//	usage: sbom -image NAME -out FILE [-debian-lock FILE -debian-set SET...]
//	            [-python-wheels FILE] [-go PATH_IN_IMAGE=BINARY=BLOB...]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"cacheplatform/tools/rules/sbom"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func lines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if line := strings.TrimSpace(scanner.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out, scanner.Err()
}

func run() error {
	var in sbom.Inputs
	var sets, gos list
	flag.StringVar(&in.Image, "image", "", "the image's name (its Bazel label)")
	out := flag.String("out", "", "where to write the SBOM")
	debianLock := flag.String("debian-lock", "", "tools/rules/debian/packages.lock.json")
	flag.Var(&sets, "debian-set", "a set of the Debian lock the image holds (repeatable)")
	wheels := flag.String("python-wheels", "", "a file of name==version lines: the image's wheels")
	flag.Var(&gos, "go", "PATH_IN_IMAGE=BINARY=BLOB: a Go binary of the image and its blob (repeatable)")
	flag.Parse()
	if in.Image == "" || *out == "" || (len(sets) > 0) != (*debianLock != "") {
		return fmt.Errorf("usage: sbom -image NAME -out FILE [-debian-lock FILE -debian-set SET...] [-python-wheels FILE] [-go PATH=BINARY=BLOB...]")
	}
	var err error
	if *debianLock != "" {
		if in.DebianLock, err = sbom.ReadDebianLock(*debianLock); err != nil {
			return err
		}
		in.DebianSets = sets
	}
	if *wheels != "" {
		if in.PythonWheels, err = lines(*wheels); err != nil {
			return err
		}
	}
	for _, g := range gos {
		parts := strings.Split(g, "=")
		if len(parts) != 3 {
			return fmt.Errorf("-go %q: want PATH_IN_IMAGE=BINARY=BLOB", g)
		}
		in.GoBinaries = append(in.GoBinaries, sbom.GoBinary{Path: parts[0], File: parts[1], Blob: parts[2]})
	}
	bom, err := sbom.Build(in)
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	enc := cdx.NewBOMEncoder(f, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	if err := enc.Encode(bom); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}
