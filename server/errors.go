package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/streamrec/streamrec/ingest"
	"github.com/streamrec/streamrec/pipeline"
)

// apiError is the one error shape of the API:
// {"error": {"code", "message", "details"}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, msg string, details any) *apiError {
	return &apiError{Status: status, Code: code, Message: msg, Details: details}
}

// WriteError writes the API's error shape with the given status and code.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	writeError(w, errorf(status, code, message, nil))
}

// WriteJSON writes v as the JSON body of a reply with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may be gone; nothing useful to do
}

// writeError maps any error to its status and JSON body, in one place, and
// returns the status.
func writeError(w http.ResponseWriter, err error) int {
	var ae *apiError
	var mbe *http.MaxBytesError
	var se *pipeline.SyntaxError
	switch {
	case errors.As(err, &mbe):
		ae = errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than the limit", map[string]int64{"limit_bytes": mbe.Limit})
	case errors.As(err, &ae):
	case errors.Is(err, pipeline.ErrTooManyEvents):
		ae = errorf(http.StatusRequestEntityTooLarge, "too_many_events", err.Error(), nil)
	case errors.As(err, &se):
		ae = errorf(http.StatusBadRequest, "invalid_json", se.Msg, nil)
	case errors.Is(err, ingest.ErrUnavailable), errors.Is(err, ingest.ErrBroken):
		w.Header().Set("Retry-After", "5")
		ae = errorf(http.StatusServiceUnavailable, "storage_unavailable", err.Error(), nil)
	case errors.Is(err, ingest.ErrClosed):
		w.Header().Set("Retry-After", "1")
		ae = errorf(http.StatusServiceUnavailable, "unavailable", err.Error(), nil)
	default:
		ae = errorf(http.StatusInternalServerError, "internal", "internal error", nil)
	}
	writeJSON(w, ae.Status, map[string]*apiError{"error": ae})
	return ae.Status
}
