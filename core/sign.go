package core

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// SecretPrefix starts every signing secret, as Standard Webhooks does.
const SecretPrefix = "whsec_"

// ErrBadSecret is returned by SignatureHeaders for a secret that is not
// whsec_ followed by base64.
var ErrBadSecret = errors.New("malformed signing secret")

// SignatureHeaders returns the Standard Webhooks headers for body:
// webhook-id, webhook-timestamp (Unix seconds) and webhook-signature,
// "v1," and the base64 HMAC-SHA256 of "id.timestamp.body" under the
// secret's key; with also, one more signature per secret, separated by
// spaces, as during a secret's rotation (a receiver accepts any of
// them).
func SignatureHeaders(secret, msgID string, unix int64, body []byte, also ...string) ([][2]string, error) {
	ts := strconv.FormatInt(unix, 10)
	var sig []byte
	for i, s := range append([]string{secret}, also...) {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
		if err != nil || len(key) == 0 {
			return nil, ErrBadSecret
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(msgID))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			sig = append(sig, ' ')
		}
		sig = append(sig, "v1,"...)
		sig = base64.StdEncoding.AppendEncode(sig, mac.Sum(nil))
	}
	return [][2]string{{"webhook-id", msgID}, {"webhook-timestamp", ts}, {"webhook-signature", string(sig)}}, nil
}

// NewMsgID returns a new notification id for webhook-id: "msg_" and a
// random id.
func NewMsgID() string { return "msg_" + NewID() }
