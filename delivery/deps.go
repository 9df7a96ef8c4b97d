//go:build tools

package delivery

// Pins the worker pool the delivery engine runs on (SPEC §3.4), so its
// version is fixed in go.mod before the first line that uses it lands.
import _ "github.com/panjf2000/ants/v2"
