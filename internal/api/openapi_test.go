package api_test

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/takedown/takedown/internal/api"
	"github.com/takedown/takedown/internal/api/apitest"
)

type openapiDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		OperationID string `json:"operationId"`
		Responses   map[string]any
		Parameters  []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		}
	} `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

// TestOpenAPIMatchesRouter walks the router and the document: every route
// is documented and every documented operation reaches its own route, not
// the no_route answer.
func TestOpenAPIMatchesRouter(t *testing.T) {
	var doc openapiDoc
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	f := apitest.New(t)
	a := api.New(api.Options{Registry: f.DB, Events: f.Events, Stats: f.Stats, Tokens: f.DB})
	routes := a.Routes()
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			key := strings.ToUpper(method) + " " + path
			documented[key] = true
			if op.OperationID == "" || op.Responses["default"] == nil {
				t.Errorf("%s: no operationId or default error response", key)
			}
			// Path parameters are declared.
			for _, seg := range strings.Split(path, "/") {
				if name, ok := strings.CutPrefix(seg, "{"); ok {
					name = strings.TrimSuffix(name, "}")
					if !slices.ContainsFunc(op.Parameters, func(p struct {
						Name string `json:"name"`
						In   string `json:"in"`
					}) bool {
						return p.Name == name && p.In == "path"
					}) {
						t.Errorf("%s: path parameter %s undeclared", key, name)
					}
				}
			}
			// The documented operation reaches the route of the same
			// pattern.
			concrete := strings.NewReplacer("{id}", "x", "{format}", "json").Replace(path)
			req := httptest.NewRequest(strings.ToUpper(method), api.Prefix+concrete, nil)
			if got := a.Match(req); got != strings.ToUpper(method)+" "+path {
				t.Errorf("%s: router matches %q", key, got)
			}
		}
	}
	var missing []string
	for _, r := range routes {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes not documented: %v", missing)
	}
	if len(documented) != len(routes) {
		t.Errorf("%d documented operations, %d routes", len(documented), len(routes))
	}
	// The error catalogue is the document's enum.
	enum := doc.Components.Schemas["Error"].Properties["error"].Properties["code"].Enum
	var codes []string
	for _, e := range api.Catalogue() {
		codes = append(codes, e.Code)
	}
	slices.Sort(enum)
	slices.Sort(codes)
	if !slices.Equal(enum, codes) {
		t.Errorf("document error codes %v, catalogue %v", enum, codes)
	}
}
