package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEConfigurationTableMatchesTheFlags: every row of the README's configuration table
// names flags referrald has, environment variables those flags read, and — where the default
// is a plain value — the flag's default. A newcomer configures the service from that table.
func TestREADMEConfigurationTableMatchesTheFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("no Configuration section in the README")
	}
	section, _, _ = strings.Cut(section, "\n## ")

	var usage bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	// "  -name type\n    \tusage (default X)" → name: the usage line.
	flags := map[string]string{}
	lines := strings.Split(usage.String(), "\n")
	for i, l := range lines {
		if m := regexp.MustCompile(`^  -([a-z-]+)`).FindStringSubmatch(l); m != nil && i+1 < len(lines) {
			flags[m[1]] = strings.TrimSpace(lines[i+1])
		}
	}
	code := regexp.MustCompile("`([^`]*)`")
	rows := 0
	for _, row := range strings.Split(section, "\n") {
		if !strings.HasPrefix(row, "| `--") {
			continue
		}
		rows++
		cells := strings.Split(row, " | ")
		if len(cells) < 4 {
			t.Errorf("row %q: want flag | env | default | meaning", row)
			continue
		}
		var names []string
		for _, m := range code.FindAllStringSubmatch(cells[0], -1) {
			names = append(names, strings.TrimPrefix(m[1], "--"))
		}
		for _, name := range names {
			use, ok := flags[name]
			if !ok {
				t.Errorf("README lists --%s, which referrald does not have", name)
				continue
			}
			for _, env := range regexp.MustCompile(`[A-Z][A-Z0-9_]+`).FindAllString(cells[1], -1) {
				if len(names) == 1 && !strings.Contains(use, env) {
					t.Errorf("README says --%s reads %s; its usage does not: %q", name, env, use)
				}
			}
			// A default that is one plain value must be the flag's.
			def := strings.TrimSpace(cells[2])
			if m := code.FindAllStringSubmatch(def, -1); len(names) == 1 && len(m) == 1 && "`"+m[0][1]+"`" == def {
				want := m[0][1]
				got := ""
				if dm := regexp.MustCompile(`\(default "?([^")]*)"?\)$`).FindStringSubmatch(use); dm != nil {
					got = dm[1]
				}
				if got != want && !(want == "0" && got == "") {
					t.Errorf("README says --%s defaults to %s; the flag's default is %q", name, want, got)
				}
			}
		}
	}
	if rows < 25 {
		t.Errorf("read %d rows of the configuration table; is it still there?", rows)
	}
}
