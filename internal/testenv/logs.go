package testenv

import (
	"bytes"
	"sync"
)

// Logs keeps everything a test's managers log, safe for concurrent writers,
// so tests can scan it (for subject identifiers, for "forbidden").
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Logs) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Len is the number of bytes logged so far.
func (b *Logs) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// String is everything logged so far.
func (b *Logs) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
