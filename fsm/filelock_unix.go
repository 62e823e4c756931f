//go:build unix

package fsm

import (
	"errors"
	"os"
	"syscall"
)

// lockShared takes a shared lock on f, as bbolt's read-only open does, and answers
// ErrFileInUse if a running node holds its exclusive one. It lasts until f is closed.
func lockShared(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrFileInUse
	}
	return err
}
