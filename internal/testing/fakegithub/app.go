package fakegithub

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// InstallationTokenTTL is how long an installation token handed out by the
// fake stays valid (an hour, as on GitHub).
const InstallationTokenTTL = time.Hour

// accessToken serves POST /app/installations/{id}/access_tokens: it checks
// the App's JWT (RS256, signed by the registered key, issuer = App ID, at
// most 10 minutes long) and hands out an installation token.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		notFound(w)
		return
	}
	s.mu.Lock()
	a := s.apps[id]
	s.mu.Unlock()
	scheme, jwt, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") || jwt == "" {
		writeJSON(w, http.StatusUnauthorized, restError{Message: "A JSON web token could not be decoded", DocumentationURL: "https://docs.github.com/rest"})
		return
	}
	if a == nil {
		notFound(w)
		return
	}
	if err := verifyAppJWT(jwt, a.appID, a.key, time.Now()); err != nil {
		writeJSON(w, http.StatusUnauthorized, restError{Message: "A JSON web token could not be decoded: " + err.Error(), DocumentationURL: "https://docs.github.com/rest"})
		return
	}
	tok := "ghs_fake" + randHex(16)
	exp := time.Now().Add(InstallationTokenTTL).UTC().Truncate(time.Second)
	s.mu.Lock()
	s.issued[tok] = installToken{installationID: id, expires: exp}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":                tok,
		"expires_at":           exp.Format(time.RFC3339),
		"permissions":          map[string]string{"contents": "write", "metadata": "read"},
		"repository_selection": "selected",
	})
}

// verifyAppJWT checks a GitHub App JWT as GitHub does.
func verifyAppJWT(token string, appID int64, key *rsa.PublicKey, now time.Time) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if header.Alg != "RS256" {
		return fmt.Errorf("alg %q, want RS256", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("signature does not match the App's public key")
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat int64           `json:"iat"`
		Exp int64           `json:"exp"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	iss := strings.Trim(string(claims.Iss), `"`)
	if iss != strconv.FormatInt(appID, 10) {
		return fmt.Errorf("iss %s is not the App ID", iss)
	}
	iat, exp := time.Unix(claims.Iat, 0), time.Unix(claims.Exp, 0)
	switch {
	case claims.Iat == 0 || claims.Exp == 0:
		return errors.New("iat and exp are required")
	case iat.After(now.Add(time.Minute)):
		return errors.New("'Issued at' claim (iat) must be an Integer representing a time in the past")
	case !exp.After(now):
		return errors.New("'Expiration time' claim ('exp') is too far in the past")
	case exp.Sub(iat) > 10*time.Minute:
		return errors.New("'Expiration time' claim ('exp') is too far in the future")
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
