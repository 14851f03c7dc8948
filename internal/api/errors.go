package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an API error: one entry of the catalogue, with a message about
// this occurrence. Clients branch on Code, which never changes.
type Error struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Problems lists every problem of a rejected upload ("body:3: …").
	Problems []string `json:"problems,omitempty"`
	err      error
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
func (e *Error) Unwrap() error { return e.err }

func (e Error) withf(format string, a ...any) *Error {
	e.Message = fmt.Sprintf(format, a...)
	return &e
}

func (e Error) wrap(err error) *Error {
	e.err = err
	return &e
}

// The error catalogue. docs/api.md lists it; the OpenAPI document's Error
// schema enumerates the codes.
var (
	errBadParameter  = Error{Status: http.StatusBadRequest, Code: "bad_parameter", Message: "a parameter is missing or malformed"}
	errTooLarge      = Error{Status: http.StatusBadRequest, Code: "too_large", Message: "the request asks for more than one request may cover"}
	errUnauthorized  = Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "authentication required"}
	errForbidden     = Error{Status: http.StatusForbidden, Code: "forbidden", Message: "not allowed for this caller"}
	errCSRF          = Error{Status: http.StatusForbidden, Code: "csrf", Message: "missing or wrong CSRF token"}
	errNotFound      = Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such object"}
	errNoRoute       = Error{Status: http.StatusNotFound, Code: "no_route", Message: "no such route"}
	errUnknownFormat = Error{Status: http.StatusNotFound, Code: "unknown_format", Message: "no such export format"}
	errConflict      = Error{Status: http.StatusConflict, Code: "conflict", Message: "the object exists already"}
	errBadMethod     = Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed"}
	errNotConfigured = Error{Status: http.StatusNotImplemented, Code: "not_configured", Message: "this part is not configured"}
	errInternal      = Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; see the server log"}
)

// Catalogue lists every error the API answers with (for the documentation
// and its test).
func Catalogue() []Error {
	return []Error{errBadParameter, errTooLarge, errUnauthorized, errForbidden, errCSRF, errNotFound, errNoRoute, errUnknownFormat, errConflict, errBadMethod, errNotConfigured, errInternal}
}

// CSRFError is the catalogue's csrf error, for the dashboard.
func CSRFError() *Error { e := errCSRF; return &e }

// UnauthorizedError is the catalogue's unauthorized error, for the
// dashboard.
func UnauthorizedError(msg string) *Error { return errUnauthorized.withf("%s", msg) }

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errInternal.wrap(err)
}

// WriteError writes err as the API's JSON error document. Errors that are
// not from the catalogue become "internal" without their text.
func WriteError(w http.ResponseWriter, err error) { writeError(w, asError(err)) }

func writeError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="takedown"`)
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(struct {
		Error *Error `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(v)
}
