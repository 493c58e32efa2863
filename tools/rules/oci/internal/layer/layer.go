// Package layer is hand-written: no reachable rule merges Debian package trees minus setuid bits.
//
// It writes deterministic, uncompressed layer tarballs from the filesystems of Debian packages
// (dpkg-deb --fsys-tarfile output), dropping excluded paths (documentation). Every other layer is
// rules_pkg's pkg_tar (docs/images.md, "Layers").
//
// Entries keep their numeric owners, are dated ModTime (the Unix epoch by default) and written in
// path order, so the same inputs always give the same bytes. Setuid and setgid bits are dropped
// (images must have no setuid files). Hard links are kept: in each group of paths sharing one
// file, the first path in write order carries the data and the others link to it, so a link never
// points at a file not yet written.
package layer

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// Builder collects entries; the last entry added for a path wins.
type Builder struct {
	// ModTime dates every entry; the zero value means the Unix epoch.
	ModTime time.Time

	entries  map[string]*entry
	excludes []string
}

// entry is one path of the layer. A hard link shares its target's *file.
type entry struct {
	header tar.Header
	file   *file // regular files and hard links; nil otherwise
}

// file is the content of a regular file (and of every hard link to it).
type file struct {
	header tar.Header // mode and owner of the file
	data   []byte
}

// New returns a Builder that drops paths matching any of excludes (see Excluded).
func New(excludes []string) *Builder {
	return &Builder{entries: map[string]*entry{}, excludes: excludes}
}

// Excluded reports whether p (a normalised path: no leading "./" or "/") or one of its parent
// directories matches one of patterns. A pattern is a path.Match glob per path segment, where a
// "**" segment matches any number of segments: "usr/share/doc/**" and "usr/share/doc" both drop
// usr/share/doc and everything below it, "**/*.pyc" drops every .pyc file.
func Excluded(p string, patterns []string) bool {
	p = Clean(p)
	if p == "" {
		return false
	}
	segments := strings.Split(p, "/")
	for _, pattern := range patterns {
		ps := strings.Split(Clean(pattern), "/")
		for n := 1; n <= len(segments); n++ {
			if match(ps, segments[:n]) {
				return true
			}
		}
	}
	return false
}

// match reports whether the pattern segments ps match the path segments ss entirely.
func match(ps, ss []string) bool {
	for len(ps) > 0 {
		if ps[0] == "**" {
			for skip := 0; skip <= len(ss); skip++ {
				if match(ps[1:], ss[skip:]) {
					return true
				}
			}
			return false
		}
		if len(ss) == 0 {
			return false
		}
		if ok, err := path.Match(ps[0], ss[0]); err != nil || !ok {
			return false
		}
		ps, ss = ps[1:], ss[1:]
	}
	return len(ss) == 0
}

// ValidatePattern reports a malformed exclude pattern.
func ValidatePattern(pattern string) error {
	for _, s := range strings.Split(Clean(pattern), "/") {
		if _, err := path.Match(s, ""); err != nil {
			return fmt.Errorf("exclude pattern %q: %w", pattern, err)
		}
	}
	return nil
}

// Clean normalises a path in a layer: "./usr/bin/x", "/usr/bin/x" and "usr/bin/x/" are all
// "usr/bin/x"; the root is "".
func Clean(name string) string {
	return strings.Trim(path.Clean("/"+name), "/")
}

func (b *Builder) modTime() time.Time {
	if b.ModTime.IsZero() {
		return time.Unix(0, 0)
	}
	return b.ModTime
}

// normalise fixes h's name and drops everything of it that is not reproducible or not wanted.
func normalise(h tar.Header) tar.Header {
	h.Name = Clean(h.Name)
	h.Mode &^= 0o6000 // setuid, setgid
	h.ModTime, h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}, time.Time{}
	h.Uname, h.Gname, h.PAXRecords, h.Xattrs = "", "", nil, nil //nolint:staticcheck // clearing Xattrs
	h.Format = tar.FormatUnknown
	h.Size = 0
	return h
}

// put stores e at its header's (normalised) name unless that is excluded.
func (b *Builder) put(e *entry) {
	e.header = normalise(e.header)
	if e.file != nil {
		e.file.header = normalise(e.file.header)
	}
	name := e.header.Name
	if name == "" || Excluded(name, b.excludes) {
		return
	}
	b.ensureParents(name)
	b.entries[name] = e
}

func (b *Builder) ensureParents(name string) {
	for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if _, ok := b.entries[dir]; ok {
			continue
		}
		b.entries[dir] = &entry{header: tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}}
	}
}

// AddTar merges every entry of a tar stream in order, keeping modes, numeric owners, symlinks and
// hard links.
func (b *Builder) AddTar(r io.Reader) error {
	tr := tar.NewReader(r)
	// Every regular file of this tar, excluded or not: the target of a hard link may be excluded
	// while the link is not; the link then becomes the file.
	files := map[string]*file{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives use TypeRegA
			data, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			h.Typeflag = tar.TypeReg
			f := &file{header: *h, data: data}
			files[Clean(h.Name)] = f
			b.put(&entry{header: *h, file: f})
		case tar.TypeLink:
			f, ok := files[Clean(h.Linkname)]
			if !ok {
				return fmt.Errorf("%s: hard link to %s, which is not an earlier regular file of the same tar", h.Name, h.Linkname)
			}
			files[Clean(h.Name)] = f
			b.put(&entry{header: tar.Header{Typeflag: tar.TypeLink, Name: h.Name}, file: f})
		case tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			b.put(&entry{header: *h})
		case tar.TypeXGlobalHeader:
			// pax global headers (e.g. git archive's commit id) describe no file.
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", h.Name, h.Typeflag)
		}
	}
}

// Write writes the tarball, entries sorted by path (parents sort before their children).
func (b *Builder) Write(w io.Writer) error {
	names := make([]string, 0, len(b.entries))
	for name := range b.entries {
		names = append(names, name)
	}
	sort.Strings(names)
	written := map[*file]string{} // file -> the path that carries its data
	tw := tar.NewWriter(w)
	for _, name := range names {
		e := b.entries[name]
		h := e.header
		var data []byte
		if e.file != nil {
			if first, ok := written[e.file]; ok {
				h = e.file.header
				h.Typeflag, h.Linkname = tar.TypeLink, first
			} else {
				h, data = e.file.header, e.file.data
				h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
				written[e.file] = name
			}
			h.Name = name
		}
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		h.ModTime = b.modTime()
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}
