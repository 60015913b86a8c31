package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// seenSet remembers the ids of the last size handled events, oldest forgotten first, so an
// event delivered again is skipped: JetStream redelivers what was not acknowledged (after a
// crash, or when an ack is lost) and the relay may publish an event again after the stream's
// duplicate window.
//
// With a file, every id is appended to it (one per line) before the event is acknowledged,
// and the file is read back at start, so an event redelivered after a crash of this process
// is skipped too. Appends are not fsynced: the ids survive a process crash (they are in the
// OS's cache), while after a power loss the last few events may be handled twice, which
// at-least-once delivery allows anyway. The file is rewritten with only the remembered ids
// when it grows to twice the size.
type seenSet struct {
	size  int
	ids   map[string]struct{}
	order []string // ring of remembered ids, oldest at next once full
	next  int

	path  string
	f     *os.File
	lines int
}

// openSeen returns a set of capacity size, loaded from path and appending to it when path is
// not empty. It returns an error if the file cannot be read or opened for appending.
func openSeen(path string, size int) (*seenSet, error) {
	s := &seenSet{size: size, ids: make(map[string]struct{}, size), path: path}
	if path == "" {
		return s, nil
	}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("seen file: %w", err)
	default:
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			if id := strings.TrimSpace(sc.Text()); id != "" {
				s.remember(id)
				s.lines++
			}
		}
		err := sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("seen file %s: %w", path, err)
		}
	}
	if s.lines >= 2*size {
		return s, s.compact()
	}
	s.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("seen file: %w", err)
	}
	return s, nil
}

// Has reports whether id is remembered.
func (s *seenSet) Has(id string) bool {
	_, ok := s.ids[id]
	return ok
}

// Add remembers id and appends it to the file. It returns an error if the file cannot be
// written; the id is remembered in memory anyway. Ids with line breaks are kept in memory only.
func (s *seenSet) Add(id string) error {
	if s.Has(id) {
		return nil
	}
	s.remember(id)
	if s.f == nil || strings.ContainsAny(id, "\r\n") {
		return nil
	}
	if _, err := writeSeen(s.f, id+"\n"); err != nil {
		return fmt.Errorf("seen file: %w", err)
	}
	s.lines++
	if s.lines >= 2*s.size {
		return s.compact()
	}
	return nil
}

// writeSeen appends to the seen file; tests replace it to make a write fail.
var writeSeen = (*os.File).WriteString

// Len is the number of remembered ids.
func (s *seenSet) Len() int { return len(s.ids) }

// Close closes the file.
func (s *seenSet) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func (s *seenSet) remember(id string) {
	if _, ok := s.ids[id]; ok {
		return
	}
	if len(s.order) < s.size {
		s.order = append(s.order, id)
	} else {
		delete(s.ids, s.order[s.next])
		s.order[s.next] = id
		s.next = (s.next + 1) % s.size
	}
	s.ids[id] = struct{}{}
}

// compact rewrites the file with the remembered ids, oldest first, through a temporary file
// and a rename, and reopens it for appending.
func (s *seenSet) compact() error {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("seen file: compact: %w", err)
	}
	w := bufio.NewWriter(tmp)
	n := 0
	for i := range len(s.order) {
		id := s.order[(s.next+i)%len(s.order)]
		if !strings.ContainsAny(id, "\r\n") {
			w.WriteString(id + "\n")
			n++
		}
	}
	err = errors.Join(w.Flush(), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("seen file: compact: %w", err)
	}
	s.lines = n
	s.f, err = os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("seen file: %w", err)
	}
	return nil
}
