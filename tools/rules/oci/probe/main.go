// Command probe is the Docker HEALTHCHECK of every image whose service answers HTTP (go_service,
// py_service, nginx, prometheus, alertmanager): one static binary that needs no shell, no libc and
// no interpreter. `probe URL` GETs URL and exits 0 on a 2xx answer, 1 on any other answer, on no
// answer and after Timeout, and 2 when URL is missing or not an absolute http(s) URL. The reason of
// a failure goes to stderr, which Docker keeps in the container's health log (`docker inspect`).
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Timeout bounds one check, connection and answer together. It is shorter than the engine's
// own bound on a check (3 s: the images' HEALTHCHECK, ocitool's default, and `timeout: 3s` in
// deploy/compose.yaml), so that a hung service fails its check with a reason ("context deadline
// exceeded" in the health log) instead of the engine killing the probe with none.
const Timeout = 2 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is main with its arguments and stderr passed in; it returns the exit code.
func run(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: probe URL")
		return 2
	}
	if u, err := url.Parse(args[0]); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "probe: %q: want an absolute http or https URL\n", args[0])
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := check(ctx, args[0]); err != nil {
		fmt.Fprintln(stderr, "probe:", err)
		return 1
	}
	return 0
}

// check GETs url (following redirects, as http.Client does) and succeeds only on a 2xx status
// before ctx ends.
func check(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
