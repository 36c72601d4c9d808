package controllers

import "testing"

func TestKeptByHolds(t *testing.T) {
	for n, want := range map[int64]string{0: "", 1: "; 1 record kept by legal holds", 6: "; 6 records kept by legal holds"} {
		if got := keptByHolds(n); got != want {
			t.Errorf("keptByHolds(%d) = %q, want %q", n, got, want)
		}
	}
}
