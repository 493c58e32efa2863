package blob

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

const extracted = `{"name":"govulncheck-extract","version":"0.1.0"}
{"pkgSymbols":[{"pkg":"net/http","name":"Get"},{"pkg":"github.com/prometheus/client_golang/prometheus/promhttp","name":"Handler"},{"pkg":"github.com/prometheus/common/expfmt","name":"Negotiate"},{"pkg":"cacheplatform/go_service/internal/cache","name":"New"}],"goVersion":"go1.27.3","goos":"linux","goarch":"amd64"}
`

const buildList = `{"Path":"cacheplatform/go_service","Main":true}
{"Path":"github.com/prometheus/client_golang","Version":"v1.23.2"}
{"Path":"github.com/prometheus/common","Version":"v0.67.1"}
{"Path":"github.com/prometheus/common/sigv4","Version":"v0.1.0"}
{"Path":"golang.org/x/sync","Version":"v0.22.0"}
`

func TestModulesOfMapsPackagesToTheirModules(t *testing.T) {
	b, err := Read(strings.NewReader(extracted))
	if err != nil {
		t.Fatal(err)
	}
	list, err := ReadBuildList(strings.NewReader(buildList))
	if err != nil {
		t.Fatal(err)
	}
	got := ModulesOf(b, list)
	want := []Module{
		{Path: "github.com/prometheus/client_golang", Version: "v1.23.2"},
		{Path: "github.com/prometheus/common", Version: "v0.67.1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ModulesOf = %v, want %v (no main module, nothing unused)", got, want)
	}
}

func TestWriteKeepsWhatItDoesNotKnow(t *testing.T) {
	b, err := Read(strings.NewReader(extracted))
	if err != nil {
		t.Fatal(err)
	}
	b.Modules = []Module{{Path: "golang.org/x/sync", Version: "v0.22.0"}}
	var out bytes.Buffer
	if err := b.Write(&out); err != nil {
		t.Fatal(err)
	}
	again, err := Read(&out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, b) {
		t.Errorf("read back %+v, want %+v", again, b)
	}
	if string(again.Rest["goos"]) != `"linux"` {
		t.Errorf("goos lost: %s", again.Rest["goos"])
	}
}

func TestReadRejectsOtherFormats(t *testing.T) {
	if _, err := Read(strings.NewReader(`{"name":"govulncheck-extract","version":"9.0.0"}` + "\n{}\n")); err == nil {
		t.Error("a blob of an unknown format version was accepted")
	}
}
