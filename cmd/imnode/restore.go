package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/imnode/imnode/fsm"
)

// restore turns a backup (GET /cluster/backup) into a data dir from which
// `imnode -data-dir DIR -bootstrap-expect 1` starts a one-node cluster holding exactly the
// backup's state. The data dir must not hold raft state already.
func restore(args []string) error {
	dir, backup, err := parseSubcommand("restore", "data directory to create (must be empty or absent)", "BACKUP_FILE", args)
	if err != nil {
		return err
	}
	for _, name := range []string{"raft.db", "fsm.db", "snapshots"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%s already holds %s: restore into a new, empty data dir", dir, name)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := fsm.RestoreBackup(backup, filepath.Join(dir, "fsm.db")); err != nil {
		return err
	}
	fmt.Printf("restored %s into %s; start it with: imnode -data-dir %s -bootstrap-expect 1\n", backup, dir, dir)
	return nil
}
