package ledger

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// A day's ledger fills one shard after another, never past its size, and a
// restarted writer (nothing remembered) continues in the last shard.
func TestLedgerRollsShardsAndResumesInTheLastOne(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func() *Writer {
		l := NewWriter(c, c)
		l.maxShard = 1000
		go func() { _ = l.Start(ctx) }()
		return l
	}
	day := Day(time.Date(2026, 12, 2, 23, 59, 59, 0, time.UTC))
	line := strings.Repeat("x", 290)
	first := start()
	for i := range 10 {
		if err := first.Append(ctx, "ns", day, fmt.Sprintf("req-%d", i), line); err != nil {
			t.Fatal(err)
		}
	}
	second := start() // a restarted manager
	if err := second.Append(ctx, "ns", day, "req-10", line); err != nil {
		t.Fatal(err)
	}

	var list corev1.ConfigMapList
	if err := c.List(ctx, &list, client.InNamespace("ns"), client.MatchingLabels{retentionv1.LabelLedger: "true"}); err != nil {
		t.Fatal(err)
	}
	keys := 0
	names := map[string]bool{}
	for _, cm := range list.Items {
		names[cm.Name] = true
		keys += len(cm.Data)
		if size := shardBytes(&cm); size > 1000 {
			t.Errorf("shard %s holds %d bytes, more than its limit", cm.Name, size)
		}
	}
	// Three lines of 295 bytes fit in 1,000: 11 lines need 4 shards.
	want := []string{"lethe-erasure-ledger-20261202-0", "lethe-erasure-ledger-20261202-1", "lethe-erasure-ledger-20261202-2", "lethe-erasure-ledger-20261202-3"}
	for _, n := range want {
		if !names[n] {
			t.Errorf("shard %s missing; shards: %v", n, names)
		}
	}
	if keys != 11 || len(names) != len(want) {
		t.Errorf("%d lines in %d shards, want 11 in %d", keys, len(names), len(want))
	}
	for _, req := range []string{"req-0", "req-5", "req-10"} {
		if got, err := Line(ctx, c, "ns", req); err != nil || got != line {
			t.Errorf("ledger line of %s: %q, %v", req, got, err)
		}
	}
}
