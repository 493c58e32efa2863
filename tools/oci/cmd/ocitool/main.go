// Command ocitool does the OCI work of this repo's image rules (tools/oci/*.bzl):
//
//	ocitool layer --out L.tar [--tar T.tar]... [--file DST=SRC[:MODE]]... [--dir DST[:MODE[:UID:GID]]]...
//	              [--symlink DST=TARGET]... [--manifest FILE] [--exclude GLOB]...
//	ocitool image --out DIR [--base DIR] [--layer L.tar]... [--entrypoint JSON] [--cmd JSON]
//	              [--env K=V]... [--user U] [--workdir W] [--exposed-port P]... [--label K=V]... [--healthcheck JSON]
//	ocitool docker-archive --image DIR --tag REPO:TAG... --out T.tar
//	ocitool inspect --image DIR     (JSON: config, sizes, every layer's files)
//	ocitool digest --image DIR
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"cacheplatform/tools/oci/internal/image"
	"cacheplatform/tools/oci/internal/layer"
)

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// errUsage marks errors that are the caller's: exit status 2.
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("%w: ocitool layer|image|docker-archive|inspect|digest [flags]", errUsage))
	}
	commands := map[string]func([]string) error{
		"layer": layerCmd, "image": imageCmd, "docker-archive": archiveCmd, "inspect": inspectCmd, "digest": digestCmd,
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		fail(fmt.Errorf("%w: unknown command %q", errUsage, os.Args[1]))
	}
	if err := run(os.Args[2:]); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ocitool:", err)
	if errors.Is(err, errUsage) {
		os.Exit(2)
	}
	os.Exit(1)
}

func parse(fs *flag.FlagSet, args []string, required ...string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			return fmt.Errorf("%w: %s: --%s is required", errUsage, fs.Name(), name)
		}
	}
	return nil
}

func layerCmd(args []string) error {
	fs := flag.NewFlagSet("layer", flag.ContinueOnError)
	out := fs.String("out", "", "layer tarball to write")
	manifest := fs.String("manifest", "", "file of DST<TAB>SRC lines")
	var tars, files, dirs, symlinks, excludes list
	fs.Var(&tars, "tar", "tarball to merge (repeatable)")
	fs.Var(&files, "file", "DST=SRC[:MODE] (repeatable)")
	fs.Var(&dirs, "dir", "DST[:MODE[:UID:GID]] (repeatable)")
	fs.Var(&symlinks, "symlink", "DST=TARGET (repeatable)")
	fs.Var(&excludes, "exclude", "glob of paths to drop; dir/** drops a tree (repeatable)")
	if err := parse(fs, args, "out"); err != nil {
		return err
	}
	b := layer.New(excludes)
	for _, t := range tars {
		if err := addTar(b, t); err != nil {
			return err
		}
	}
	for _, f := range files {
		dst, src, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("%w: --file %q: want DST=SRC[:MODE]", errUsage, f)
		}
		var mode int64
		if path, m, hasMode := strings.Cut(src, ":"); hasMode {
			parsed, err := layer.ParseMode(m)
			if err != nil {
				return fmt.Errorf("%w: --file %q: mode: %v", errUsage, f, err)
			}
			src, mode = path, parsed
		}
		if err := b.AddFile(dst, src, mode); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		if err := addDir(b, d); err != nil {
			return err
		}
	}
	for _, s := range symlinks {
		dst, target, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("%w: --symlink %q: want DST=TARGET", errUsage, s)
		}
		b.AddSymlink(dst, target)
	}
	if *manifest != "" {
		f, err := os.Open(*manifest)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := b.AddManifest(f); err != nil {
			return err
		}
	}
	return writeFile(*out, b)
}

func addTar(b *layer.Builder, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := b.AddTar(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func addDir(b *layer.Builder, spec string) error {
	parts := strings.Split(spec, ":")
	if n := len(parts); n != 1 && n != 2 && n != 4 {
		return fmt.Errorf("%w: --dir %q: want DST[:MODE[:UID:GID]]", errUsage, spec)
	}
	mode, uid, gid := int64(0o755), 0, 0
	var errMode, errUID, errGID error
	if len(parts) >= 2 {
		mode, errMode = layer.ParseMode(parts[1])
	}
	if len(parts) == 4 {
		uid, errUID = strconv.Atoi(parts[2])
		gid, errGID = strconv.Atoi(parts[3])
	}
	if err := errors.Join(errMode, errUID, errGID); err != nil {
		return fmt.Errorf("%w: --dir %q: %v", errUsage, spec, err)
	}
	b.AddDir(parts[0], mode, uid, gid)
	return nil
}

func writeFile(path string, b *layer.Builder) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := b.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func imageCmd(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	out := fs.String("out", "", "OCI image layout directory to write")
	base := fs.String("base", "", "OCI image layout to build on (default: empty image)")
	entrypoint := fs.String("entrypoint", "", "JSON array")
	cmd := fs.String("cmd", "", "JSON array")
	healthcheck := fs.String("healthcheck", "", "JSON array, e.g. [\"CMD\",\"/app\",\"-probe\",\"URL\"]")
	var spec image.Spec
	var layers, env, ports, labels list
	fs.Var(&layers, "layer", "uncompressed layer tarball (repeatable)")
	fs.Var(&env, "env", "K=V (repeatable)")
	fs.Var(&ports, "exposed-port", "like 8080/tcp (repeatable)")
	fs.Var(&labels, "label", "K=V (repeatable)")
	fs.StringVar(&spec.User, "user", "", "user[:group]")
	fs.StringVar(&spec.Workdir, "workdir", "", "working directory")
	if err := parse(fs, args, "out"); err != nil {
		return err
	}
	spec.Layers, spec.Env, spec.ExposedPorts = layers, env, ports
	for name, value := range map[string]*string{"entrypoint": entrypoint, "cmd": cmd, "healthcheck": healthcheck} {
		if *value == "" {
			continue
		}
		var parsed []string
		if err := json.Unmarshal([]byte(*value), &parsed); err != nil {
			return fmt.Errorf("%w: --%s: want a JSON array of strings: %v", errUsage, name, err)
		}
		switch name {
		case "entrypoint":
			spec.Entrypoint = parsed
		case "cmd":
			spec.Cmd = parsed
		case "healthcheck":
			spec.Healthcheck = parsed
		}
	}
	spec.Labels = map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("%w: --label %q: want K=V", errUsage, l)
		}
		spec.Labels[k] = v
	}
	var baseImg v1.Image
	if *base != "" {
		var err error
		if baseImg, err = image.Read(*base); err != nil {
			return fmt.Errorf("base: %w", err)
		}
	}
	img, err := image.Build(baseImg, spec)
	if err != nil {
		return err
	}
	if err := image.Write(*out, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(digest)
	return nil
}

func readImage(fs *flag.FlagSet, args []string) (v1.Image, error) {
	dir := fs.String("image", "", "OCI image layout directory")
	if err := parse(fs, args, "image"); err != nil {
		return nil, err
	}
	return image.Read(*dir)
}

func archiveCmd(args []string) error {
	fs := flag.NewFlagSet("docker-archive", flag.ContinueOnError)
	out := fs.String("out", "", "docker-archive tarball to write")
	var tags list
	fs.Var(&tags, "tag", "repo:tag (repeatable)")
	img, err := readImage(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: docker-archive: --out is required", errUsage)
	}
	return image.WriteDockerArchive(*out, img, tags)
}

func inspectCmd(args []string) error {
	img, err := readImage(flag.NewFlagSet("inspect", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	report, err := image.Inspect(img)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}

func digestCmd(args []string) error {
	img, err := readImage(flag.NewFlagSet("digest", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(digest)
	return nil
}
