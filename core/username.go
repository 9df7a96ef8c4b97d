package core

// ValidUsername reports whether u is shaped like a Pryv username:
// lowercase letters, digits and inner hyphens, 5 to 60 characters
// (Pryv's ^[a-z0-9][a-z0-9-]{3,58}[a-z0-9]$), checked without a regexp.
func ValidUsername(u []byte) bool {
	n := len(u)
	if n < 5 || n > 60 {
		return false
	}
	for i, c := range u {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < n-1:
		default:
			return false
		}
	}
	return true
}

// reservedRoots are first path segments (or subdomain labels) that Pryv
// serves outside any user's root.
var reservedRoots = [...]string{"reg", "system", "socket.io", "www", "favicon.ico", "users", "access", "sw", "mfa"}

// ReservedRoot reports whether seg names a non-user part of a Pryv API
// (registration, system calls, socket.io, static files), which never
// belongs to a user even when it is shaped like a username.
func ReservedRoot(seg []byte) bool {
	for _, r := range reservedRoots {
		if string(seg) == r {
			return true
		}
	}
	return false
}
