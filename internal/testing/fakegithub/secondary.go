package fakegithub

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// Window is one of GitHub's secondary limits on content-generating
// requests: at most Limit of them in any Per.
type Window struct {
	Limit int
	Per   time.Duration
}

// ContentLimits are GitHub's documented limits on content-generating
// requests, on by default in every fake: "no more than 80 content-generating
// requests per minute and no more than 500 content-generating requests per
// hour"
// (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits).
// They count REST POST, PATCH, PUT and DELETE requests (git trees, commits,
// blobs, refs) and GraphQL mutations, from one account, whatever the
// repository.
//
// The fake enforces each as a sliding window: a request is refused when
// Limit requests were accepted in the Per before it. GitHub does not say how
// its windows slide; a sliding window is the strictest reading (any fixed
// window of the same length holds no more), so a client that never trips
// the fake never trips GitHub's numbers either.
var ContentLimits = []Window{{Limit: 80, Per: time.Minute}, {Limit: 500, Per: time.Hour}}

// secondaryMessage is what GitHub answers a content-generating request over
// the limit (REST and GraphQL alike: HTTP 403, not a GraphQL error).
const secondaryMessage = "You have exceeded a secondary rate limit and have been temporarily blocked from content creation. Please retry your request again later. If you reach out to GitHub Support for help, please include the request ID %s."

// secondaryDoc is the documentation_url GitHub sends with it.
const secondaryDoc = "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"

// secondary is the fake's state of the content-creation limits; guarded by
// Server.mu.
type secondary struct {
	windows  []Window
	accepted []time.Time // content-generating requests accepted within the longest window, oldest first
	writes   int         // content-generating requests accepted
	refused  int         // requests answered as rate limited, for any reason
}

// SetContentLimits replaces the limits on content-generating requests (see
// [ContentLimits]) with windows, e.g. {8, 6 * time.Second} for a test that
// must trip or respect a limit in seconds; none turns them off (benchmarks
// whose writes grow with b.N). The requests already accepted still count.
func (s *Server) SetContentLimits(windows ...Window) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.second.windows = append([]Window(nil), windows...)
}

// RateLimited returns how many requests the fake answered as rate limited:
// over a content-creation limit, past an exhausted primary limit, or by an
// injected rate-limit [Fault].
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.second.refused
}

// ContentWrites returns how many content-generating requests the fake
// accepted (refused ones aside).
func (s *Server) ContentWrites() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.second.writes
}

// contentGenerating tells whether a request counts against the content
// limits: a GraphQL mutation, or a REST write to a route the fake serves
// (token exchanges aside, which GitHub limits separately).
func contentGenerating(key, method string) bool {
	switch key {
	case EndpointGraphQLMutation:
		return true
	case EndpointGraphQLQuery, EndpointAccessToken, EndpointUnknown:
		return false
	}
	switch method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// admitContent records a content-generating request at now, or, when a
// window is full, refuses it and returns how long until it would fit; s.mu
// must be held.
func (s *Server) admitContent(now time.Time) (time.Duration, bool) {
	sc := &s.second
	var wait time.Duration
	longest := time.Duration(0)
	for _, w := range sc.windows {
		longest = max(longest, w.Per)
		if w.Limit <= 0 {
			continue
		}
		// The accepted requests within (now-Per, now].
		from := sort.Search(len(sc.accepted), func(i int) bool { return sc.accepted[i].After(now.Add(-w.Per)) })
		if n := len(sc.accepted) - from; n >= w.Limit {
			// The window has room once the Limit-th newest has left it.
			wait = max(wait, sc.accepted[len(sc.accepted)-w.Limit].Add(w.Per).Sub(now))
		}
	}
	if wait > 0 {
		sc.refused++
		return wait, false
	}
	sc.writes++
	sc.accepted = append(sc.accepted, now)
	// Forget what no window can see any more (the whole log when off).
	drop := sort.Search(len(sc.accepted), func(i int) bool { return sc.accepted[i].After(now.Add(-longest)) })
	sc.accepted = append(sc.accepted[:0], sc.accepted[drop:]...)
	return 0, true
}

// writeSecondaryLimit answers a content-generating request over the limit as
// GitHub does: 403, Retry-After in whole seconds, the primary X-RateLimit-*
// headers (not spent), and GitHub's message with the request id.
func (s *Server) writeSecondaryLimit(w http.ResponseWriter, key string, wait time.Duration) {
	h := w.Header()
	s.mu.Lock()
	r := s.rate
	s.mu.Unlock()
	h.Set("X-RateLimit-Limit", strconv.Itoa(r.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(r.remaining))
	h.Set("X-RateLimit-Used", strconv.Itoa(r.limit-r.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(r.reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", resource(key))
	h.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	writeJSON(w, http.StatusForbidden, restError{
		Message:          fmt.Sprintf(secondaryMessage, h.Get("X-GitHub-Request-Id")),
		DocumentationURL: secondaryDoc,
	})
}
