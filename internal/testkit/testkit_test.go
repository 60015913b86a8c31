package testkit

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	c := NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now = %v", c.Now())
	}
	c.Advance(time.Hour)
	if want := start.Add(time.Hour); !c.Now().Equal(want) {
		t.Errorf("after Advance: %v, want %v", c.Now(), want)
	}
	c.Set(start)
	if !c.Now().Equal(start) {
		t.Errorf("after Set: %v", c.Now())
	}
}

func TestBufferCollectsConcurrentWritesAndTakes(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); b.Write([]byte("x")) }()
	}
	wg.Wait()
	if got := b.Take(); got != "xxxxxxxx" {
		t.Errorf("Take = %q", got)
	}
	if b.String() != "" {
		t.Errorf("after Take: %q", b.String())
	}
}

func TestFilesReadsRegularFilesOnly(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"a.db": "one", "b.key": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "nats"), 0o700); err != nil {
		t.Fatal(err)
	}
	got := Files(t, dir)
	if len(got) != 2 || got["a.db"] != "one" || got["b.key"] != "" {
		t.Errorf("Files = %q, want a.db and b.key with their bytes", got)
	}
}
