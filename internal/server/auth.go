package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/api/idtoken"
)

// Auth guards the IAM-protected routes (/gar and the ops routes, SPEC §4.3):
// a request must carry `Authorization: Bearer` with either the static ops token
// or a Google ID token for Audience whose email is one of Invokers. With
// neither configured the routes are open, which is meant for local mode only
// (Cloud Run's own IAM check still applies in the cloud).
type Auth struct {
	OpsToken string
	Audience string
	Invokers []string
	// Validate checks a Google ID token (default idtoken.Validate).
	Validate func(ctx context.Context, token, audience string) (*idtoken.Payload, error)
}

// Open reports whether no credential is configured, so anyone may call.
func (a *Auth) Open() bool { return a.OpsToken == "" && a.Audience == "" }

// Require wraps h so that only authorised callers reach it.
func (a *Auth) Require(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.check(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pinroll"`)
			writeError(w, http.StatusUnauthorized, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a *Auth) check(r *http.Request) error {
	if a.Open() {
		return nil
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return errors.New("missing Authorization: Bearer token")
	}
	if a.OpsToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.OpsToken)) == 1 {
		return nil
	}
	if a.Audience == "" {
		return errors.New("invalid token")
	}
	validate := a.Validate
	if validate == nil {
		validate = idtoken.Validate
	}
	p, err := validate(r.Context(), tok, a.Audience)
	if err != nil {
		return errors.New("invalid token") // never echo the token or its parse error details
	}
	email, _ := p.Claims["email"].(string)
	verified, _ := p.Claims["email_verified"].(bool)
	if !verified || !slices.Contains(a.Invokers, email) {
		return errors.New("caller " + email + " is not an allowed invoker")
	}
	return nil
}

// bearer returns the token of an Authorization header using the Bearer
// scheme, whose name is case-insensitive (RFC 7235 §2.1, RFC 6750 §2.1).
func bearer(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}
