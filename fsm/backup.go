package fsm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// RestoreBackup turns a backup (the bbolt file that GET /cluster/backup streams) into the
// fsm.db at dst of a new data dir. It resets the applied index to zero: the new cluster's
// raft log starts again at index 1, and with the old index kept the FSM would skip every
// new entry as already applied.
//
// A backup is a file that left the cluster (a download that may have stopped, a copy on
// other disks), so it is checked before anything is written at dst: its size against what
// its last commit needs and its meta pages, then every page it uses, read without bbolt
// (walkBoltFile), then bbolt's Tx.Check (each reads the whole file once), then that every
// top-level key is a bucket. A bad one is refused with the reason, and nothing is left
// behind.
func RestoreBackup(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open backup: %w", err)
	}
	defer in.Close()
	tmp := dst + ".restore-tmp"
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy backup: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	notState := func(err error) error { return fmt.Errorf("backup %s is not a whole imnode state file: %w", src, err) }
	db, err := openBoltFile(tmp, &bolt.Options{Timeout: 0}, true)
	if err != nil {
		return notState(err)
	}
	err = viewChecked(db, func(tx *bolt.Tx) error {
		if tx.Bucket(bktMeta) == nil || tx.Bucket(bktUsers) == nil {
			return errors.New("no meta or users bucket")
		}
		return checkTx(tx)
	})
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			var zero [8]byte
			return tx.Bucket(bktMeta).Put(keyApplied, zero[:])
		})
	} else {
		err = notState(err)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// checkTx runs bbolt's Tx.Check on tx (after walkBoltFile, which makes sure that Check reads
// nothing outside the file) and checks that every top-level key is a bucket.
func checkTx(tx *bolt.Tx) error {
	if err := checkBuckets(tx); err != nil {
		return err
	}
	var first error
	for err := range tx.Check() { // drained whole: Check's goroutine uses tx until it ends
		if first == nil {
			first = err
		}
	}
	return first
}

// ErrFileInUse is CheckFile's answer for a file that a running process holds.
var ErrFileInUse = errors.New("in use by a running node: stop it first")

// CheckFile checks the bbolt file at path (a stopped node's fsm.db or raft.db) as `imnode
// restore` checks a backup: every page, without bbolt (walkBoltFile), then bbolt's Tx.Check
// and the top-level keys. It reads the whole file twice and changes nothing. A node checks
// only the pages its open starts from (CheckBoltFile); this finds damage deeper in, and
// says so as the node does (damaged).
func CheckFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// Locked from before the walk: a file being written is not read whole.
	if err := lockShared(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	db, err := openBoltFile(path, &bolt.Options{ReadOnly: true, Timeout: time.Second}, true)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("%s: %w", path, ErrFileInUse)
	}
	if err == nil { // an error now is the file's: it opened above
		defer db.Close()
		err = viewChecked(db, checkTx)
	}
	if err != nil {
		return damaged(path, err)
	}
	return nil
}
