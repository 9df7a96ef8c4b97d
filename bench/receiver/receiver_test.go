package receiver

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/valyala/fasthttp"
)

// testClient talks to the receivers under test; its timeout only turns a
// hang into a failure.
var testClient = &http.Client{Timeout: 30 * time.Second}

// TestReceiver: a notification is answered with the configured status
// after at least the configured delay (a lower bound), and recorded.
func TestReceiver(t *testing.T) {
	s := New(Options{Status: 503, Delay: 100 * time.Millisecond})
	addr, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	start := time.Now()
	resp, err := testClient.Post("http://"+addr+"/hook?x=1", "application/json", strings.NewReader(`{"messages":["test"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || time.Since(start) < 100*time.Millisecond {
		t.Fatalf("status %d after %s; want 503 after 100ms", resp.StatusCode, time.Since(start))
	}
	got := s.Notifications()
	if s.Count() != 1 || len(got) != 1 || got[0].Path != "/hook?x=1" || string(got[0].Body) != `{"messages":["test"]}` {
		t.Fatalf("count %d, got %+v", s.Count(), got)
	}
	resp, err = testClient.Get("http://" + addr + "/_stats")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st struct {
		Count           int64
		Messages        map[string]int64
		FirstMs, LastMs int64
	}
	if err := json.Unmarshal(b, &st); err != nil || st.Count != 1 || st.Messages["test"] != 1 || st.FirstMs == 0 || st.LastMs < st.FirstMs {
		t.Fatalf("stats %s", b)
	}
}

func TestReceiverVerifiesSignatures(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	s := New(Options{Secret: secret})
	addr, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	body := `{"messages":["eventsChanged"]}`
	wh, _ := standardwebhooks.NewWebhook(secret)
	now := time.Now()
	sig, _ := wh.Sign("msg_1", now, []byte(body))
	send := func(sig string) int {
		req, _ := http.NewRequest("POST", "http://"+addr+"/h", strings.NewReader(body))
		req.Header.Set("webhook-id", "msg_1")
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := send(sig); st != 200 {
		t.Fatalf("good signature: %d", st)
	}
	if st := send("v1,AAAA"); st != 401 {
		t.Fatalf("bad signature: %d", st)
	}
	got := s.Notifications()
	if !got[0].Verified || got[1].Verified || got[1].VerifyError == "" {
		t.Fatalf("verification flags %+v", got)
	}
}

// handle serves one request with s.Handle directly, without a socket, so
// that it can run in a synctest bubble on the fake clock. It returns the
// status and body answered.
func handle(s *Server, method, uri, body string) (int, []byte) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(body)
	s.Handle(&ctx)
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
}

// TestReceiverReport checks the per-key figures of /_report on synctest's
// fake clock: the arrival times are exact, so are the latencies, gaps and
// spans.
func TestReceiverReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{CountOnly: true})
		answered := time.Now().Add(-20 * time.Millisecond).UnixMicro()
		if st, _ := handle(s, "POST", "/_answered?u=a&u=b&u=c&t="+strconv.FormatInt(answered, 10), ""); st != 200 {
			t.Fatalf("_answered: %d", st)
		}
		if st, _ := handle(s, "POST", "/_answered?u=a&t=nope", ""); st != 400 {
			t.Fatalf("_answered with a bad time: %d", st)
		}
		handle(s, "POST", "/h?u=a", `{"messages":["test"]}`) // not a change: latency counts from the first change
		time.Sleep(5 * time.Millisecond)
		handle(s, "POST", "/h?u=a", `{"messages":["eventsChanged"]}`)
		time.Sleep(5 * time.Millisecond)
		handle(s, "POST", "/h?u=a", `{"messages":["streamsChanged"]}`)
		handle(s, "POST", "/h?u=b", `{"messages":["eventsChanged"]}`)
		if st, _ := handle(s, "POST", "/h?u=d&_status=500", `{"messages":["eventsChanged"]}`); st != 500 {
			t.Fatalf("_status=500 answered %d", st)
		}
		start := time.Now()
		if st, _ := handle(s, "POST", "/h?u=d&_delayMs=50", `{"messages":["eventsChanged"]}`); st != 200 || time.Since(start) != 50*time.Millisecond {
			t.Fatalf("_delayMs=50: %d after %s", st, time.Since(start))
		}
		st, b := handle(s, "GET", "/_report", "")
		if st != 200 {
			t.Fatalf("_report: %d %s", st, b)
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		// a, b and c were marked; c got nothing; d was never marked.
		if r.Keys != 3 || r.Answered != 3 || r.Notified != 2 || r.Missing != 1 || len(r.LatencyMs) != 2 || len(r.LateMs) != 2 {
			t.Fatalf("report %s", b)
		}
		// a got 3 notifications 5 ms apart; d two at the same instant (the
		// shortest gap counts as 1 µs); b one.
		if r.MinCount != 1 || r.MaxCount != 3 || r.MinGapMs != 0.001 || r.SpanMs != 10 {
			t.Fatalf("per-key figures %s", b)
		}
		// Latency counts from the answer (20 ms before the first
		// notification) to the first change: a's eventsChanged came 5 ms
		// after its test message, b's 10 ms; both keys' latest
		// notification came 30 ms after the answer.
		if !slices.Equal(r.LatencyMs, []float64{25, 30}) || !slices.Equal(r.LateMs, []float64{30, 30}) {
			t.Fatalf("latencies %v, late %v", r.LatencyMs, r.LateMs)
		}
	})
}

// TestReceiverReportRoutes checks /_answered and /_report over HTTP.
func TestReceiverReportRoutes(t *testing.T) {
	s := New(Options{CountOnly: true})
	addr, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	post := func(uri, body string) int {
		resp, err := testClient.Post("http://"+addr+uri, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	answered := time.Now().UnixMicro()
	if st := post("/_answered?u=a&u=b&t="+strconv.FormatInt(answered, 10), ""); st != 200 {
		t.Fatalf("_answered: %d", st)
	}
	if st := post("/_answered?u=a&t=nope", ""); st != 400 {
		t.Fatalf("_answered with a bad time: %d", st)
	}
	if st := post("/h?u=a", `{"messages":["eventsChanged"]}`); st != 200 {
		t.Fatalf("notification: %d", st)
	}
	resp, err := testClient.Get("http://" + addr + "/_report")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if resp.Header.Get("Content-Type") != "application/json" || r.Keys != 1 || r.Answered != 2 || r.Notified != 1 || r.Missing != 1 ||
		len(r.LatencyMs) != 1 {
		t.Fatalf("report %s", b)
	}
}

// TestReceiverTotalOnly checks that a total-only receiver counts every
// notification, answers its Status (and Retry-After when asked), and
// keeps no per-key figure and no message count.
func TestReceiverTotalOnly(t *testing.T) {
	s := New(Options{TotalOnly: true, Status: 202})
	for _, uri := range []string{"/h?u=a", "/h?u=b&_status=500", "/h?u=a&_retryAfter=3"} {
		if st, _ := handle(s, "POST", uri, `{"messages":["eventsChanged"]}`); st != 202 {
			t.Fatalf("%s answered %d; want 202", uri, st)
		}
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/h?_retryAfter=3")
	s.Handle(&ctx)
	if got := string(ctx.Response.Header.Peek("Retry-After")); got != "3" {
		t.Fatalf("Retry-After %q; want 3", got)
	}
	if s.Count() != 4 {
		t.Fatalf("count %d; want 4", s.Count())
	}
	if r := s.Report(); r.Keys != 0 || len(s.Notifications()) != 0 {
		t.Fatalf("a total-only receiver kept figures: %+v", r)
	}
}
