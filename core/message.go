package core

import (
	"errors"
	"fmt"
	"math/bits"
)

// The message names of the Pryv notification vocabulary.
const (
	MsgEventsChanged   = "eventsChanged"
	MsgStreamsChanged  = "streamsChanged"
	MsgAccessesChanged = "accessesChanged"
	// MsgAccountChanged is hookgate's name for account and password changes,
	// for which Pryv documents no message. It is off by default.
	MsgAccountChanged = "accountChanged"
	MsgTest           = "test"
	MsgServiceBoot    = "webhooksServiceBoot"
)

// MaxMessages is the number of distinct message names a Vocabulary holds.
const MaxMessages = 64

// ErrVocabularyFull is returned by Vocabulary.Add when MaxMessages names are
// already registered.
var ErrVocabularyFull = errors.New("core: message vocabulary full")

// MessageSet is a set of messages of one Vocabulary, one bit per message.
// The zero value is the empty set.
type MessageSet uint64

// Has reports whether s holds every message of o.
func (s MessageSet) Has(o MessageSet) bool { return s&o == o }

// Len returns the number of messages in s.
func (s MessageSet) Len() int { return bits.OnesCount64(uint64(s)) }

// Vocabulary maps message names to bits of a MessageSet. It is built once at
// start-up and read-only afterwards; building is not safe for concurrent use.
type Vocabulary struct {
	names []string
}

// Add registers name if it is new and returns its set.
func (v *Vocabulary) Add(name string) (MessageSet, error) {
	if s, ok := v.Lookup(name); ok {
		return s, nil
	}
	if name == "" {
		return 0, fmt.Errorf("core: empty message name")
	}
	if len(v.names) == MaxMessages {
		return 0, ErrVocabularyFull
	}
	v.names = append(v.names, name)
	return MessageSet(1) << (len(v.names) - 1), nil
}

// Lookup returns the set holding only name.
func (v *Vocabulary) Lookup(name string) (MessageSet, bool) {
	for i, n := range v.names {
		if n == name {
			return MessageSet(1) << i, true
		}
	}
	return 0, false
}

// All returns the set of every registered message.
func (v *Vocabulary) All() MessageSet {
	if len(v.names) == MaxMessages {
		return ^MessageSet(0)
	}
	return MessageSet(1)<<len(v.names) - 1
}

// Names appends the names of s to dst, in registration order, and returns
// the extended slice.
func (v *Vocabulary) Names(dst []string, s MessageSet) []string {
	for s != 0 {
		i := bits.TrailingZeros64(uint64(s))
		s &^= 1 << i
		if i < len(v.names) {
			dst = append(dst, v.names[i])
		}
	}
	return dst
}
