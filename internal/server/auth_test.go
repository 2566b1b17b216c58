package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/api/idtoken"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	validate := func(_ context.Context, tok, aud string) (*idtoken.Payload, error) {
		claims := map[string]map[string]any{
			"good":       {"email": "pusher@p.iam.gserviceaccount.com", "email_verified": true},
			"stranger":   {"email": "other@p.iam.gserviceaccount.com", "email_verified": true},
			"unverified": {"email": "pusher@p.iam.gserviceaccount.com", "email_verified": false},
		}
		c, ok := claims[tok]
		if !ok || aud != "https://pinroll.example" {
			return nil, errors.New("bad token")
		}
		return &idtoken.Payload{Claims: c}, nil
	}
	oidc := &Auth{Audience: "https://pinroll.example", Invokers: []string{"pusher@p.iam.gserviceaccount.com"}, Validate: validate}
	both := &Auth{OpsToken: "ops-secret", Audience: oidc.Audience, Invokers: oidc.Invokers, Validate: validate}
	cases := []struct {
		name   string
		auth   *Auth
		header string
		want   int
	}{
		{"open (local mode)", &Auth{}, "", 200},
		{"ops token", &Auth{OpsToken: "ops-secret"}, "Bearer ops-secret", 200},
		{"wrong ops token", &Auth{OpsToken: "ops-secret"}, "Bearer ops-secreT", 401},
		{"missing header", &Auth{OpsToken: "ops-secret"}, "", 401},
		{"not bearer", &Auth{OpsToken: "ops-secret"}, "Basic b3BzLXNlY3JldA==", 401},
		{"bearer in lower case (RFC 7235)", &Auth{OpsToken: "ops-secret"}, "bearer ops-secret", 200},
		{"BEARER in upper case", &Auth{OpsToken: "ops-secret"}, "BEARER ops-secret", 200},
		{"scheme alone", &Auth{OpsToken: "ops-secret"}, "Bearer ", 401},
		{"token without scheme", &Auth{OpsToken: "ops-secret"}, "ops-secret", 401},
		{"bearer-like scheme", &Auth{OpsToken: "ops-secret"}, "Bearerx ops-secret", 401},
		{"invoker ID token", oidc, "Bearer good", 200},
		{"ID token of someone else", oidc, "Bearer stranger", 401},
		{"unverified email", oidc, "Bearer unverified", 401},
		{"invalid ID token", oidc, "Bearer garbage", 401},
		{"ops token with OIDC configured too", both, "Bearer ops-secret", 200},
		{"ID token with ops token configured too", both, "Bearer good", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := c.auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			req := httptest.NewRequest(http.MethodPost, "/gar", nil)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, c.want, rec.Body)
			}
		})
	}
}
