package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMessageRetention(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("messageRetention: 720h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		env     string
		want    time.Duration
		wantErr string
	}{
		{name: "default off", want: 0},
		{name: "file", args: []string{"-config", file}, want: 720 * time.Hour},
		{name: "env over file", args: []string{"-config", file}, env: "48h", want: 48 * time.Hour},
		{name: "flag over env", args: []string{"-config", file, "-message-retention", "90s"}, env: "48h", want: 90 * time.Second},
		{name: "plain seconds", args: []string{"-message-retention", "30"}, want: 30 * time.Second},
		{name: "zero turns it off", args: []string{"-config", file, "-message-retention", "0"}, want: 0},
		{name: "too short", args: []string{"-message-retention", "500ms"}, wantErr: "messageRetention"},
		{name: "negative", args: []string{"-message-retention", "-1h"}, wantErr: "messageRetention"},
		{name: "bad flag", args: []string{"-message-retention", "soon"}, wantErr: "-message-retention"},
		{name: "bad env", env: "soon", wantErr: "messageRetention"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("IMNODE_MESSAGE_RETENTION", tc.env)
			}
			c, err := Load(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got err %v, want one about %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.MessageRetention.D(); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
