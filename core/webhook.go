package core

import (
	"crypto/rand"
	"encoding/base64"
)

// Webhook states.
const (
	StateActive   = "active"
	StateInactive = "inactive"
)

// Access types, as access-info reports them.
const (
	AccessPersonal = "personal"
	AccessApp      = "app"
	AccessShared   = "shared"
)

// Run is one delivery attempt: the HTTP status (0 when there was no
// answer) and when the attempt ended, in float Unix seconds, as Pryv
// records it; then hookgate's additions: how long it took, why it
// failed, and the first bytes of a failed answer's body.
type Run struct {
	Status    int     `json:"status"`
	Timestamp float64 `json:"timestamp"`
	// DurationMs is the attempt's duration, to the microsecond.
	DurationMs float64 `json:"durationMs,omitempty"`
	// Error is the failure's class (RunErrors), "" for a success.
	Error string `json:"error,omitempty"`
	// Answer is the start of a failed answer's body, at most
	// MaxRunAnswer bytes.
	Answer string `json:"answer,omitempty"`
}

// The classes of a failed run (Run.Error).
const (
	RunTimeout    = "timeout"    // no answer in time
	RunRefused    = "refused"    // the connection was refused
	RunDNS        = "dns"        // the host name did not resolve
	RunTLS        = "tls"        // the TLS handshake failed (certificate, protocol)
	RunBlocked    = "blocked"    // the address is one hookgate may not reach
	RunHTTP       = "http"       // an answer outside 200-299
	RunBadAnswer  = "bad-answer" // not an HTTP answer
	RunConnection = "connection" // the connection broke (reset, closed)
)

// RunErrors lists the classes in their stored order: a class is stored as
// its index, "" (success) as 0.
var RunErrors = [...]string{"", RunTimeout, RunRefused, RunDNS, RunTLS, RunBlocked, RunHTTP, RunBadAnswer, RunConnection}

// RunErrorIndex returns the index of class in RunErrors; an unknown class
// reads as RunConnection, a connection that broke.
func RunErrorIndex(class string) int {
	for i, c := range RunErrors {
		if c == class {
			return i
		}
	}
	return len(RunErrors) - 1
}

// MaxRunAnswer bounds Run.Answer.
const MaxRunAnswer = 64

// Webhook is the Pryv webhook record (PRYV-WEBHOOKS.md §2), with the
// username it belongs to, which the API never shows.
type Webhook struct {
	ID             string  `json:"id"`
	AccessID       string  `json:"accessId"`
	URL            string  `json:"url"`
	MinIntervalMs  int64   `json:"minIntervalMs"`
	MaxRetries     int     `json:"maxRetries"`
	CurrentRetries int     `json:"currentRetries"`
	State          string  `json:"state"`
	RunCount       int     `json:"runCount"`
	FailCount      int     `json:"failCount"`
	Runs           []Run   `json:"runs"`
	LastRun        Run     `json:"lastRun"`
	Created        float64 `json:"created"`
	CreatedBy      string  `json:"createdBy"`
	Modified       float64 `json:"modified"`
	ModifiedBy     string  `json:"modifiedBy"`
	// Signed is hookgate's addition: notifications carry Standard
	// Webhooks signature headers.
	Signed bool `json:"signed,omitempty"`
	// Scopes, when set (Pryv v2), limit the webhook to matching changes,
	// and its messages to the matched scopes' keys. Shared by copies:
	// never changed, only replaced.
	Scopes *Scopes `json:"scopes,omitempty"`

	User string `json:"-"`
	// Secret signs notifications when Signed; shown once, at creation.
	Secret string `json:"-"`
	// PreviousSecret, after a rotation, signs notifications beside
	// Secret until PreviousUntil (Unix seconds): a receiver has that
	// long to take the new secret.
	PreviousSecret string  `json:"-"`
	PreviousUntil  float64 `json:"-"`
}

// SigningSecrets returns the secrets that sign a notification sent at
// unix seconds: Secret, and the previous one while its grace lasts.
func (w *Webhook) SigningSecrets(unix float64) (secret string, also []string) {
	if w.PreviousSecret != "" && unix < w.PreviousUntil {
		return w.Secret, []string{w.PreviousSecret}
	}
	return w.Secret, nil
}

// Clone returns a deep copy of w.
func (w *Webhook) Clone() *Webhook {
	c := *w
	c.Runs = append([]Run(nil), w.Runs...)
	if c.Runs == nil {
		c.Runs = []Run{}
	}
	return &c
}

// CountRun counts a run as Pryv does: lastRun = r,
// runCount and, for a status outside 200-299, failCount incremented.
func (w *Webhook) CountRun(r Run) {
	w.RunCount++
	if r.Status < 200 || r.Status > 299 {
		w.FailCount++
	}
	w.LastRun = r
}

// Op is a webhooks API method, for the permission table.
type Op int

const (
	OpCreate Op = iota
	OpList
	OpGetOne
	OpUpdate
	OpDelete
	OpTest
)

// Permission says whether an access may do op on a webhook owned by
// ownerAccessID ("" for create and list). PRYV-WEBHOOKS.md §4, with
// SPEC §2's choice for lists: personal accesses cannot create but manage
// every webhook of the user; app and shared accesses create, and see and
// manage only their own.
func Permission(op Op, accessType, accessID, ownerAccessID string) Decision {
	personal := accessType == AccessPersonal
	switch op {
	case OpCreate:
		if personal || (accessType != AccessApp && accessType != AccessShared) {
			return Denied
		}
		return Allowed
	case OpList:
		if personal {
			return AllOfUser
		}
		return OwnOnly
	default:
		if personal || accessID == ownerAccessID {
			return Allowed
		}
		return Denied
	}
}

// Decision is the outcome of Permission.
type Decision int

const (
	Denied Decision = iota
	Allowed
	// AllOfUser: the list holds every webhook of the user.
	AllOfUser
	// OwnOnly: the list holds only the access's own webhooks.
	OwnOnly
)

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewID returns a cuid2-shaped id: 24 lowercase alphanumerics, the first a
// letter, from crypto/rand.
func NewID() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	b[0] = idAlphabet[int(b[0])%26]
	for i := 1; i < len(b); i++ {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b[:])
}

// NewSigningSecret returns a Standard Webhooks secret: "whsec_" and 32
// random bytes in base64.
func NewSigningSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b[:])
}
