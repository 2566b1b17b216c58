package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TestPubSubPushRedeliversUntilPinned points a push subscription of the
// Pub/Sub emulator at `pinroll serve`, through a proxy that fails the first
// delivery with 503 as a transient failure would. The emulator POSTs its own
// push envelope, sees the 503, redelivers, and the pin lands.
func TestPubSubPushRedeliversUntilPinned(t *testing.T) {
	t.Parallel()
	ps := newPubSubProject(t)
	w := newWorld(t, backends[0])

	target, err := url.Parse(w.base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &flakyProxy{next: httputil.NewSingleHostReverseProxy(target), fail: 1}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)

	topic := ps.createTopic(t, "gcr")
	ps.createSubscription(t, "pinroll-push", topic, front.URL+"/gar")
	d := digest(1)
	id := ps.publish(t, topic, garData(t, serverRepo, d, "latest"))

	// Wait for the proxy to record the successful delivery, which it does
	// only after serve answered, so after the pin landed.
	var got []delivery
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got = proxy.deliveries()
		if n := len(got); n > 0 && got[n-1].status/100 == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful push delivery within 60s: %+v", got)
		}
	}
	if p := w.pinned(t, "server"); p != d {
		t.Fatalf("dev pins %q, want %q", p, d)
	}
	if len(got) < 2 {
		t.Fatalf("proxy saw %d deliveries, want the failed one and a redelivery", len(got))
	}
	for i, g := range got {
		if g.id != id || g.subscription != ps.subscription("pinroll-push") {
			t.Errorf("delivery %d: message %q of %q, want %q of %q", i, g.id, g.subscription, id, ps.subscription("pinroll-push"))
		}
	}
	if got[0].status != http.StatusServiceUnavailable {
		t.Errorf("first delivery answered %d, want 503", got[0].status)
	}
	if last := got[len(got)-1]; last.status != http.StatusOK || last.outcome != "pinned" {
		t.Errorf("last delivery answered %d %q, want 200 pinned", last.status, last.outcome)
	}
	if log := w.host.log(t); botRun(log) != 1 {
		t.Errorf("want one bot commit, got %d", botRun(log))
	}
}

// flakyProxy answers 503 to the first fail requests and forwards the others
// to next, recording every delivery.
type flakyProxy struct {
	next http.Handler
	fail int

	mu  sync.Mutex
	got []delivery
}

// delivery is one push request as the proxy saw it.
type delivery struct {
	id, subscription string
	status           int
	outcome          string
}

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var env struct {
		Message struct {
			MessageID string `json:"messageId"`
		} `json:"message"`
		Subscription string `json:"subscription"`
	}
	_ = json.Unmarshal(body, &env)
	d := delivery{id: env.Message.MessageID, subscription: env.Subscription}

	p.mu.Lock()
	failing := p.fail > 0
	p.fail--
	p.mu.Unlock()
	if failing {
		d.status = http.StatusServiceUnavailable
		http.Error(w, `{"error":"transient failure: injected"}`, d.status)
	} else {
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		p.next.ServeHTTP(rec, r)
		d.status = rec.Code
		var res struct {
			Outcome string `json:"outcome"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &res)
		d.outcome = res.Outcome
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
	p.mu.Lock()
	p.got = append(p.got, d)
	p.mu.Unlock()
}

func (p *flakyProxy) deliveries() []delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]delivery(nil), p.got...)
}
