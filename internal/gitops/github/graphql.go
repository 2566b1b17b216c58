package github

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pinroll/pinroll/internal/gitops"
)

// gqlError is one entry of a GraphQL answer's "errors".
type gqlError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Path    []any  `json:"path"`
}

// gqlErrors is a GraphQL answer's errors, with the request id.
type gqlErrors struct {
	errs      []gqlError
	requestID string
}

func (e *gqlErrors) has(typ string) bool {
	for _, g := range e.errs {
		if g.Type == typ {
			return true
		}
	}
	return false
}

// secondary tells whether an error says a secondary rate limit was hit:
// GitHub answers that with 403 (the limiter waits it out) or, its GraphQL
// documentation says, with 200 and an error message
// (https://docs.github.com/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api#exceeding-the-rate-limit).
func (e *gqlErrors) secondary() bool {
	for _, g := range e.errs {
		if strings.Contains(strings.ToLower(g.Message), "secondary rate limit") {
			return true
		}
	}
	return false
}

func (e *gqlErrors) Error() string {
	var msgs []string
	for i, g := range e.errs {
		if i == 3 {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(e.errs)-3))
			break
		}
		m := g.Message
		if g.Type != "" {
			m = g.Type + ": " + m
		}
		msgs = append(msgs, m)
	}
	s := "GraphQL: " + strings.Join(msgs, "; ")
	if e.requestID != "" {
		s += " (X-GitHub-Request-Id " + e.requestID + ")"
	}
	return s
}

// maxResponse bounds what the backend reads of one answer.
const maxResponse = 32 << 20

// graphql runs one GraphQL operation, decoding "data" into out, and returns
// the answer's X-GitHub-Request-Id. A transport or HTTP failure is an error;
// GraphQL errors in a 200 answer come back as *gqlErrors (out may then hold
// partial data). A primary rate limit, which GitHub answers with 200 and a
// RATE_LIMITED error, and a secondary one answered with 200, are waited out
// like the limiter does for REST. A mutation is paced as a content-creating
// request.
func (r *Repo) graphql(ctx context.Context, query string, vars map[string]any, out any) (string, *gqlErrors, error) {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return "", nil, fmt.Errorf("encode GraphQL request: %w", err)
	}
	if strings.HasPrefix(strings.TrimSpace(query), "mutation") {
		ctx = asMutation(ctx) // paced as a content-creating request
	}
	var reqID string
	var gerrs *gqlErrors
	waits := 0
	err = r.lim.policy(ctx, "GraphQL").Do(ctx, func(int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.graphqlURL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("GraphQL request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "pinroll")
		resp, err := r.http.Do(req)
		if err != nil {
			return transportError(ctx, err)
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		reqID = resp.Header.Get("X-GitHub-Request-Id")
		if err != nil {
			return &apiError{kind: ErrTransient, status: resp.StatusCode, requestID: reqID, msg: "read GraphQL answer: " + err.Error()}
		}
		if resp.StatusCode != http.StatusOK {
			return statusError(resp.StatusCode, reqID, githubMessage(raw), "GraphQL endpoint "+r.graphqlURL)
		}
		var ans struct {
			Data   json.RawMessage `json:"data"`
			Errors []gqlError      `json:"errors"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil {
			return &apiError{status: resp.StatusCode, requestID: reqID, msg: "GraphQL answer is not JSON: " + githubMessage(raw)}
		}
		gerrs = nil
		if len(ans.Errors) > 0 {
			gerrs = &gqlErrors{errs: ans.Errors, requestID: reqID}
			if gerrs.has("RATE_LIMITED") || gerrs.has("RATE_LIMIT") || gerrs.secondary() {
				err := r.lim.rateLimited(waits, graphqlResetWait(resp, r.lim.now()), resp.StatusCode, reqID, gerrs.errs[0].Message)
				waits++
				return err
			}
		}
		if len(ans.Data) > 0 && string(ans.Data) != "null" && out != nil {
			if err := json.Unmarshal(ans.Data, out); err != nil {
				return &apiError{requestID: reqID, msg: "decode GraphQL data: " + err.Error()}
			}
		}
		if gerrs == nil && (len(ans.Data) == 0 || string(ans.Data) == "null") {
			return &apiError{requestID: reqID, msg: "GraphQL answer has neither data nor errors"}
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return reqID, gerrs, nil
}

// graphqlResetWait is the wait a GraphQL rate limit asks for.
func graphqlResetWait(resp *http.Response, now time.Time) time.Duration {
	if d, ok := retryAfterHeader(resp, now); ok {
		return d
	}
	if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
		return max(time.Unix(reset, 0).Sub(now)+resetSkew, 0)
	}
	return secondaryLimitWait
}

// transportError turns an http.Client error into the limiter's error (whose
// message already says what failed), the context's error, or a transient
// error.
func transportError(ctx context.Context, err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &apiError{kind: ErrTransient, msg: "call GitHub: " + err.Error(), cause: err}
}

// statusError describes a non-2xx answer the limiter let through (it handles
// 5xx and rate limits): what is the caller's to fix.
func statusError(status int, reqID, msg, what string) error {
	e := &apiError{status: status, requestID: reqID}
	switch status {
	case http.StatusUnauthorized:
		e.kind = ErrUnauthorized
		e.msg = "authentication failed: " + msg + " (check " + envToken + " or the GitHub App credentials)"
	case http.StatusForbidden:
		e.kind = gitops.ErrInvalid
		e.msg = "forbidden: " + msg + " (the credentials need contents: write on the repository)"
	case http.StatusNotFound:
		e.kind = gitops.ErrInvalid
		e.msg = what + " not found: " + msg + " (it does not exist, or the credentials cannot see it)"
	case http.StatusUnprocessableEntity:
		e.kind = gitops.ErrInvalid
		e.msg = "rejected by GitHub: " + msg
	default:
		e.msg = fmt.Sprintf("unexpected answer: %s", msg)
	}
	return e
}
