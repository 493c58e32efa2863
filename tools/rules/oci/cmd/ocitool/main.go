// Command ocitool does the OCI work of this repo's image rules (tools/rules/oci/*.bzl):
//
//	ocitool layer --out L.tar [--tar T.tar]... [--exclude GLOB]...
//	                                (Debian package trees merged; other layers are pkg_tar's)
//	ocitool image --out DIR [--base DIR] [--layer L.tar]... [--entrypoint JSON] [--cmd JSON]
//	              [--env K=V]... [--user U] [--workdir W] [--exposed-port P]... [--label K=V]...
//	              [--healthcheck JSON] [--healthcheck-interval D] [--healthcheck-timeout D]
//	              [--healthcheck-start-period D] [--healthcheck-retries N] [--stop-signal SIG]
//	              [--created RFC3339] [--os OS] [--arch ARCH]
//	ocitool docker-archive --image DIR --tag REPO:TAG [--tag REPO:TAG]... --out T.tar
//	ocitool inspect --image DIR     (JSON: config, sizes, every layer's files)
//	ocitool digest --image DIR      (the manifest digest)
//	ocitool push --image DIR --repository [REGISTRY/]REPO [--tag TAG]...
//	                                (prints REGISTRY/REPO@sha256:...; credentials from the Docker config)
//
// Outputs are reproducible: entries and images are dated SOURCE_DATE_EPOCH when it is set, else the
// Unix epoch (--created overrides it for images). Usage errors exit 2, other failures 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"cacheplatform/tools/rules/oci/internal/image"
	"cacheplatform/tools/rules/oci/internal/layer"
)

const usage = "usage: ocitool layer|image|docker-archive|inspect|digest|push [flags] (ocitool COMMAND -h for flags)"

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// errUsage marks errors that are the caller's: exit status 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one command and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	commands := map[string]func([]string, io.Writer, io.Writer) error{
		"layer": layerCmd, "image": imageCmd, "docker-archive": archiveCmd, "inspect": inspectCmd, "digest": digestCmd,
		"push": pushCmd,
	}
	var err error
	if len(args) == 0 {
		err = fmt.Errorf("%w: no command; %s", errUsage, usage)
	} else if cmd, ok := commands[args[0]]; !ok {
		err = fmt.Errorf("%w: unknown command %q; %s", errUsage, args[0], usage)
	} else {
		err = cmd(args[1:], stdout, stderr)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "ocitool:", strings.Replace(err.Error(), "usage: ", "usage error: ", 1))
		return 2
	default:
		fmt.Fprintln(stderr, "ocitool:", err)
		return 1
	}
}

func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

// parse parses a command's flags; flags named in required must be set.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer, required ...string) error {
	fs.SetOutput(io.Discard) // errors are reported in one line by run; -h prints the flags
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return usageError("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usageError("%s: unexpected argument %q (flags only)", fs.Name(), fs.Arg(0))
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			return usageError("%s: --%s is required", fs.Name(), name)
		}
	}
	return nil
}

// sourceDateEpoch returns SOURCE_DATE_EPOCH as a time, or the zero time when it is unset.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Time{}, nil
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || secs < 0 {
		return time.Time{}, usageError("SOURCE_DATE_EPOCH=%q: want seconds since the Unix epoch", v)
	}
	return time.Unix(secs, 0).UTC(), nil
}

// layerCmd merges Debian packages' filesystem tars into one layer (internal/layer).
func layerCmd(args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("layer", flag.ContinueOnError)
	out := fs.String("out", "", "layer tarball to write (uncompressed)")
	var tars, excludes list
	fs.Var(&tars, "tar", "tarball to merge, in order (repeatable)")
	fs.Var(&excludes, "exclude", "glob of paths to drop with everything below them; ** matches any depth (repeatable)")
	if err := parse(fs, args, stderr, "out"); err != nil {
		return err
	}
	for _, e := range excludes {
		if err := layer.ValidatePattern(e); err != nil {
			return usageError("--exclude: %v", err)
		}
	}
	b := layer.New(excludes)
	var err error
	if b.ModTime, err = sourceDateEpoch(); err != nil {
		return err
	}
	for _, t := range tars {
		if err := addTar(b, t); err != nil {
			return err
		}
	}
	return writeLayer(*out, b)
}

func addTar(b *layer.Builder, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := b.AddTar(f); err != nil {
		return fmt.Errorf("--tar %s: %w", path, err)
	}
	return nil
}

func writeLayer(path string, b *layer.Builder) error {
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

func imageCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	out := fs.String("out", "", "OCI image layout directory to write")
	base := fs.String("base", "", "OCI image layout (of this tool) to build on; default: an empty image")
	entrypoint := fs.String("entrypoint", "", `JSON array, e.g. ["/app/server"]`)
	cmd := fs.String("cmd", "", "JSON array")
	healthcheck := fs.String("healthcheck", "", `JSON array: ["CMD","/usr/local/bin/probe","URL"]; CMD is added if it does not start with CMD, CMD-SHELL or NONE`)
	created := fs.String("created", "", "creation time, RFC 3339 (default: SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00Z)")
	var spec image.Spec
	var layers, env, ports, labels list
	fs.Var(&layers, "layer", "layer tarball, uncompressed (gzipped here) or gzipped (repeatable)")
	fs.Var(&env, "env", "K=V, replaces the base's K (repeatable)")
	fs.Var(&ports, "exposed-port", "like 8080/tcp (repeatable)")
	fs.Var(&labels, "label", "K=V (repeatable)")
	fs.StringVar(&spec.User, "user", "", "user[:group]")
	fs.StringVar(&spec.Workdir, "workdir", "", "working directory")
	fs.StringVar(&spec.StopSignal, "stop-signal", "", "the signal that stops the container, like SIGQUIT (default: the base's, else SIGTERM)")
	fs.StringVar(&spec.OS, "os", "linux", "image OS")
	fs.StringVar(&spec.Arch, "arch", "amd64", "image architecture")
	fs.DurationVar(&spec.HealthInterval, "healthcheck-interval", 10*time.Second, "healthcheck interval")
	fs.DurationVar(&spec.HealthTimeout, "healthcheck-timeout", 3*time.Second, "healthcheck timeout")
	fs.DurationVar(&spec.HealthStartPeriod, "healthcheck-start-period", 0, "healthcheck start period")
	fs.IntVar(&spec.HealthRetries, "healthcheck-retries", 3, "healthcheck retries")
	if err := parse(fs, args, stderr, "out", "os", "arch"); err != nil {
		return err
	}
	spec.Layers, spec.Env, spec.ExposedPorts = layers, env, ports
	for _, a := range []struct {
		flag  string
		value string
		dst   *[]string
	}{{"entrypoint", *entrypoint, &spec.Entrypoint}, {"cmd", *cmd, &spec.Cmd}, {"healthcheck", *healthcheck, &spec.Healthcheck}} {
		if a.value == "" {
			continue
		}
		if err := json.Unmarshal([]byte(a.value), a.dst); err != nil || *a.dst == nil || (a.flag == "healthcheck" && len(*a.dst) == 0) {
			return usageError("--%s %s: want a JSON array of strings", a.flag, a.value)
		}
	}
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usageError("--env %q: want K=V", kv)
		}
	}
	if spec.StopSignal != "" && !validSignal(spec.StopSignal) {
		return usageError("--stop-signal %q: want a signal name like SIGQUIT", spec.StopSignal)
	}
	for _, p := range ports {
		if num, proto, _ := strings.Cut(p, "/"); !validPort(num) || (proto != "" && proto != "tcp" && proto != "udp" && proto != "sctp") {
			return usageError("--exposed-port %q: want PORT[/tcp|udp|sctp]", p)
		}
	}
	spec.Labels = map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return usageError("--label %q: want K=V", l)
		}
		spec.Labels[k] = v
	}
	var err error
	if spec.Created, err = sourceDateEpoch(); err != nil {
		return err
	}
	if *created != "" {
		if spec.Created, err = time.Parse(time.RFC3339, *created); err != nil {
			return usageError("--created %q: want RFC 3339, like 1970-01-01T00:00:00Z", *created)
		}
	}
	var baseImg v1.Image
	if *base != "" {
		if baseImg, err = image.Read(*base); err != nil {
			return fmt.Errorf("--base %s: %w", *base, err)
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
	fmt.Fprintln(stdout, digest)
	return nil
}

// validSignal reports whether s names a signal a server is commonly stopped with: a typo here
// would only show when the runtime fails to stop the container.
func validSignal(s string) bool {
	switch s {
	case "SIGTERM", "SIGQUIT", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGKILL":
		return true
	}
	return false
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

// readImage parses the flags of fs (which gets --image) and reads the image.
func readImage(fs *flag.FlagSet, args []string, stderr io.Writer, required ...string) (v1.Image, error) {
	dir := fs.String("image", "", "OCI image layout directory")
	if err := parse(fs, args, stderr, append([]string{"image"}, required...)...); err != nil {
		return nil, err
	}
	img, err := image.Read(*dir)
	if err != nil {
		return nil, fmt.Errorf("--image %s: %w", *dir, err)
	}
	return img, nil
}

func archiveCmd(args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("docker-archive", flag.ContinueOnError)
	out := fs.String("out", "", "docker-archive tarball to write")
	var tags list
	fs.Var(&tags, "tag", "repo:tag (repeatable, at least one)")
	img, err := readImage(fs, args, stderr, "out", "tag")
	if err != nil {
		return err
	}
	for _, t := range tags {
		if _, err := name.NewTag(t); err != nil {
			return usageError("--tag %q: %v", t, err)
		}
	}
	return image.WriteDockerArchive(*out, img, tags)
}

func inspectCmd(args []string, stdout, stderr io.Writer) error {
	img, err := readImage(flag.NewFlagSet("inspect", flag.ContinueOnError), args, stderr)
	if err != nil {
		return err
	}
	report, err := image.Inspect(img)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}

func digestCmd(args []string, stdout, stderr io.Writer) error {
	img, err := readImage(flag.NewFlagSet("digest", flag.ContinueOnError), args, stderr)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, digest)
	return nil
}

// pushTimeout bounds one push: the images here are tens of MB, and a registry that stops answering
// must not hang a CD job.
const pushTimeout = 10 * time.Minute

// pushCmd uploads the image (blobs, then the manifest by digest) and then points each --tag at
// it. The digest it prints is the manifest's, the same `ocitool digest` and the image rule print,
// so a deployment can name exactly the bytes Bazel built. A registry on localhost or a loopback or
// private address is spoken to over plain HTTP (go-containerregistry's rule); any other over HTTPS.
func pushCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	repository := fs.String("repository", "", "REGISTRY/REPO, like registry.example:5000/cache-platform/go_service")
	var tags list
	fs.Var(&tags, "tag", "tag to point at the pushed digest (repeatable; none: by digest only)")
	dir := fs.String("image", "", "OCI image layout directory")
	if err := parse(fs, args, stderr, "image", "repository"); err != nil {
		return err
	}
	repo, err := name.NewRepository(*repository, name.StrictValidation)
	if err != nil {
		return usageError("--repository %q: %v (want REGISTRY/REPO, no tag or digest)", *repository, err)
	}
	refs := make([]name.Tag, 0, len(tags))
	for _, t := range tags {
		tag, err := name.NewTag(repo.Name()+":"+t, name.StrictValidation)
		if err != nil {
			return usageError("--tag %q: %v", t, err)
		}
		refs = append(refs, tag)
	}
	img, err := image.Read(*dir)
	if err != nil {
		return fmt.Errorf("--image %s: %w", *dir, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
	defer cancel()
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	byDigest := repo.Digest(digest.String())
	if err := remote.Write(byDigest, img, opts...); err != nil {
		return fmt.Errorf("push %s: %w", byDigest, err)
	}
	for _, tag := range refs {
		if err := remote.Tag(tag, img, opts...); err != nil {
			return fmt.Errorf("tag %s: %w", tag, err)
		}
	}
	fmt.Fprintln(stdout, byDigest.String())
	return nil
}
