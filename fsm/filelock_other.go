//go:build !unix

package fsm

import "os"

// lockShared takes no lock here: bbolt's own read-only open finds a running node's lock,
// after the walk.
func lockShared(*os.File) error { return nil }
