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
// secret's key.
func SignatureHeaders(secret, msgID string, unix int64, body []byte) ([][2]string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(key) == 0 {
		return nil, ErrBadSecret
	}
	ts := strconv.FormatInt(unix, 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	sig := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return [][2]string{{"webhook-id", msgID}, {"webhook-timestamp", ts}, {"webhook-signature", sig}}, nil
}

// NewMsgID returns a new notification id for webhook-id: "msg_" and a
// random id.
func NewMsgID() string { return "msg_" + NewID() }
