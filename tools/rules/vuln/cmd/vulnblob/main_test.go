package main

import (
	"debug/gosym"
	"os"
	"testing"

	"cacheplatform/tools/rules/vuln/blob"
)

func TestSymbolNamesLikeGovulncheck(t *testing.T) {
	for name, want := range map[string]blob.Symbol{
		"net/http.(*Client).Do":                   {Pkg: "net/http", Name: "Client.Do"},
		"net/http.CanonicalHeaderKey":             {Pkg: "net/http", Name: "CanonicalHeaderKey"},
		"crypto/x509.Certificate.Verify":          {Pkg: "crypto/x509", Name: "Certificate.Verify"},
		"gopkg.in/yaml%2ev3.(*decoder).unmarshal": {Pkg: "gopkg.in/yaml.v3", Name: "decoder.unmarshal"},
	} {
		got, err := symbol(&gosym.Sym{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("symbol(%q) = %+v, want %+v", name, got, want)
		}
	}
}

// The test binary is a Go ELF binary too: its line table names this very function.
func TestLineTableSymbolsReadsAGoBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	symbols, err := lineTableSymbols(self)
	if err != nil {
		t.Fatal(err)
	}
	want := blob.Symbol{Pkg: "cacheplatform/tools/rules/vuln/cmd/vulnblob", Name: "TestLineTableSymbolsReadsAGoBinary"}
	for _, s := range symbols {
		if s == want {
			return
		}
	}
	t.Errorf("%d symbols, none is %+v", len(symbols), want)
}
