package fsm

import (
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// RestoreBackup turns a backup (the bbolt file that GET /cluster/backup streams) into the
// fsm.db at dst of a new data dir. It resets the applied index to zero: the new cluster's
// raft log starts again at index 1, and with the old index kept the FSM would skip every
// new entry as already applied.
func RestoreBackup(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open backup: %w", err)
	}
	defer in.Close()
	tmp := dst + ".restore-tmp"
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
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 0})
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup %s is not an imnode state file: %w", src, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if meta == nil || tx.Bucket(bktUsers) == nil {
			return fmt.Errorf("backup %s is not an imnode state file (no meta or users bucket)", src)
		}
		var zero [8]byte
		return meta.Put(keyApplied, zero[:])
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
