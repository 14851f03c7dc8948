package api

import (
	_ "embed"
	"net/http"
)

// openapiDoc is the OpenAPI 3 document of this API, written by hand and
// kept equal to the router by TestOpenAPIMatchesRouter.
//
//go:embed openapi.json
var openapiDoc []byte

// OpenAPI returns the OpenAPI 3 document.
func OpenAPI() []byte { return openapiDoc }

func (a *API) openapi(w http.ResponseWriter, _ *http.Request, _ *Principal) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openapiDoc)
	return err
}
