package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

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

// parseSubcommand parses the flags of `imnode NAME -data-dir DIR [ARG]`: the data dir, and
// the one argument named arg (none when arg is empty).
func parseSubcommand(name, dirUsage, arg string, args []string) (dir, argValue string, err error) {
	flags := flag.NewFlagSet("imnode "+name, flag.ContinueOnError)
	d := flags.String("data-dir", "", dirUsage)
	if err := flags.Parse(args); err != nil {
		return "", "", err
	}
	want := 0
	if arg != "" {
		want = 1
	}
	if *d == "" || flags.NArg() != want {
		usage := "usage: imnode " + name + " -data-dir DIR"
		if arg != "" {
			usage += " " + arg
		}
		return "", "", errors.New(usage)
	}
	return *d, flags.Arg(0), nil
}
