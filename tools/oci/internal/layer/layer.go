// Package layer writes deterministic, uncompressed layer tarballs: the filesystems of Debian
// packages (dpkg-deb --fsys-tarfile output) merged with single files, directories and symlinks.
//
// Every entry is owned by uid/gid 0 unless stated, dated the Unix epoch, written in path order;
// setuid/setgid bits are dropped (images must have no setuid files) and hard links become regular
// files, so the order of entries can never leave a link pointing at a file not yet written.
package layer

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Builder collects entries; the last entry added for a path wins.
type Builder struct {
	entries  map[string]*entry
	excludes []string
}

type entry struct {
	header tar.Header
	data   []byte
}

// New returns a Builder that drops paths matching any of excludes (see Excluded).
func New(excludes []string) *Builder {
	return &Builder{entries: map[string]*entry{}, excludes: excludes}
}

// Excluded reports whether p (no leading slash) matches a pattern: "dir/**" matches dir and
// everything below it; any other pattern is a path.Match glob.
func Excluded(p string, patterns []string) bool {
	for _, pattern := range patterns {
		if prefix, ok := strings.CutSuffix(pattern, "/**"); ok {
			if p == prefix || strings.HasPrefix(p, prefix+"/") {
				return true
			}
			continue
		}
		if ok, _ := path.Match(pattern, p); ok {
			return true
		}
	}
	return false
}

func clean(name string) string {
	return strings.Trim(path.Clean("/"+name), "/")
}

func (b *Builder) put(h tar.Header, data []byte) {
	h.Name = clean(h.Name)
	if h.Name == "" || Excluded(h.Name, b.excludes) {
		return
	}
	b.ensureParents(h.Name)
	h.Mode &^= int64(fs.ModeSetuid|fs.ModeSetgid) | 0o6000
	h.ModTime, h.AccessTime, h.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
	h.Uname, h.Gname, h.PAXRecords = "", "", nil
	h.Format = tar.FormatPAX
	h.Size = int64(len(data))
	b.entries[h.Name] = &entry{header: h, data: data}
}

func (b *Builder) ensureParents(name string) {
	for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if _, ok := b.entries[dir]; ok {
			return
		}
		b.entries[dir] = &entry{header: tar.Header{
			Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		}}
	}
}

// AddTar merges every entry of a tar stream, keeping modes, numeric owners and symlinks.
func (b *Builder) AddTar(r io.Reader) error {
	tr := tar.NewReader(r)
	var links []tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
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
			b.put(*h, data)
		case tar.TypeDir, tar.TypeSymlink:
			b.put(*h, nil)
		case tar.TypeLink:
			links = append(links, *h)
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", h.Name, h.Typeflag)
		}
	}
	for _, h := range links {
		target, ok := b.entries[clean(h.Linkname)]
		if !ok {
			if Excluded(clean(h.Linkname), b.excludes) {
				continue
			}
			return fmt.Errorf("%s: hard link to missing %s", h.Name, h.Linkname)
		}
		copied := target.header
		copied.Name = h.Name
		b.put(copied, target.data)
	}
	return nil
}

// AddFile adds the file at src as dst; mode 0 takes the source's (0755 if executable, else 0644).
func (b *Builder) AddFile(dst, src string, mode int64) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if mode == 0 {
		info, err := os.Stat(src)
		if err != nil {
			return err
		}
		mode = 0o644
		if info.Mode()&0o111 != 0 {
			mode = 0o755
		}
	}
	b.put(tar.Header{Typeflag: tar.TypeReg, Name: dst, Mode: mode}, data)
	return nil
}

// AddDir adds an empty directory.
func (b *Builder) AddDir(dst string, mode int64, uid, gid int) {
	b.put(tar.Header{Typeflag: tar.TypeDir, Name: dst, Mode: mode, Uid: uid, Gid: gid}, nil)
}

// AddSymlink adds dst pointing at target.
func (b *Builder) AddSymlink(dst, target string) {
	b.put(tar.Header{Typeflag: tar.TypeSymlink, Name: dst, Linkname: target, Mode: 0o777}, nil)
}

// AddManifest adds the files a manifest lists, one "DST<TAB>SRC" per line.
func (b *Builder) AddManifest(r io.Reader) error {
	scanner := bufio.NewScanner(r)
	for line := 1; scanner.Scan(); line++ {
		text := scanner.Text()
		if text == "" {
			continue
		}
		dst, src, ok := strings.Cut(text, "\t")
		if !ok {
			return fmt.Errorf("manifest line %d: want DST<TAB>SRC, got %q", line, text)
		}
		if err := b.AddFile(dst, src, 0); err != nil {
			return err
		}
	}
	return scanner.Err()
}

// Write writes the tarball, entries sorted by path (parents sort before their children).
func (b *Builder) Write(w io.Writer) error {
	names := make([]string, 0, len(b.entries))
	for name := range b.entries {
		names = append(names, name)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, name := range names {
		e := b.entries[name]
		h := e.header
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if err := tw.WriteHeader(&h); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// ParseMode parses an octal mode like "0755".
func ParseMode(s string) (int64, error) {
	return strconv.ParseInt(s, 8, 64)
}
