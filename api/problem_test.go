package api

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// A client that went away is not an internal error: 499, no ERROR line. A cancelled context
// while the client is still there is a real internal error.
func TestCancelledRequestsAreNotInternalErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		clientGone bool
		want       int
		wantError  bool
	}{
		{"client closed the request", true, statusClientClosedRequest, false},
		{"cancellation with the client still there", false, 500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			e := echo.New()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.clientGone {
				cancel()
			}
			req := httptest.NewRequest("GET", "/v1/referrals", nil).WithContext(ctx)
			rec := httptest.NewRecorder()
			c := e.NewContext(req, rec)
			errorHandler(slog.New(slog.NewJSONHandler(&logs, nil)))(fmt.Errorf("store: %w", context.Canceled), c)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d", rec.Code, tc.want)
			}
			if got := strings.Contains(logs.String(), `"level":"ERROR"`); got != tc.wantError {
				t.Errorf("ERROR logged = %v, want %v: %s", got, tc.wantError, logs.String())
			}
		})
	}
}
