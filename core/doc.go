// Package core holds hookgate's domain types and pure policies: the
// notification message vocabulary, change markers and their encoding, Pryv
// usernames, and the Pryv error and meta shapes.
//
// core is the leaf of the module: it imports no fasthttp, no badger, no ants,
// no JSON library and no net package. Everything that does I/O depends on
// core, never the reverse; imports_test.go enforces it.
//
// Everything here is safe for concurrent use unless a type says otherwise;
// nothing here starts goroutines.
package core
