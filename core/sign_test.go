package core

import (
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestSignatureVerifiedByStandardWebhooks: the official Standard Webhooks
// Go verifier accepts hookgate's headers, and refuses them when the body,
// the secret or the timestamp is wrong.
func TestSignatureVerifiedByStandardWebhooks(t *testing.T) {
	secret := NewSigningSecret()
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q", secret)
	}
	body := []byte(`{"messages":["eventsChanged"],"meta":{"apiVersion":"1.9.3","serverTime":1700000000.5,"serial":"s"}}`)
	now := time.Now()
	hs, err := SignatureHeaders(secret, "msg_abc", now.Unix(), body)
	if err != nil {
		t.Fatal(err)
	}
	h := header(hs)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("official verifier refused hookgate's signature: %v", err)
	}
	if err := wh.Verify(append([]byte(nil), append(body, ' ')...), h); err == nil {
		t.Fatal("verifier accepted a changed body")
	}
	other, _ := standardwebhooks.NewWebhook(NewSigningSecret())
	if err := other.Verify(body, h); err == nil {
		t.Fatal("verifier accepted another secret")
	}
	old, _ := SignatureHeaders(secret, "msg_abc", now.Add(-time.Hour).Unix(), body)
	if err := wh.Verify(body, header(old)); err == nil {
		t.Fatal("verifier accepted an hour-old timestamp")
	}
	if _, err := SignatureHeaders("whsec_%%%", "m", 1, body); err != ErrBadSecret {
		t.Fatalf("bad secret: %v", err)
	}
}

// TestRotationSignaturesVerified: during a rotation's grace, a
// notification carries a signature under each secret, and the official
// verifier accepts it with either; after the grace, only the new secret
// signs it.
func TestRotationSignaturesVerified(t *testing.T) {
	body := []byte(`{"messages":["eventsChanged"]}`)
	w := &Webhook{Secret: NewSigningSecret(), PreviousSecret: NewSigningSecret(), PreviousUntil: 1000}
	verify := func(secret string, hs [][2]string) error {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		return wh.Verify(body, header(hs))
	}
	now := time.Now().Unix()
	secret, also := w.SigningSecrets(999.5)
	during, err := SignatureHeaders(secret, "msg_1", now, body, also...)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(during[2][1], "v1,"); n != 2 {
		t.Fatalf("webhook-signature %q during the grace: want two signatures", during[2][1])
	}
	if verify(w.Secret, during) != nil || verify(w.PreviousSecret, during) != nil {
		t.Fatal("during the grace, the verifier refused the new or the previous secret")
	}
	secret, also = w.SigningSecrets(1000)
	after, err := SignatureHeaders(secret, "msg_2", now, body, also...)
	if err != nil {
		t.Fatal(err)
	}
	if verify(w.Secret, after) != nil || verify(w.PreviousSecret, after) == nil {
		t.Fatal("after the grace: want the new secret accepted and the previous one refused")
	}
}

// header turns SignatureHeaders' pairs into an http.Header.
func header(hs [][2]string) http.Header {
	h := http.Header{}
	for _, kv := range hs {
		h.Set(kv[0], kv[1])
	}
	return h
}
