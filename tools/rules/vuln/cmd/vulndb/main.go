// Command vulndb turns a directory of OSV entries (the data/osv directory of a golang.org/x/vulndb
// snapshot) into a Go vulnerability database in the v1 layout that `govulncheck -db file://DIR`
// reads: index/db.json, index/modules.json, index/vulns.json and ID/<id>.json.
//
// golang.org/x/vulndb has a command for this (cmd/indexdb), but its module pulls in cloud, git and
// telemetry libraries that would take minutes to compile for a few lines of indexing.
//
//	usage: vulndb -out DIR OSV_DIR
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/mod/semver"
)

// entry is the part of an OSV entry the index needs.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []osvRange `json:"ranges"`
	} `json:"affected"`
}

type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced,omitempty"`
		Fixed      string `json:"fixed,omitempty"`
	} `json:"events"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

// Database is the v1 database built from a set of OSV entries.
type Database struct {
	Modified time.Time
	Modules  map[string]*module
	Vulns    []vuln
	Raw      map[string][]byte // id -> the entry as read
}

// less orders OSV versions ("1.2.3", no "v"); "" (none) sorts first.
func less(a, b string) bool {
	if a == "" {
		return b != ""
	}
	return b != "" && semver.Compare("v"+a, "v"+b) < 0
}

// latestFixed is the version from which no later version is affected, or "" when a range is
// reintroduced after its last fix (the same rule as golang.org/x/vulndb's index).
func latestFixed(ranges []osvRange) string {
	latest := ""
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed != "" && less(latest, e.Fixed) {
				latest = e.Fixed
			}
		}
		for _, e := range r.Events {
			if e.Introduced != "" && e.Introduced != "0" && less(latest, e.Introduced) {
				latest = ""
				break
			}
		}
	}
	return latest
}

// Build indexes the given OSV entries (file contents).
func Build(files map[string][]byte) (*Database, error) {
	db := &Database{Modules: map[string]*module{}, Raw: map[string][]byte{}}
	for name, data := range files {
		var e entry
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if e.ID == "" || filepath.Base(name) != e.ID+".json" {
			return nil, fmt.Errorf("%s: holds entry %q, want a file named <id>.json", name, e.ID)
		}
		if _, dup := db.Raw[e.ID]; dup {
			return nil, fmt.Errorf("entry %s appears twice", e.ID)
		}
		db.Raw[e.ID] = data
		if e.Modified.After(db.Modified) {
			db.Modified = e.Modified
		}
		db.Vulns = append(db.Vulns, vuln{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		for _, a := range e.Affected {
			m := db.Modules[a.Package.Name]
			if m == nil {
				m = &module{Path: a.Package.Name, Vulns: []moduleVuln{}}
				db.Modules[a.Package.Name] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: latestFixed(a.Ranges)})
		}
	}
	return db, nil
}

// Write lays the database out under dir, sorted so that equal inputs give equal bytes.
func (db *Database) Write(dir string) error {
	modules := make([]*module, 0, len(db.Modules))
	for _, m := range db.Modules {
		sort.Slice(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		modules = append(modules, m)
	}
	sort.Slice(modules, func(i, j int) bool { return modules[i].Path < modules[j].Path })
	sort.Slice(db.Vulns, func(i, j int) bool { return db.Vulns[i].ID < db.Vulns[j].ID })
	index := map[string]any{
		"db.json":      map[string]time.Time{"modified": db.Modified},
		"modules.json": modules,
		"vulns.json":   db.Vulns,
	}
	for _, sub := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	for name, v := range index {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "index", name), data, 0o644); err != nil {
			return err
		}
	}
	for id, data := range db.Raw {
		if err := os.WriteFile(filepath.Join(dir, "ID", id+".json"), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	out := flag.String("out", "", "directory to write the database to")
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		log.Fatal("usage: vulndb -out DIR OSV_DIR")
	}
	names, err := filepath.Glob(filepath.Join(flag.Arg(0), "*.json"))
	if err != nil || len(names) == 0 {
		log.Fatalf("no OSV entries (*.json) in %s", flag.Arg(0))
	}
	files := map[string][]byte{}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			log.Fatal(err)
		}
		files[name] = data
	}
	db, err := Build(files)
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Write(*out); err != nil {
		log.Fatal(err)
	}
	log.Printf("vulndb: %d entries, %d modules, last modified %s", len(db.Raw), len(db.Modules), db.Modified.Format(time.RFC3339))
}
