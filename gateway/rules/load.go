package rules

import (
	"bytes"
	"fmt"
	"os"

	json "github.com/goccy/go-json"
)

// Load reads a rule table from a JSON file shaped like Config:
//
//	{"rules": [{"methods": ["POST", "PUT"], "path": "/orders/**", "message": "ordersChanged"}],
//	 "batchMethods": {"orders.create": "ordersChanged"},
//	 "formOverride": false}
//
// Unknown fields are refused, so a misspelt key does not silently disable a
// rule.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("cannot read rules: %w", err)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("cannot parse rules in %q: %w", path, err)
	}
	if len(c.Rules) == 0 {
		return Config{}, fmt.Errorf("rules in %q: no rules", path)
	}
	return c, nil
}
