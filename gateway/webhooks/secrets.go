package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// sealedPrefix marks a signing secret stored encrypted.
const sealedPrefix = "gcm1:"

// Sealer encrypts signing secrets at rest with AES-256-GCM under a key
// kept outside the database, so that a copy of the database alone does
// not give them away. Signing needs the secret itself, so it cannot be
// hashed. Each sealed secret is bound to its webhook's id: moved to
// another record, it does not open. Safe for concurrent use.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secrets key: %d bytes; want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal returns secret encrypted for the webhook id.
func (s *Sealer) Seal(id, secret string) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(secret)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("webhooks: no randomness for a nonce: " + err.Error())
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(secret), []byte(id)))
}

// ErrSecretKey is returned when a stored secret does not open: the key
// is missing or not the one it was sealed with.
var ErrSecretKey = errors.New("a signing secret cannot be decrypted: the secrets key is missing or wrong")

// Open returns the secret stored for the webhook id: a sealed one
// decrypted, or one stored before sealing was enabled as it is. s may be
// nil, for a store without a key.
func (s *Sealer) Open(id, stored string) (string, error) {
	enc, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, nil
	}
	if s == nil {
		return "", ErrSecretKey
	}
	b, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", fmt.Errorf("%w (unreadable record)", ErrSecretKey)
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(id))
	if err != nil {
		return "", ErrSecretKey
	}
	return string(plain), nil
}

// LoadOrCreateKey reads a secrets key file (64 hex digits), or creates
// one with a random key, readable by its owner only, when there is none.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("cannot create secrets key file: %w", err)
		}
		_, err = f.WriteString(hex.EncodeToString(key) + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("cannot write secrets key file: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read secrets key file: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("secrets key file %s: want 64 hex digits", path)
	}
	return key, nil
}

// KeyID names a secrets key without giving it away: the first 8 bytes of
// an SHA-256 of a label and the key, in hex. Instances that share
// webhooks compare it to be sure they share the key.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("hookgate secrets key id\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
