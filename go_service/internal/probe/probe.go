// Package probe implements probe mode: the container healthcheck for an
// image that has no shell or curl, only the service binary.
package probe

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// timeout keeps a hung service from hanging its own healthcheck.
const timeout = 3 * time.Second

// Check GETs url and succeeds only on a 2xx status.
func Check(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
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
