package httpapi

import (
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// contract is the part of api/openapi.json this service is tested against.
type contract struct {
	Paths  map[string]map[string]operation `json:"paths"` // path -> lower-case method -> operation
	Common struct {
		Methods     []string `json:"methods"`
		UnknownPath struct {
			Status      int    `json:"status"`
			ContentType string `json:"content-type"`
		} `json:"unknown-path"`
		WrongMethod struct {
			Status int    `json:"status"`
			Header string `json:"header"`
			Allow  string `json:"allow"`
		} `json:"wrong-method"`
		CacheHeaders []string `json:"in-process-cache-headers"`
		XCacheValues []string `json:"x-cache-values"`
		Caching      struct {
			InProcessCacheControl string `json:"in-process-cache-control"`
		} `json:"caching"`
		ResponseHeaders struct {
			ContentTypeOptions string `json:"X-Content-Type-Options"`
		} `json:"response-headers"`
		Negotiation struct {
			Offers []string `json:"offers"`
			Cases  []struct {
				Accept *string `json:"accept"` // nil: no Accept field
				Type   string  `json:"type"`
			} `json:"cases"`
		} `json:"content-negotiation"`
	} `json:"x-common"`
}

type operation struct {
	Cached    bool `json:"x-cached"`
	Responses map[string]struct {
		Content map[string]struct {
			Schema struct {
				Required []string `json:"required"`
			} `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

// loadContract finds api/openapi.json by walking up from the working
// directory: the package directory under go test, the package's runfiles
// directory under Bazel.
func loadContract(t *testing.T) contract {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "api", "openapi.json"))
		if err == nil {
			var c contract
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatalf("parsing the contract: %v", err)
			}
			return c
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("api/openapi.json not found in the working directory or any parent")
		}
		dir = parent
	}
}

// contentTypeSatisfies reports whether a response Content-Type has the
// documented media type and every documented parameter. Extra parameters
// are allowed: client_golang adds "escaping=underscores" to the metrics
// content type, which the contract does not list.
func contentTypeSatisfies(got, documented string) bool {
	gotType, gotParams, err := mime.ParseMediaType(got)
	if err != nil {
		return false
	}
	wantType, wantParams, err := mime.ParseMediaType(documented)
	if err != nil {
		return false
	}
	for name, value := range wantParams {
		if gotParams[name] != value {
			return false
		}
	}
	return gotType == wantType
}

// Every Accept case of the contract, on every route that answers text or
// JSON: the same choice as py_service makes for it.
func TestContractContentNegotiation(t *testing.T) {
	c := loadContract(t)
	if !slices.Equal(c.Common.Negotiation.Offers, offers[:]) {
		t.Fatalf("the contract offers %q, the service %q", c.Common.Negotiation.Offers, offers)
	}
	for path, methods := range c.Paths {
		if _, negotiated := methods["get"].Responses["200"].Content[contentTypeJSON]; !negotiated {
			continue
		}
		for _, tc := range c.Common.Negotiation.Cases {
			s := newTestService(t)
			req := httptest.NewRequest(http.MethodGet, path, nil)
			if tc.Accept != nil {
				req.Header.Set("Accept", *tc.Accept)
			}
			rec := httptest.NewRecorder()
			s.handler.ServeHTTP(rec, req)
			got, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
			if got != tc.Type {
				t.Errorf("GET %s with Accept %s: %s, want %s", path, describe(tc.Accept), got, tc.Type)
			}
			if rec.Header().Get("Vary") != "Accept" {
				t.Errorf("GET %s: Vary %q, want Accept", path, rec.Header().Get("Vary"))
			}
		}
	}
}

func describe(accept *string) string {
	if accept == nil {
		return "(none)"
	}
	return strconv.Quote(*accept)
}

func TestContractRoutes(t *testing.T) {
	c := loadContract(t)
	if len(c.Paths) == 0 {
		t.Fatal("the contract lists no paths")
	}
	for path, methods := range c.Paths {
		for method, op := range methods {
			if method != "get" {
				t.Errorf("%s %s: the service only implements GET (and HEAD)", method, path)
				continue
			}
			for status, response := range op.Responses {
				for mediaType, content := range response.Content {
					t.Run(path+" "+status+" "+mediaType, func(t *testing.T) {
						checkDocumentedResponse(t, c, path, op, status, mediaType, content.Schema.Required)
					})
				}
			}
		}
	}
}

func checkDocumentedResponse(t *testing.T, c contract, path string, op operation, status, mediaType string, required []string) {
	wantStatus, err := strconv.Atoi(status)
	if err != nil {
		t.Fatalf("response code %q is not a number", status)
	}
	for _, method := range c.Common.Methods {
		s := newTestService(t)
		// The only documented non-200 response is /readyz while not ready.
		s.ready.Store(wantStatus == 200)
		rec := s.do(method, path, mediaType)

		if rec.Code != wantStatus {
			t.Fatalf("%s %s: status %d, want %d", method, path, rec.Code, wantStatus)
		}
		checkEveryResponseHeaders(t, c, method+" "+path, rec)
		if got := rec.Header().Get("Content-Type"); !contentTypeSatisfies(got, mediaType) {
			t.Errorf("%s %s with Accept %q: Content-Type %q, want %q", method, path, mediaType, got, mediaType)
		}
		if op.Cached {
			for _, h := range c.Common.CacheHeaders {
				if rec.Header().Get(h) == "" {
					t.Errorf("%s %s: missing cache header %s", method, path, h)
				}
			}
			if got := rec.Header().Get("X-Cache"); !slices.Contains(c.Common.XCacheValues, got) {
				t.Errorf("%s %s: X-Cache %q, want one of %v", method, path, got, c.Common.XCacheValues)
			}
		} else if got := rec.Header().Get("X-Cache"); got != "" {
			t.Errorf("%s %s: X-Cache %q on a route the contract says is not cached", method, path, got)
		}
		if method == "GET" && len(required) > 0 {
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("GET %s: body %q is not a JSON object: %v", path, rec.Body.String(), err)
			}
			for _, field := range required {
				if _, ok := body[field].(string); !ok {
					t.Errorf("GET %s: body %s lacks string field %q", path, rec.Body.String(), field)
				}
			}
		}
	}
}

func TestContractWrongMethod(t *testing.T) {
	c := loadContract(t)
	want := c.Common.WrongMethod
	s := newTestService(t)
	for path := range c.Paths {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			rec := s.do(method, path, "")
			if rec.Code != want.Status {
				t.Errorf("%s %s: status %d, want %d", method, path, rec.Code, want.Status)
			}
			if got := rec.Header().Get(want.Header); got != want.Allow {
				t.Errorf("%s %s: %s %q, want %q", method, path, want.Header, got, want.Allow)
			}
			if got := rec.Header().Get("Content-Type"); got != contentTypeText {
				t.Errorf("%s %s: Content-Type %q, want a text body", method, path, got)
			}
			checkEveryResponseHeaders(t, c, method+" "+path, rec)
		}
	}
}

func TestContractUnknownPath(t *testing.T) {
	c := loadContract(t)
	want := c.Common.UnknownPath
	s := newTestService(t)
	for _, method := range c.Common.Methods {
		rec := s.do(method, "/not-in-the-contract", "")
		if rec.Code != want.Status {
			t.Errorf("%s unknown path: status %d, want %d", method, rec.Code, want.Status)
		}
		if got := rec.Header().Get("Content-Type"); got != want.ContentType {
			t.Errorf("%s unknown path: Content-Type %q, want %q", method, got, want.ContentType)
		}
		checkEveryResponseHeaders(t, c, method+" unknown path", rec)
	}
}

// checkEveryResponseHeaders checks what every response carries, whatever its
// route, method or status: nosniff, and the Cache-Control of a service that
// caches in-process (no shared cache in front may keep its answers).
func checkEveryResponseHeaders(t *testing.T, c contract, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	want := map[string]string{
		"X-Content-Type-Options": c.Common.ResponseHeaders.ContentTypeOptions,
		"Cache-Control":          c.Common.Caching.InProcessCacheControl,
	}
	for name, value := range want {
		if value == "" {
			t.Fatalf("the contract names no %s", name)
		}
		if got := rec.Header().Get(name); got != value {
			t.Errorf("%s: %s %q, want %q", what, name, got, value)
		}
	}
}

// Every route the handler serves must be in the contract, so the contract
// stays the complete list.
func TestContractListsEveryRoute(t *testing.T) {
	c := loadContract(t)
	served := slices.Sorted(maps.Values(newTestService(t).handler.(*api).routePaths))
	documented := slices.Sorted(maps.Keys(c.Paths))
	if !slices.Equal(served, documented) {
		t.Errorf("served paths %v, contract paths %v", served, documented)
	}
	if got := strings.Join(c.Common.Methods, ", "); got != c.Common.WrongMethod.Allow {
		t.Errorf("contract methods %q disagree with its Allow %q", got, c.Common.WrongMethod.Allow)
	}
}
