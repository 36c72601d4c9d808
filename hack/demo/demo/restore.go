package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/servers"
)

// A backup that a restore brings back: the shop database is dumped with
// pg_dump before the deletion requests are filed; after the minor's erasure
// it is restored with pg_restore (the minor is back), and the sample
// ErasureReplay, given the dump's time, erases the minor again.

// backup is the dump taken before the deletion requests.
type backup struct {
	file string
	at   time.Time // the ErasureReplay's backupTime: just before pg_dump started
}

// pgArgs are the connection arguments of the PostgreSQL client programs for
// the shop database; the password goes in the environment (pgEnv).
func (r *run) pgArgs() []string {
	return []string{"-h", r.pg.Host, "-p", strconv.Itoa(r.pg.Port), "-U", r.pg.User, "-d", shopDatabase}
}

func (r *run) pgEnv() []string { return append(os.Environ(), "PGPASSWORD="+r.pg.Password) }

// pgTool runs a PostgreSQL client program against the shop database,
// printing the command (without the password).
func (r *run) pgTool(ctx context.Context, name string, args ...string) error {
	bin, err := servers.PostgresTool(name)
	if err != nil {
		return err
	}
	args = append(r.pgArgs(), args...)
	r.p.cmd(name + " " + strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = r.pgEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dumpShop takes the backup of the shop database that restoreAndReplay
// brings back.
func (r *run) dumpShop(ctx context.Context) error {
	r.p.step("Backing up the shop database before the deletion requests are filed (a restore brings it back later)")
	at := time.Now().UTC().Truncate(time.Second)
	file := filepath.Join(r.rep.Dir, "shop-before-erasures.dump")
	if err := r.pgTool(ctx, "pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--file="+file); err != nil {
		return err
	}
	r.backup = &backup{file: file, at: at}
	r.rep.BackupTime = at
	return nil
}

// restoreAndReplay restores the backup over the shop database, shows that
// the minor's records are back, and applies the sample ErasureReplay with
// the backup's time, which erases the minor again.
func (r *run) restoreAndReplay(ctx context.Context) error {
	if r.backup == nil || !r.rep.RequestsHandled {
		return nil
	}
	r.p.heading("A restore must not bring the minor back")
	r.p.step("Restoring the backup taken at %s, before the erasures, over the shop database", r.backup.at.Format(time.RFC3339))
	// pg_restore --clean cannot drop the partitions' inherited keys one by
	// one: the schema goes as a whole, as a restore into a fresh database
	// would start.
	if err := r.pgTool(ctx, "psql", "-v", "ON_ERROR_STOP=1", "-q", "-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public"); err != nil {
		return err
	}
	if err := r.pgTool(ctx, "pg_restore", "--single-transaction", "--no-owner", "--no-privileges", r.backup.file); err != nil {
		return err
	}
	var err error
	if r.rep.Restored, err = r.snapshot(ctx); err != nil {
		return err
	}
	back := minorRows(r.rep.Restored)
	r.p.step("The restore brought back %d records of the minor in the shop database", back)

	samples, err := r.samples(ctx)
	if err != nil {
		return err
	}
	replay := find(samples, "ErasureReplay")
	if replay == nil {
		return fmt.Errorf("config/samples has no ErasureReplay")
	}
	if err := unstructured.SetNestedField(replay.Object, r.backup.at.Format(time.RFC3339), "spec", "backupTime"); err != nil {
		return err
	}
	name := replay.GetName()
	r.rep.Replay = name
	r.p.step("Replaying the erasure ledger against the restored store: config/samples' ErasureReplay with backupTime %s", r.backup.at.Format(time.RFC3339))
	r.p.info("(Lethe scans the identity fields of the store's Datasets in batches, digests each value with its key,")
	r.p.info("and erases again, through a DeletionRequest each, every subject the ledger records as erased since then)")
	y, err := encodeYAML([]*unstructured.Unstructured{replay})
	if err != nil {
		return err
	}
	if _, err := r.k.show(ctx, y, "apply", "-f", "-"); err != nil {
		return err
	}
	ref := "erasurereplay/" + name
	check := func(ctx context.Context) error {
		var er retentionv1.ErasureReplay
		if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &er); err == nil && er.Status.Phase == retentionv1.ReplayFailed {
			return fmt.Errorf("%s failed", ref)
		}
		return nil
	}
	if err := r.waitWhile(ctx, []string{"wait", "--for=condition=Ready", ref, "--timeout=3m"}, check); err != nil {
		return r.explain(ctx, err, ref)
	}
	if _, err := r.k.show(ctx, nil, "get", ref, "-o", "wide"); err != nil {
		return err
	}
	var er retentionv1.ErasureReplay
	if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &er); err != nil {
		return err
	}
	r.rep.ReplayStatus = er.Status.DeepCopy()
	s := er.Status
	r.p.step("%s: %s; %d ledger entries since the backup, %d subjects found in the store, %d erased again, %d records",
		ref, s.Phase, s.LedgerEntries, s.SubjectsFound, s.SubjectsErased, s.RecordsErased)
	for _, c := range s.Collections {
		r.p.info("  %s/%s: %d records scanned, %d matched the ledger, %d erased (%s)", c.Dataset, c.Collection, c.Scanned, c.Matched, c.Erased, c.Action)
	}
	for _, d := range s.NotScanned {
		r.p.info("  not scanned: Dataset %s: %s", d.Dataset, d.Reason)
	}
	if s.Receipt != nil {
		r.p.info("receipt: %d subjects, %d records, verified %t, sha256 %s", s.Receipt.Subjects, s.Receipt.Records, s.Receipt.Verified, s.Receipt.SHA256)
	}
	if r.rep.Replayed, err = r.snapshot(ctx); err != nil {
		return err
	}
	r.printRestore()
	return nil
}

// minorRows counts the minor's records in the shop database of a snapshot.
func minorRows(s Snapshot) int64 {
	var n int64
	for _, sub := range s.Subjects {
		if sub.UserID != MinorUserID {
			continue
		}
		for _, t := range Tables {
			n += sub.Rows[Key(StorePostgres, t)]
		}
	}
	return n
}

// printRestore prints the minor's records per table after the erasure,
// after the restore and after the replay, read back from PostgreSQL.
func (r *run) printRestore() {
	rows := func(s Snapshot, t string) int64 {
		for _, sub := range s.Subjects {
			if sub.UserID == MinorUserID {
				return sub.Rows[Key(StorePostgres, t)]
			}
		}
		return 0
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %14s %14s %14s\n", "TABLE", "AFTER ERASURE", "AFTER RESTORE", "AFTER REPLAY")
	for _, t := range Tables {
		fmt.Fprintf(&b, "%-16s %14d %14d %14d\n", t, rows(r.rep.After, t), rows(r.rep.Restored, t), rows(r.rep.Replayed, t))
	}
	r.p.step("Records that still identify the minor in the shop database (counted in PostgreSQL):")
	r.p.block(b.String())
}
