package testharness

import (
	"context"
	"testing"

	"github.com/lethe-dev/lethe/internal/managerproc"
)

// Manager runs the manager binary (managerproc.Start) for a test and stops
// it when the test ends; a manager that does not stop cleanly, or had exited
// on its own, fails the test. It needs no TestMain.
func Manager(tb testing.TB, o managerproc.Options) *managerproc.Manager {
	tb.Helper()
	m, err := managerproc.Start(context.Background(), o)
	if err != nil {
		tb.Fatalf("testharness: starting the manager: %v", err)
	}
	tb.Cleanup(func() {
		if err := m.Stop(); err != nil {
			tb.Errorf("testharness: manager: %v", err)
		}
	})
	return m
}
