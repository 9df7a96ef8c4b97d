package receiver

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func TestReceiver(t *testing.T) {
	s := New(Options{Status: 503, Delay: 100 * time.Millisecond})
	addr, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	start := time.Now()
	resp, err := http.Post("http://"+addr+"/hook?x=1", "application/json", strings.NewReader(`{"messages":["test"]}`))
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
	resp, err = http.Get("http://" + addr + "/_stats")
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
		resp, err := http.DefaultClient.Do(req)
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

func TestReceiverReport(t *testing.T) {
	s := New(Options{CountOnly: true})
	addr, stop, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	post := func(uri, body string) int {
		resp, err := http.Post("http://"+addr+uri, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	answered := time.Now().Add(-20 * time.Millisecond).UnixMicro()
	if st := post("/_answered?u=a&u=b&u=c&t="+strconv.FormatInt(answered, 10), ""); st != 200 {
		t.Fatalf("_answered: %d", st)
	}
	if st := post("/_answered?u=a&t=nope", ""); st != 400 {
		t.Fatalf("_answered with a bad time: %d", st)
	}
	post("/h?u=a", `{"messages":["test"]}`) // not a change: latency counts from the first change
	time.Sleep(5 * time.Millisecond)
	post("/h?u=a", `{"messages":["eventsChanged"]}`)
	time.Sleep(5 * time.Millisecond)
	post("/h?u=a", `{"messages":["streamsChanged"]}`)
	post("/h?u=b", `{"messages":["eventsChanged"]}`)
	if st := post("/h?u=d&_status=500", `{"messages":["eventsChanged"]}`); st != 500 {
		t.Fatalf("_status=500 answered %d", st)
	}
	start := time.Now()
	if st := post("/h?u=d&_delayMs=50", `{"messages":["eventsChanged"]}`); st != 200 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("_delayMs=50: %d after %s", st, time.Since(start))
	}
	resp, err := http.Get("http://" + addr + "/_report")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	// a, b and c were marked; c got nothing; d was never marked.
	if r.Keys != 3 || r.Answered != 3 || r.Notified != 2 || r.Missing != 1 || len(r.LatencyMs) != 2 || len(r.LateMs) != 2 {
		t.Fatalf("report %s", b)
	}
	if r.MinCount != 1 || r.MaxCount != 3 || r.MinGapMs <= 0 || r.MinGapMs > r.SpanMs || r.SpanMs < 10 {
		t.Fatalf("per-key figures %s", b)
	}
	// Latency counts from the answer (20 ms ago) to the first change: a's
	// eventsChanged came 5 ms after its test message.
	if r.LatencyMs[0] < 20 || r.LatencyMs[1] > 1000 || r.LateMs[1] < r.LatencyMs[1] {
		t.Fatalf("latencies %v, late %v", r.LatencyMs, r.LateMs)
	}
}
