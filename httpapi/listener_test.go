package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
)

// flakyListener fails Accept with errs first, then accepts.
type flakyListener struct {
	net.Listener
	errs []error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

func TestPatientListenerRetriesOutOfFiles(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	l := &patientListener{Listener: &flakyListener{errs: []error{emfile, emfile}}, log: slog.New(slog.DiscardHandler)}
	c, err := l.Accept()
	if err != nil || c == nil {
		t.Fatalf("got %v, want a connection after the EMFILE errors", err)
	}
	c.Close()

	closed := fmt.Errorf("use of closed network connection: %w", net.ErrClosed)
	l = &patientListener{Listener: &flakyListener{errs: []error{closed}}, log: slog.New(slog.DiscardHandler)}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("got %v, want the closed listener's error passed through", err)
	}
}
