package webhooks

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/hookgate/hookgate/core"
)

func TestSealedSecrets(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "secrets.key")
	secretsKey, err := LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	again, err := LoadOrCreateKey(keyFile)
	if err != nil || !bytes.Equal(again, secretsKey) {
		t.Fatalf("reading the key file back: %v", err)
	}
	sealer, err := NewSealer(secretsKey)
	if err != nil {
		t.Fatal(err)
	}
	open := func(s *Sealer) (*badger.DB, *Store, error) {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		st, err := OpenSealedStore(db, s)
		return db, st, err
	}

	// A webhook stored before sealing was enabled.
	db, st, err := open(nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: "https://x.example/1", State: core.StateActive,
		Signed: true, Secret: core.NewSigningSecret(), Runs: []core.Run{}}
	if err := st.Create(legacy, 0); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, st, err = open(sealer)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Get("alice", legacy.ID); got.Secret != legacy.Secret {
		t.Fatal("a secret stored before sealing did not load")
	}
	sealed := &core.Webhook{ID: core.NewID(), User: "alice", AccessID: "a", URL: "https://x.example/2", State: core.StateActive,
		Signed: true, Secret: core.NewSigningSecret(), Runs: []core.Run{}}
	if err := st.Create(sealed, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update("alice", legacy.ID, func(w *core.Webhook) error { return nil }); err != nil { // sealed on write
		t.Fatal(err)
	}
	// The raw database holds neither secret in plain text.
	err = db.View(func(txn *badger.Txn) error {
		for _, w := range []*core.Webhook{legacy, sealed} {
			item, err := txn.Get(key(w.ID))
			if err != nil {
				return err
			}
			v, _ := item.ValueCopy(nil)
			if bytes.Contains(v, []byte(w.Secret)) || bytes.Contains(v, []byte(w.Secret[len("whsec_"):])) {
				t.Errorf("webhook %s: the signing secret is in the database in plain text: %s", w.ID, v)
			}
			if !bytes.Contains(v, []byte(sealedPrefix)) {
				t.Errorf("webhook %s: no sealed secret in %s", w.ID, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	// The right key opens them; no key or another key refuses to start.
	db, st, err = open(sealer)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*core.Webhook{legacy, sealed} {
		if got, _ := st.Get("alice", w.ID); got.Secret != w.Secret {
			t.Fatalf("webhook %s: secret did not survive sealing", w.ID)
		}
	}
	db.Close()
	other, _ := NewSealer(bytes.Repeat([]byte{7}, 32))
	for name, s := range map[string]*Sealer{"no key": nil, "another key": other} {
		db, _, err := open(s)
		db.Close()
		if !errors.Is(err, ErrSecretKey) {
			t.Errorf("%s: %v; want ErrSecretKey", name, err)
		}
	}
	// A sealed secret moved to another webhook's record does not open.
	s1 := sealer.Seal("id1", "whsec_abc")
	if _, err := sealer.Open("id2", s1); !errors.Is(err, ErrSecretKey) {
		t.Errorf("a secret sealed for id1 opened for id2: %v", err)
	}
	if got, err := sealer.Open("id1", s1); err != nil || got != "whsec_abc" {
		t.Errorf("open: %q %v", got, err)
	}
	if _, err := NewSealer([]byte("short")); err == nil {
		t.Error("a 5-byte key was taken")
	}
	if err := os.WriteFile(keyFile, []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(keyFile); err == nil {
		t.Error("a malformed key file was taken")
	}
}
