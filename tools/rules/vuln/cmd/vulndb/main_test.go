package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestLatestFixed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ranges string
		want   string
	}{
		{"one fix", `[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}]`, "1.2.3"},
		{"the later of two", `[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.10.0"},{"introduced":"1.11.0"},{"fixed":"1.11.2"}]}]`, "1.11.2"},
		{"semver order, not text", `[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.9.0"}]},{"type":"SEMVER","events":[{"introduced":"1.9.5"},{"fixed":"1.10.0"}]}]`, "1.10.0"},
		{"reintroduced after the last fix", `[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.0"},{"introduced":"1.3.0"}]}]`, ""},
		{"never fixed", `[{"type":"SEMVER","events":[{"introduced":"0"}]}]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ranges []osvRange
			if err := json.Unmarshal([]byte(tc.ranges), &ranges); err != nil {
				t.Fatal(err)
			}
			if got := latestFixed(ranges); got != tc.want {
				t.Errorf("latestFixed = %q, want %q", got, tc.want)
			}
		})
	}
}

const stdEntry = `{"id":"GO-2026-0001","modified":"2026-05-01T00:00:00Z","aliases":["CVE-2026-1"],
"affected":[{"package":{"name":"stdlib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.26.9"}]}]}]}`

func TestBuildAndWrite(t *testing.T) {
	db, err := Build(map[string][]byte{"osv/GO-2026-0001.json": []byte(stdEntry)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := db.Write(dir); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if got, want := read("index/modules.json"), `[{"path":"stdlib","vulns":[{"id":"GO-2026-0001","modified":"2026-05-01T00:00:00Z","fixed":"1.26.9"}]}]`; got != want {
		t.Errorf("modules.json = %s, want %s", got, want)
	}
	if got, want := read("index/vulns.json"), `[{"id":"GO-2026-0001","modified":"2026-05-01T00:00:00Z","aliases":["CVE-2026-1"]}]`; got != want {
		t.Errorf("vulns.json = %s, want %s", got, want)
	}
	if got, want := read("index/db.json"), `{"modified":"2026-05-01T00:00:00Z"}`; got != want {
		t.Errorf("db.json = %s, want %s", got, want)
	}
	if got := read("ID/GO-2026-0001.json"); got != stdEntry {
		t.Errorf("the entry was not copied as it is: %s", got)
	}
}

func TestBuildRejectsMisnamedEntries(t *testing.T) {
	if _, err := Build(map[string][]byte{"osv/GO-2026-9999.json": []byte(stdEntry)}); err == nil {
		t.Error("an entry in a file not named after its id was accepted")
	}
}
