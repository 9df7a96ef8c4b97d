// Package rules decides which requests change a user's data: a rule table
// mapping method and path (relative to the user's root) to notification
// messages, compiled once into a trie so that a request is classified by a
// few map lookups and no regular expression. It also reads Pryv batch calls
// (a JSON array of {method, params} and its {results} answer) and Pryv's
// form-encoded method overrides.
//
// The built-in table is Pryv's (PRYV-WEBHOOKS.md §7.2); Load reads a table
// of generic rules from a JSON file so other APIs can be fronted.
//
// A compiled Table is read-only and safe for concurrent use. The package
// imports no network or storage code.
package rules
