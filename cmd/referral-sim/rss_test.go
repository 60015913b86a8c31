package main

import (
	"os"
	"testing"
	"time"
)

func TestProcessFiguresOfThisProcess(t *testing.T) {
	rss, hwm, err := readRSS(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("rss %d, peak %d, %v", rss, hwm, err)
	}
	before, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	self := selfCPU()
	x := 0
	for selfCPU()-self < 80*time.Millisecond { // burn CPU, whatever the machine's load
		for i := range 100_000 {
			x += i
		}
	}
	after, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 40*time.Millisecond || d > 10*time.Second {
		t.Errorf("/proc CPU time grew %s while this process used at least 80ms (%d)", d, x)
	}
	if _, _, err := readRSS(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}
