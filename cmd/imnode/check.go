package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/imnode/imnode/fsm"
)

// check checks the files of a stopped node's data dir page by page, as `imnode restore`
// checks a backup. A node's start checks only the pages bbolt's open begins with, so damage
// deeper in a file shows only when a read reaches it; this finds it beforehand, or explains
// a node that stopped on it.
func check(args []string) error {
	dir, _, err := parseSubcommand("check", "data directory of a stopped node", "", args)
	if err != nil {
		return err
	}
	var damaged []string
	found := 0
	for _, name := range []string{"fsm.db", "raft.db"} {
		path := filepath.Join(dir, name)
		start := time.Now()
		err := fsm.CheckFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Printf("%s: absent\n", path)
			continue
		case errors.Is(err, fsm.ErrFileInUse):
			return err
		case err != nil:
			fmt.Println(err) // "PATH is damaged (…): what to do"
			damaged = append(damaged, name)
		default:
			fmt.Printf("%s: whole (checked in %s)\n", path, time.Since(start).Round(time.Millisecond))
		}
		found++
	}
	switch {
	case found == 0:
		return fmt.Errorf("%s holds no fsm.db or raft.db", dir)
	case len(damaged) > 0:
		return fmt.Errorf("%s damaged", strings.Join(damaged, " and "))
	}
	return nil
}
