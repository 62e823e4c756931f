package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
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
	flags := flag.NewFlagSet("imnode check", flag.ContinueOnError)
	dir := flags.String("data-dir", "", "data directory of a stopped node")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *dir == "" || flags.NArg() != 0 {
		return errors.New("usage: imnode check -data-dir DIR")
	}
	var damaged []string
	found := 0
	for _, name := range []string{"fsm.db", "raft.db"} {
		path := filepath.Join(*dir, name)
		start := time.Now()
		err := fsm.CheckFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Printf("%s: absent\n", path)
			continue
		case errors.Is(err, fsm.ErrFileInUse):
			return err
		case err != nil:
			fmt.Printf("%s: damaged: %v\n", path, err)
			damaged = append(damaged, name)
		default:
			fmt.Printf("%s: whole (checked in %s)\n", path, time.Since(start).Round(time.Millisecond))
		}
		found++
	}
	switch {
	case found == 0:
		return fmt.Errorf("%s holds no fsm.db or raft.db", *dir)
	case len(damaged) > 0:
		return fmt.Errorf("%s damaged: move %s away and start the node again with -join (the leader sends it the state), "+
			"or restore it from a backup", strings.Join(damaged, " and "), *dir)
	}
	return nil
}

// runSubcommand runs `imnode restore` or `imnode check` if args name one, and reports
// whether they did; a failed one exits with status 1.
func runSubcommand(args []string) bool {
	cmds := map[string]func([]string) error{"restore": restore, "check": check}
	if len(args) == 0 || cmds[args[0]] == nil {
		return false
	}
	if err := cmds[args[0]](args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "imnode %s: %v\n", args[0], err)
		os.Exit(1)
	}
	return true
}
